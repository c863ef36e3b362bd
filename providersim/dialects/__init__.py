"""The provider APIs the simulator speaks, one module each: ``router(sim)`` serves the API
(paths, authentication, answers, rate-limit answers) over the shared ledger, and
``callbacks(sim, receipts)`` builds the signed requests that post its delivery receipts
(``httpx`` keyword arguments: headers and a body; the outbox adds the url)."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["dialect_module"]


def dialect_module(name: str) -> ModuleType:
    """The module of dialect ``name`` (see :data:`providersim.config.Dialect`)."""
    return importlib.import_module(f"providersim.dialects.{name}")
