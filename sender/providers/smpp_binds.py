"""The binds of one SMPP route: ``binds`` sessions kept up, each reconnected with backoff.

Each bind is a transceiver, or a transmitter + receiver pair (``bind_mode = "pair"``: submits
go over the transmitter, receipts and replies come over the receiver). A keeper task per bind
opens it, waits until it closes, and opens it again after 0.5 s doubling up to
``reconnect_max_s`` (back to 0.5 s after a bind that held). :meth:`Binds.pick` answers the
live bind with the most room in its window, and raises :class:`ProviderUnavailable` when none
is live (the breaker opens; traffic fails over). A refused bind is remembered
(:attr:`Binds.refused`) and logged; the keeper keeps trying at the slowest pace.
"""

from __future__ import annotations

import asyncio
import contextlib

from hexcast.core.errors import ProviderUnavailable
from hexcast.core.logging import get_logger
from hexcast.core.smpp.pdu import Command
from sender.providers.smpp_session import BindRefused, Deliveries, Endpoint, Session

__all__ = ["Binds"]

log = get_logger("hexcast.sender.smpp")

_FIRST_WAIT_S = 0.5


class Binds:
    """The route's binds (see the module's docstring)."""

    def __init__(self, endpoint: Endpoint, *, connect_timeout_s: float) -> None:
        self.endpoint = endpoint
        self._timeout_s = connect_timeout_s
        self._on_deliver: Deliveries | None = None
        self._binds: list[list[Session]] = [[] for _ in range(endpoint.options.binds)]
        self._keepers: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self.refused: str | None = None
        self._closing = False

    def deliver_to(self, on_deliver: Deliveries) -> None:
        self._on_deliver = on_deliver

    @property
    def started(self) -> bool:
        return bool(self._keepers)

    def start(self) -> None:
        if not self._keepers:
            self._keepers = [asyncio.create_task(self._keep(n))
                             for n in range(self.endpoint.options.binds)]

    @property
    def live(self) -> int:
        return sum(1 for b in self._binds if b and b[0].alive)

    async def pick(self, wait_s: float) -> Session:
        """The live bind with the most room, waiting up to ``wait_s`` for one to come up."""
        self.start()
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            live = [b[0] for b in self._binds if b and b[0].alive]
            if live:
                return max(live, key=lambda s: s.free)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                why = f"bind refused ({self.refused})" if self.refused else "no live bind"
                raise ProviderUnavailable(f"{self.endpoint.route}: {why}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def _keep(self, n: int) -> None:
        wait = _FIRST_WAIT_S
        limit = self.endpoint.options.reconnect_max_s
        while not self._closing:
            sessions = await self._open()
            if sessions and self._closing:
                for session in sessions:
                    await session.close()
                return
            if sessions:
                self.refused, wait = None, _FIRST_WAIT_S
                self._binds[n] = sessions
                self._changed.set()
                await _first_closed(sessions)
                self._binds[n] = []
                for session in sessions:
                    await session.close()
            await asyncio.sleep(wait if self.refused is None else limit)
            wait = min(limit, wait * 2)

    async def _open(self) -> list[Session]:
        """The bind's sessions, sender first, or none (logged) when they cannot be opened."""
        pair = self.endpoint.options.bind_mode == "pair"
        commands = [Command.BIND_TRANSMITTER, Command.BIND_RECEIVER] if pair \
            else [Command.BIND_TRANSCEIVER]
        opened: list[Session] = []
        try:
            for command in commands:
                session = Session(self.endpoint, command, self._on_deliver)
                await session.open(self._timeout_s)
                opened.append(session)
        except BindRefused as exc:
            self.refused = str(exc).rsplit(": ", 1)[-1]
            log.error("smpp_bind_refused", route=self.endpoint.route, error=str(exc))
        except ProviderUnavailable as exc:
            log.warning("smpp_bind_failed", route=self.endpoint.route, error=str(exc))
        else:
            return opened
        for session in opened:
            await session.close()
        return []

    async def aclose(self) -> None:
        """Stop reconnecting and unbind every session. Keepers are cancelled until they end (on
        Python 3.11 a cancellation can be lost inside ``wait_for``; the flag stops them too)."""
        self._closing = True
        while pending := [t for t in self._keepers if not t.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)
        self._keepers = []
        for sessions in self._binds:
            for session in sessions:
                await session.close()
        self._binds = [[] for _ in self._binds]


async def _first_closed(sessions: list[Session]) -> None:
    waits = [asyncio.create_task(s.closed.wait()) for s in sessions]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
