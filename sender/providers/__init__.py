"""Provider adapters: one module per provider API, all speaking :class:`Provider` (``base``).

``build_provider`` picks the adapter of a configured account (:class:`~sender.models.ProviderSpec`).
"""

from __future__ import annotations

from sender.models import ProviderSpec
from sender.providers.base import Outgoing, Provider, ProviderResult, SendReport
from sender.providers.generic import BatchProvider, SingleProvider

__all__ = ["Outgoing", "Provider", "ProviderResult", "SendReport", "build_provider"]


def build_provider(spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> Provider:
    """The adapter for ``spec.mode``."""
    if spec.mode == "single":
        return SingleProvider(spec, timeout_s=timeout_s, concurrency=concurrency)
    return BatchProvider(spec, timeout_s=timeout_s, connections=32)
