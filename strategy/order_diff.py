"""The pure diff of desired orders against tracked open orders: what to cancel, keep and create.

Orders are matched by slot, ``(side, layer)``. Two rules keep ladders from stacking: a new
order is created only in a slot whose every active order is on its way out (``pending_cancel``,
or cancelled on this tick), and only while the slot holds at most one such order. So a slot
holds at most two active orders, the leaving one and its replacement; a side holds at most
``order_levels`` orders that stay, and at most ``2 * order_levels`` active orders in all (only
while replacements overlap the orders they replace).

Replacing before cancelling keeps the book quoted: a refreshed order's replacement is created on
the same tick as its cancel (the cycle writes the create first, so it leaves first) when the
order's funds cover both, counting the leaving order's funds until its cancel is confirmed.
Otherwise the replacement waits for the cancel and comes on the tick after the confirmation (the
confirmation wakes the session). A filled or cancelled level is refilled on the next run, after
``filled_order_delay`` seconds from our last fill. A create never crosses our own orders: a buy
below every active sell of ours and a sell above every active buy, the leaving ones included (they
may still be on the book); one that would waits for the cancel.

Decisions, for every active order not already ``pending_cancel``:

- layer outside ``0 .. order_levels - 1`` (parameters changed): cancel;
- at least ``max_order_age`` seconds old (``now - created_at``, to the microsecond):
  cancel, hanging or not; its replacement comes once the cancel is confirmed;
- hanging (see below) and hanging orders enabled: keep, whatever the desired order is;
- a desired order in its slot within ``order_refresh_tolerance_pct`` of it, for both the
  price and the remaining amount (``|tracked - desired| <= desired * tolerance``): keep;
- otherwise: cancel. When several orders share a slot (only after an anomaly), the one
  that qualifies and was created first is kept, the others are cancelled.

Hanging orders, kept simple: with ``hanging_orders_enabled``, an active order becomes
hanging once an order of the opposite side has been completely filled at or after its
``created_at`` (``last_fill_at >= created_at``), or if it is already flagged ``hanging``.
A hanging order is exempt from refresh, keeps its slot (so the ladder still never holds
more than ``order_levels`` orders a side) and leaves only when it fills, expires by
``max_order_age`` (set one with hanging orders: without it a hanging order keeps its
slot until it fills), or its layer leaves the ladder. The diff lists newly hanging
orders in ``hang`` so the caller can persist the flag; with hanging orders disabled the
flag is ignored and the order is refreshed like any other.

Budget: the funds of every active order stay counted until its cancel is confirmed, so a
create is kept only while ``locked + new <= budget`` (buys in quote at price times
remaining amount, sells in base), innermost layers first; otherwise it waits for a later
tick (``deferred``). The exchange therefore never sees more locked than the budget.

``wake_at``: when a create deferred by ``filled_order_delay`` may be made (the caller runs the
session again then); creates deferred for funds or for crossing wait for a cancel to be confirmed.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum

from intents.statuses import ACTIVE_STATUSES, TrackedStatus

from .pure_mm import (
    SIDES,
    Budget,
    DesiredOrder,
    PureMMParams,
    Side,
    StrategyInputError,
    coerce_enum_field,
    exact,
    normalise_decimal_fields,
)

_MICROSECONDS = Decimal(1_000_000)


@dataclass(frozen=True)
class TrackedOrder:
    """An order we placed, as tracked; ``amount`` is the original size, ``filled_amount`` what traded."""

    client_order_id: str
    side: Side
    price: Decimal
    amount: Decimal
    layer: int
    status: TrackedStatus
    created_at: datetime
    filled_amount: Decimal = Decimal(0)
    last_fill_at: datetime | None = None
    hanging: bool = False

    def __post_init__(self):
        coerce_enum_field(self, "side", Side)
        coerce_enum_field(self, "status", TrackedStatus)
        normalise_decimal_fields(self)
        if not isinstance(self.client_order_id, str) or not self.client_order_id:
            raise StrategyInputError("client_order_id is required")
        if not isinstance(self.layer, int) or isinstance(self.layer, bool):
            raise StrategyInputError(f"layer must be an int, got {self.layer!r}")
        if self.price <= 0:
            raise StrategyInputError(f"price must be positive, got {self.price} ({self.client_order_id})")
        if self.amount <= 0:
            raise StrategyInputError(f"amount must be positive, got {self.amount} ({self.client_order_id})")
        if not 0 <= self.filled_amount <= self.amount:
            raise StrategyInputError(
                f"filled_amount {self.filled_amount} must be within [0, amount {self.amount}] ({self.client_order_id})"
            )
        _require_aware(self.created_at, "created_at")
        if self.last_fill_at is not None:
            _require_aware(self.last_fill_at, "last_fill_at")
        if not isinstance(self.hanging, bool):
            raise StrategyInputError(f"hanging must be a bool, got {self.hanging!r}")

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled_amount

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def locked(self) -> Decimal:
        """Funds this order holds on the exchange: quote for a buy, base for a sell."""
        return self.price * self.remaining if self.side is Side.BUY else self.remaining


class CancelReason(str, Enum):
    OUT_OF_LADDER = "out_of_ladder"
    MAX_AGE = "max_age"
    NOT_DESIRED = "not_desired"
    OUT_OF_TOLERANCE = "out_of_tolerance"
    DUPLICATE = "duplicate"
    BELOW_MIN_SPREAD = "below_min_spread"


@dataclass(frozen=True)
class Cancel:
    client_order_id: str
    reason: CancelReason


@dataclass(frozen=True)
class OrderDiff:
    """What to do on this tick. ``cancel`` goes first, then ``create``; ``keep`` stays on the book."""

    cancel: tuple[Cancel, ...]
    create: tuple[DesiredOrder, ...]
    keep: tuple[str, ...]
    hang: tuple[str, ...]
    deferred: tuple[DesiredOrder, ...]
    wake_at: datetime | None = None

    @property
    def cancel_ids(self) -> tuple[str, ...]:
        return tuple(cancel.client_order_id for cancel in self.cancel)


def _require_aware(moment, name: str) -> None:
    if not isinstance(moment, datetime):
        raise StrategyInputError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise StrategyInputError(f"{name} must be timezone-aware: {moment!r}")


def _age_seconds(now: datetime, created_at: datetime) -> Decimal:
    delta = now - created_at
    microseconds = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(microseconds) / _MICROSECONDS


def _within(actual: Decimal, wanted: Decimal, tolerance: Decimal) -> bool:
    return abs(actual - wanted) <= wanted * tolerance


def diff_orders(
    *,
    desired: tuple[DesiredOrder, ...] | list[DesiredOrder],
    tracked: tuple[TrackedOrder, ...] | list[TrackedOrder],
    params: PureMMParams,
    budget: Budget,
    now: datetime,
    reference_price: Decimal | None = None,
    refresh: bool = True,
) -> OrderDiff:
    """Cancels, keeps and creates that move ``tracked`` towards ``desired``. Pure; no I/O.
    ``reference_price``: the proposal's (for ``minimum_spread``; None: not checked). ``refresh``: whether
    this run refreshes (every ``order_refresh_time``); a run in between only fills free slots: an order
    that drifted, aged or is no longer desired stays until the next refresh (``_REFRESHES``)."""
    if not isinstance(params, PureMMParams):
        raise StrategyInputError(f"params must be a PureMMParams, not {type(params).__name__}")
    if not isinstance(budget, Budget):
        raise StrategyInputError(f"budget must be a Budget, not {type(budget).__name__}")
    _require_aware(now, "now")
    for order in desired:
        if not isinstance(order, DesiredOrder):
            raise StrategyInputError(f"desired orders must be DesiredOrder, not {type(order).__name__}")
    for order in tracked:
        if not isinstance(order, TrackedOrder):
            raise StrategyInputError(f"tracked orders must be TrackedOrder, not {type(order).__name__}")

    wanted: dict[tuple[Side, int], DesiredOrder] = {}
    for order in desired:
        slot = (order.side, order.layer)
        if slot in wanted:
            raise StrategyInputError(f"two desired orders for {order.side.value} layer {order.layer}")
        wanted[slot] = order

    ids = [order.client_order_id for order in tracked]
    if len(ids) != len(set(ids)):
        raise StrategyInputError("tracked orders must have unique client_order_id values")

    last_full_fill: dict[Side, datetime] = {}
    for order in tracked:
        if order.status is TrackedStatus.FILLED and order.last_fill_at is not None:
            previous = last_full_fill.get(order.side)
            if previous is None or order.last_fill_at > previous:
                last_full_fill[order.side] = order.last_fill_at

    if params.ping_pong_enabled:
        # Ping pong, as Hummingbot's: a side with more recent whole fills than the other is not quoted
        # until the other side catches up; its remaining orders leave as no longer desired.
        fills = {side: sum(1 for o in tracked if o.status is TrackedStatus.FILLED and o.side is side) for side in SIDES}
        if fills[Side.BUY] != fills[Side.SELL]:
            ahead = Side.BUY if fills[Side.BUY] > fills[Side.SELL] else Side.SELL
            wanted = {slot: order for slot, order in wanted.items() if slot[0] is not ahead}

    active = sorted((order for order in tracked if order.is_active), key=lambda o: (o.created_at, o.client_order_id))
    by_slot: dict[tuple[Side, int], list[TrackedOrder]] = defaultdict(list)
    for order in active:
        by_slot[(order.side, order.layer)].append(order)

    cancels: list[Cancel] = []
    keeps: list[str] = []
    hangs: list[str] = []
    with exact():
        for slot, orders in by_slot.items():
            side, layer = slot
            kept_one = False
            for order in orders:
                if order.status is TrackedStatus.PENDING_CANCEL:
                    continue
                hanging = params.hanging_orders_enabled and (
                    order.hanging
                    or (
                        side.opposite in last_full_fill and last_full_fill[side.opposite] >= order.created_at
                    )
                )
                reason: CancelReason | None
                if not 0 <= layer < params.order_levels:
                    reason = CancelReason.OUT_OF_LADDER
                elif params.max_order_age is not None and _age_seconds(now, order.created_at) >= params.max_order_age:
                    reason = CancelReason.MAX_AGE
                elif params.minimum_spread is not None and reference_price is not None and \
                        abs(order.price - reference_price) < reference_price * params.minimum_spread:
                    reason = CancelReason.BELOW_MIN_SPREAD
                elif kept_one:
                    reason = CancelReason.DUPLICATE
                elif hanging:
                    reason = None
                elif slot not in wanted:
                    reason = CancelReason.NOT_DESIRED
                elif not (
                    _within(order.price, wanted[slot].price, params.order_refresh_tolerance_pct)
                    and _within(order.remaining, wanted[slot].amount, params.order_refresh_tolerance_pct)
                ):
                    reason = CancelReason.OUT_OF_TOLERANCE
                else:
                    reason = None
                if not refresh and reason in _REFRESHES:
                    reason = CancelReason.DUPLICATE if kept_one else None
                if reason is None:
                    kept_one = True
                    keeps.append(order.client_order_id)
                    if hanging and not order.hanging:
                        hangs.append(order.client_order_id)
                else:
                    cancels.append(Cancel(order.client_order_id, reason))

        last_fill = max((o.last_fill_at for o in tracked if o.last_fill_at is not None), default=None)
        fill_wait_until = None
        if last_fill is not None and params.filled_order_delay > 0:
            fill_wait_until = last_fill + timedelta(microseconds=int(params.filled_order_delay * _MICROSECONDS))
            if fill_wait_until <= now:
                fill_wait_until = None
        creates, deferred = _creates(wanted, by_slot, active, cancels, params, budget, fill_wait_until)
        # A refresh never empties a side whose funds cannot cover a replacement before the cancel: the
        # refreshed orders of such a side leave one at a time, the outermost first (level by level).
        by_id = {o.client_order_id: o for o in active}
        retracted = False
        for side in SIDES:
            staying = [cid for cid in keeps if by_id[cid].side is side] + [o for o in creates if o.side is side]
            refreshed = [c for c in cancels if by_id[c.client_order_id].side is side and c.reason in _REPLACEMENTS]
            layers = {by_id[c.client_order_id].layer for c in refreshed}
            if not staying and len(layers) > 1:
                # One order stays in each other slot (its oldest refreshed one); all of the outermost leave.
                outermost = max(layers)
                for cancel in sorted(refreshed, key=lambda c: (by_id[c.client_order_id].created_at, c.client_order_id)):
                    layer = by_id[cancel.client_order_id].layer
                    if layer != outermost and layer in layers:
                        layers.discard(layer)
                        cancels.remove(cancel)
                        keeps.append(cancel.client_order_id)
                        retracted = True
        if retracted:
            creates, deferred = _creates(wanted, by_slot, active, cancels, params, budget, fill_wait_until)

    return OrderDiff(
        cancel=tuple(cancels),
        create=tuple(creates),
        keep=tuple(keeps),
        hang=tuple(hangs),
        deferred=tuple(deferred),
        wake_at=fill_wait_until if deferred else None,
    )


# Cancels a refresh makes (the order is still wanted in its slot, at another price, amount or age); the
# level-by-level rule retracts only these.
_REPLACEMENTS = (CancelReason.OUT_OF_TOLERANCE, CancelReason.MAX_AGE)
# What only a refresh cancels: a run between two refreshes (a woken session refilling a free slot)
# leaves these orders on the book.
_REFRESHES = (*_REPLACEMENTS, CancelReason.NOT_DESIRED)


def _creates(wanted, by_slot, active, cancels, params, budget, fill_wait_until):
    """The creates into free slots within the budget, innermost first, and those deferred (see the
    module's docstring: a slot takes a create only while its one active order is leaving)."""
    leaving = {c.client_order_id for c in cancels}
    locked = {side: Decimal(0) for side in SIDES}
    for o in active:
        locked[o.side] += o.locked
    limit = {Side.BUY: budget.quote, Side.SELL: budget.base}
    # Our own orders that may be on the book, the leaving ones included: a create never crosses them.
    lowest_sell = min((o.price for o in active if o.side is Side.SELL), default=None)
    highest_buy = max((o.price for o in active if o.side is Side.BUY), default=None)
    creates: list[DesiredOrder] = []
    deferred: list[DesiredOrder] = []
    for order in sorted(wanted.values(), key=lambda o: (o.side is Side.SELL, o.layer)):
        held = by_slot.get((order.side, order.layer), [])
        if not 0 <= order.layer < params.order_levels or len(held) > 1 or any(
                o.status is not TrackedStatus.PENDING_CANCEL and o.client_order_id not in leaving for o in held):
            continue  # an order stays in the slot, or one is already replacing the leaving one
        crosses = (lowest_sell is not None and order.price >= lowest_sell) if order.side is Side.BUY else (
            highest_buy is not None and order.price <= highest_buy)
        cost = order.notional if order.side is Side.BUY else order.amount
        if fill_wait_until is not None or crosses or locked[order.side] + cost > limit[order.side]:
            deferred.append(order)
            continue
        locked[order.side] += cost
        creates.append(order)
    return creates, deferred
