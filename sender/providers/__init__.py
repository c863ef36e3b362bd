"""Provider adapters: one module per provider API, all speaking :class:`Provider` (``base``).

A module ``sender/providers/<kind>.py`` (``kind`` as in :data:`sender.models.ProviderKind`)
defines ``build(spec, *, timeout_s, concurrency) -> Provider``, ``callbacks(spec) -> Callbacks``
(how its delivery callbacks are checked and read), ``TABLE``, its :class:`StatusTable`, and
``async probe(spec, *, timeout_s) -> str``, its cheapest authenticated read of the account.
``generic`` is hexcast's own JSON API (the simulator's native dialect, and in-house gateways).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import get_args

from sender.models import ProviderKind, ProviderSpec
from sender.providers.base import Callbacks, Outgoing, Provider, ProviderResult, Receipt, SendReport
from sender.providers.status import DeliveryStatus, ErrorClass, StatusTable

__all__ = [
    "KINDS",
    "Callbacks",
    "DeliveryStatus",
    "ErrorClass",
    "Outgoing",
    "Provider",
    "ProviderResult",
    "Receipt",
    "SendReport",
    "StatusTable",
    "adapter_module",
    "build_provider",
    "callbacks_for",
    "error_table",
    "probe_route",
]

KINDS: tuple[str, ...] = get_args(ProviderKind)


def adapter_module(kind: str) -> ModuleType:
    """The adapter module of ``kind`` (one of :data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown provider kind {kind!r}")
    return importlib.import_module(f"sender.providers.{kind}")


def build_provider(spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> Provider:
    """The adapter for ``spec``'s account."""
    provider: Provider = adapter_module(spec.kind).build(spec, timeout_s=timeout_s,
                                                          concurrency=concurrency)
    return provider


def error_table(kind: str) -> StatusTable:
    """The status model of provider ``kind``."""
    table: StatusTable = adapter_module(kind).TABLE
    return table


def callbacks_for(spec: ProviderSpec) -> Callbacks:
    """How ``spec``'s delivery callbacks are verified and read."""
    found: Callbacks = adapter_module(spec.kind).callbacks(spec)
    return found


async def probe_route(spec: ProviderSpec, *, timeout_s: float) -> str:
    """Whether ``spec``'s account answers (``hexcast providers check --probe``): its adapter
    module's ``probe``, one authenticated read of the account that sends nothing. Its one-line
    description, or :class:`~hexcast.core.errors.ProviderError` saying what failed."""
    described: str = await adapter_module(spec.kind).probe(spec, timeout_s=timeout_s)
    return described
