"""One SMPP 3.4 session with an SMSC (a bind), over asyncio streams.

A session binds (transceiver, transmitter or receiver), then keeps at most ``window``
``submit_sm`` unanswered: :meth:`Session.submit` waits for room, numbers the PDU, writes it
and waits ``response_timeout_s`` for its ``submit_sm_resp``. A reader task matches responses
to requests by sequence number, answers ``enquire_link`` and ``unbind``, and hands each
``deliver_sm`` (receipts and replies) to ``on_deliver`` in batches, answering them only after
it returns (``ESME_RX_T_APPN`` when it raised: the SMSC delivers them again), so a receipt is
never acknowledged before it is kept. A keepalive sends ``enquire_link`` when the link was quiet
for ``enquire_link_s`` and closes a session that does not answer.

Throttling (``ESME_RTHROTTLED``, ``ESME_RMSGQFUL``) slows the session down: submits are spaced
by an adaptive gap, doubled by a throttle answer (from 1 ms, at most 1 s; once per gap, as the
answers to a window's submits come together) and shrunk by 30 % by each accepted submit, so the
bind keeps near the rate the SMSC takes.
``mps_per_bind`` sets the least gap.

Errors: a submit that could not be written is :class:`ProviderUnavailable` (not ambiguous);
one written but not answered (timeout, connection lost) is ambiguous: the SMSC may have it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hexcast.core.errors import ProviderUnavailable, SmppError
from hexcast.core.logging import get_logger
from hexcast.core.smpp.pdu import (
    Bind,
    BindResp,
    Body,
    Command,
    DeliverSm,
    DeliverSmResp,
    Empty,
    Framer,
    Pdu,
    Sequences,
    Status,
    SubmitSm,
    decode,
    encode,
    header,
)
from sender.models import SmppOptions

__all__ = ["BindDown", "BindRefused", "Deliveries", "Endpoint", "Session"]

log = get_logger("hexcast.sender.smpp")

Deliveries = Callable[[list[DeliverSm]], Awaitable[None]]
"""Keeps a batch of ``deliver_sm`` (receipts, replies); raises when it could not."""

_THROTTLES = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})
_MIN_GAP_S, _MAX_GAP_S = 0.001, 1.0
_DELIVER_BATCH = 200


class BindDown(ProviderUnavailable):
    """The session is closed: nothing was written (another bind may take it)."""


class BindRefused(ProviderUnavailable):
    """The SMSC refused the bind (wrong system_id or password, or no bind allowed now)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom to bind."""

    route: str
    host: str
    port: int
    system_id: str
    password: str = field(repr=False)  # the route's secret: never in a repr or a log
    options: SmppOptions


class Session:
    """One bind; see the module's docstring. ``command``: which bind."""

    def __init__(self, endpoint: Endpoint, command: Command, on_deliver: Deliveries | None) -> None:
        self.endpoint, self.command = endpoint, command
        self._opts = endpoint.options
        self._on_deliver = on_deliver
        self._seq = Sequences()
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._window = asyncio.Semaphore(self._opts.window)
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._delivered: asyncio.Queue[Pdu] = asyncio.Queue()
        self._quiet_since = time.monotonic()
        self._next_submit = 0.0
        self._slow_s = 0.0  # the adaptive gap throttling asked for
        self._slowed_at = 0.0
        self.closed = asyncio.Event()

    @property
    def alive(self) -> bool:
        return self._writer is not None and not self.closed.is_set()

    @property
    def free(self) -> int:
        """Room left in the window."""
        return self._opts.window - len(self._pending)

    async def open(self, timeout_s: float) -> None:
        """Connect and bind; :class:`BindRefused` or :class:`ProviderUnavailable` when not."""
        ep = self.endpoint
        try:
            reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(ep.host, ep.port), timeout_s)
        except (OSError, TimeoutError) as exc:
            self.closed.set()
            raise ProviderUnavailable(f"{ep.route}: cannot reach {ep.host}:{ep.port}: {exc}",
                                      unreached=True) from exc
        self._tasks = [asyncio.create_task(self._read(reader)),
                       asyncio.create_task(self._deliver_loop())]
        bind = Bind(ep.system_id, ep.password, system_type=self._opts.system_type)
        try:
            resp = await self._call(self.command, bind)
        except BaseException:  # no answer, or cancelled: its tasks must not outlive it
            await self._lost()
            raise
        if resp.status != Status.ESME_ROK:
            await self.close()
            raise BindRefused(f"{ep.route}: bind refused: {_status(resp.status)}", status=resp.status)
        peer = resp.body.system_id if isinstance(resp.body, BindResp) else "?"
        log.info("smpp_bound", route=ep.route, bind=self.command.name.lower(), smsc=peer)
        self._tasks.append(asyncio.create_task(self._keepalive()))

    async def submit(self, sm: SubmitSm) -> Pdu:
        """One ``submit_sm``; its response (any status). Waits for room in the window, the
        throttle pause and the per-bind pace first."""
        async with self._window:
            await self._pace()
            resp = await self._call(Command.SUBMIT_SM, sm)
        if resp.status in _THROTTLES:
            now = time.monotonic()
            if now - self._slowed_at >= self._slow_s:
                self._slow_s = min(_MAX_GAP_S, max(_MIN_GAP_S, self._slow_s * 2))
                self._slowed_at = now
        elif resp.status == Status.ESME_ROK and self._slow_s:
            self._slow_s = self._slow_s * 0.7 if self._slow_s > _MIN_GAP_S / 2 else 0.0
        return resp

    async def _pace(self) -> None:
        now = time.monotonic()
        gap = max(1.0 / self._opts.mps_per_bind if self._opts.mps_per_bind else 0.0, self._slow_s)
        at = max(now, self._next_submit)
        self._next_submit = at + gap
        if at > now:
            await asyncio.sleep(at - now)

    async def _call(self, command: Command, body: Body) -> Pdu:
        if not self.alive or self._writer is None:
            raise BindDown(f"{self.endpoint.route}: bind is down")
        seq = self._seq.next()
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        try:
            self._writer.write(encode(Pdu(command, 0, seq, body)))
            await self._writer.drain()
        except (OSError, RuntimeError) as exc:
            self._pending.pop(seq, None)
            await self.close()
            raise ProviderUnavailable(f"{self.endpoint.route}: write failed: {exc}",
                                      ambiguous=True) from exc
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._opts.response_timeout_s)
        except TimeoutError:
            raise ProviderUnavailable(
                f"{self.endpoint.route}: no {command.name.lower()}_resp in "
                f"{self._opts.response_timeout_s:g} s", ambiguous=True) from None
        finally:
            self._pending.pop(seq, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        framer = Framer()
        try:
            while data := await reader.read(65536):
                self._quiet_since = time.monotonic()
                for frame in framer.feed(data):
                    await self._received(frame)
        except (OSError, SmppError) as exc:
            log.warning("smpp_read_failed", route=self.endpoint.route, error=str(exc))
        finally:
            await self._lost()

    async def _received(self, frame: bytes) -> None:
        try:
            pdu = decode(frame)
        except SmppError as exc:  # framing intact: answer this PDU alone
            _, command_id, _, seq = header(frame)
            log.warning("smpp_bad_pdu", route=self.endpoint.route, error=str(exc))
            if not command_id & 0x80000000:
                await self._send(Pdu(Command.GENERIC_NACK, exc.status, seq, Empty()))
            return
        if pdu.command.is_response:
            future = self._pending.get(pdu.sequence)
            if future is not None and not future.done():
                future.set_result(pdu)
        elif pdu.command is Command.DELIVER_SM:
            self._delivered.put_nowait(pdu)
        elif pdu.command is Command.ENQUIRE_LINK:
            await self._send(pdu.reply())
        elif pdu.command is Command.UNBIND:
            await self._send(pdu.reply())
            await self.close(unbind=False)
        else:
            await self._send(pdu.nack(Status.ESME_RINVCMDID))

    async def _deliver_loop(self) -> None:
        """Hand ``deliver_sm`` over in batches; answer each once its batch is kept."""
        while True:
            batch = [await self._delivered.get()]
            while len(batch) < _DELIVER_BATCH and not self._delivered.empty():
                batch.append(self._delivered.get_nowait())
            status = Status.ESME_RX_T_APPN
            if self._on_deliver is not None:
                try:
                    await self._on_deliver([p.body for p in batch if isinstance(p.body, DeliverSm)])
                    status = Status.ESME_ROK
                except Exception as exc:  # noqa: BLE001 - any failure: the SMSC retries them
                    log.error("smpp_deliveries_not_kept", route=self.endpoint.route,
                              count=len(batch), error=str(exc))
            for pdu in batch:
                await self._send(pdu.reply(DeliverSmResp(), status=status))

    async def _keepalive(self) -> None:
        every = self._opts.enquire_link_s
        while self.alive:
            await asyncio.sleep(max(0.05, every - (time.monotonic() - self._quiet_since)))
            if time.monotonic() - self._quiet_since < every:
                continue
            try:
                await self._call(Command.ENQUIRE_LINK, Empty())
            except ProviderUnavailable:
                log.warning("smpp_link_silent", route=self.endpoint.route)
                await self.close(unbind=False)
                return

    async def _send(self, pdu: Pdu) -> None:
        if self._writer is None or self.closed.is_set():
            return
        try:
            self._writer.write(encode(pdu))
            await self._writer.drain()
        except (OSError, RuntimeError):
            await self._lost()

    async def _lost(self) -> None:
        """The connection is gone: every unanswered request fails (ambiguous for a submit)."""
        if self.closed.is_set():
            return
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ProviderUnavailable(
                    f"{self.endpoint.route}: connection lost", ambiguous=True))
        if self._writer is not None:
            self._writer.close()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        log.warning("smpp_unbound", route=self.endpoint.route, bind=self.command.name.lower())

    async def close(self, *, unbind: bool = True) -> None:
        """Unbind (briefly waiting for its answer), close the connection, stop the tasks."""
        if unbind and self.alive:
            with contextlib.suppress(ProviderUnavailable, SmppError):
                await asyncio.wait_for(self._call(Command.UNBIND, Empty()), 2.0)
        await self._lost()
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current and not t.done()]
        if others:  # bounded: on 3.11 a wait_for inside may swallow a cancellation
            await asyncio.wait(others, timeout=3.0)


def _status(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:08X}"
