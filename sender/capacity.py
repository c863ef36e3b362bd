"""What a lane can send through the configured routes, in segments per second. Pure.

It reads the routes as the senders build their buckets (``sender.routing._bucket``): every
lane takes from the account's rate (the route's ``mps``, else ``provider_rate_per_s``); geo and
bulk also from the part otp and transactional leave them (``1 - sender_transactional_share``),
bulk also from its own share (``sender_bulk_share``). So a route gives otp and transactional
its whole rate, geo ``rate x (1 - t)`` and bulk ``rate x min(1 - t, b)``. A single-message API
with ``requests_per_s`` carries at most that many messages a second. A route limited to some
countries counts in full (the audience's countries are not read), and the bulk lane's fair
share between tenants is left out: this is what one tenant sending alone can have. A route an
operator drained or disabled (``sender.route_control``) gives nothing while it is so.

Routes take traffic by priority (1 first) and, within a priority, by weight; a route whose
bucket is empty passes the rest to the next one (``sender.grants``). :meth:`LaneCapacity.split`
plans a pace over the routes that way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sender.models import Lane, ProviderSpec

__all__ = ["LaneCapacity", "RouteCapacity", "lane_capacity", "lane_share"]


@dataclass(frozen=True, slots=True)
class RouteCapacity:
    name: str
    segments_per_s: float
    priority: int = 1
    weight: int = 1


@dataclass(frozen=True, slots=True)
class LaneCapacity:
    lane: Lane
    routes: tuple[RouteCapacity, ...]

    @property
    def segments_per_s(self) -> float:
        return sum(r.segments_per_s for r in self.routes)

    def split(self, segments_per_s: float) -> dict[str, float]:
        """Segments/s each route carries at a pace of ``segments_per_s``: priority 1 first;
        within a priority by weight, a route never above its capacity (the rest goes to the
        others of its priority, then to the next priority)."""
        out = {r.name: 0.0 for r in self.routes}
        left = segments_per_s
        for priority in sorted({r.priority for r in self.routes}):
            tier = [r for r in self.routes if r.priority == priority and r.segments_per_s > 0]
            while tier and left > 1e-12:
                weights = sum(r.weight for r in tier)
                full = [r for r in tier if left * r.weight / weights >= r.segments_per_s]
                if not full:
                    for r in tier:
                        out[r.name] += left * r.weight / weights
                    left = 0.0
                    break
                for r in full:
                    out[r.name] += r.segments_per_s
                    left -= r.segments_per_s
                tier = [r for r in tier if r not in full]
        return out


def lane_share(lane: Lane, *, transactional_share: float, bulk_share: float) -> float:
    """The part of a route's rate ``lane`` may take, the higher lanes' reserves left out."""
    if lane in (Lane.OTP, Lane.TRANSACTIONAL):
        return 1.0
    marketing = 1.0 - transactional_share
    return marketing if lane is Lane.GEO else min(marketing, bulk_share)


def lane_capacity(
    specs: Iterable[ProviderSpec], lane: Lane, tenant: int, *, default_rate: float,
    transactional_share: float, bulk_share: float, segments_per_message: int = 1,
    dry_run: bool = False, unavailable: frozenset[str] = frozenset(),
) -> LaneCapacity:
    """Segments/s ``lane`` can have for ``tenant``: each route serving both (dry-run routes
    only for a tenant in dry run, live ones for the others) and not ``unavailable`` (drained
    or disabled), at the lane's share of its rate; ``segments_per_message`` converts a
    single-message API's requests/s."""
    share = lane_share(lane, transactional_share=transactional_share, bulk_share=bulk_share)
    routes = []
    for spec in specs:
        if lane not in spec.lanes or (spec.tenants is not None and tenant not in spec.tenants) \
                or (spec.kind == "dryrun") != dry_run or spec.name in unavailable:
            continue
        rate = (spec.rate_per_s or default_rate) * share
        if spec.mode == "single" and spec.requests_per_s is not None:
            rate = min(rate, spec.requests_per_s * segments_per_message)
        routes.append(RouteCapacity(spec.name, rate, spec.priority, spec.weight))
    return LaneCapacity(lane, tuple(routes))
