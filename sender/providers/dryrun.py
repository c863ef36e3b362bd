"""The dry-run route: takes every message it is given and sends nothing.

A tenant in dry run (``tenants.send_mode``, see ``sender.route_control``) is routed only to
dry-run routes, so every decision before the call is made and recorded as for a live tenant
(suppressed, deferred, expired, with their reasons), and what would have been sent ends
``accepted`` by this route, with the id ``dryrun:<client ref>``. ``hexcast parity report``
compares those decisions with a legacy platform's send log. No callbacks, no lookup needed
(it never fails)."""

from __future__ import annotations

from collections.abc import Mapping

from sender.models import ProviderSpec
from sender.providers.base import Callbacks, Outgoing, Provider, ProviderResult, Receipt, SendReport
from sender.providers.status import StatusTable

__all__ = ["TABLE", "DryRunCallbacks", "DryRunProvider", "build", "callbacks", "probe"]

TABLE = StatusTable(kind="dryrun", statuses={}, errors={})
"""No statuses: a dry-run route posts no delivery callbacks."""


class DryRunProvider:
    max_batch = 1000
    supports_lookup = True

    def __init__(self, spec: ProviderSpec) -> None:
        self.name = spec.name
        self._taken: set[str] = set()

    async def send(self, messages: list[Outgoing]) -> SendReport:
        self._taken.update(m.client_ref for m in messages)
        return SendReport(results=[ProviderResult(m.client_ref, True, f"dryrun:{m.client_ref}")
                                   for m in messages])

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        """A row left ``sending`` by a crash: taken if this process took it, else never seen
        (and so taken again: sending nothing twice is harmless)."""
        if client_ref in self._taken:
            return ProviderResult(client_ref, True, f"dryrun:{client_ref}")
        return None

    async def aclose(self) -> None:
        return None


class DryRunCallbacks:
    """Nothing posts to a dry-run route: every callback is refused."""

    def verify(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        return False

    def receipts(self, *, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
        raise ValueError("a dry-run route has no callbacks")


def build(spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> Provider:
    return DryRunProvider(spec)


def callbacks(spec: ProviderSpec) -> Callbacks:
    return DryRunCallbacks()


async def probe(spec: ProviderSpec, *, timeout_s: float) -> str:
    """Nothing to call: a dry-run route has no account."""
    return "dry run: sends nothing"
