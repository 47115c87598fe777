"""The pure order diff: keep, cancel and create decisions, so ladders never stack or overspend."""
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from decimal import localcontext

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategy.order_diff import (
    CancelReason,
    TrackedOrder,
    TrackedStatus,
    diff_orders,
)
from strategy.pure_mm import (
    Balances,
    Budget,
    DesiredOrder,
    FloatNotAllowed,
    MarketRules,
    MarketSnapshot,
    PureMMParams,
    Side,
    StrategyInputError,
    propose_orders,
)

pytestmark = pytest.mark.embedded

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
BIG_BUDGET = Budget(base=D("1000"), quote=D("1000000"))


def make_params(**overrides) -> PureMMParams:
    values = dict(bid_spread=D("0.01"), ask_spread=D("0.01"), order_amount=D("1"), order_levels=2)
    values.update(overrides)
    return PureMMParams(**values)


def want(side, layer, price, amount="1"):
    return DesiredOrder(side=Side(side), price=D(price), amount=D(amount), layer=layer)


def tracked(
    cid, side, layer, price, amount="1", *, status="open", age=10, filled="0", last_fill_age=None, hanging=False
):
    return TrackedOrder(
        client_order_id=cid,
        side=Side(side),
        price=D(price),
        amount=D(amount),
        layer=layer,
        status=TrackedStatus(status),
        created_at=NOW - timedelta(seconds=age),
        filled_amount=D(filled),
        last_fill_at=None if last_fill_age is None else NOW - timedelta(seconds=last_fill_age),
        hanging=hanging,
    )


def diff(desired, orders, *, budget=BIG_BUDGET, now=NOW, refresh=True, **params):
    return diff_orders(desired=desired, tracked=orders, params=make_params(**params), budget=budget, now=now,
                       refresh=refresh)


def cancelled(result):
    return {c.client_order_id: c.reason for c in result.cancel}


def created(result):
    return [(o.side.value, o.layer, o.price, o.amount) for o in result.create]


LADDER = [want("buy", 0, "99"), want("buy", 1, "98"), want("sell", 0, "101"), want("sell", 1, "102")]


# --- creating -----------------------------------------------------------------------------


def test_empty_book_creates_the_whole_ladder_innermost_first():
    result = diff(LADDER, [])

    assert created(result) == [
        ("buy", 0, D("99"), D("1")),
        ("buy", 1, D("98"), D("1")),
        ("sell", 0, D("101"), D("1")),
        ("sell", 1, D("102"), D("1")),
    ]
    assert result.cancel == () and result.keep == ()


@pytest.mark.parametrize("status", ["filled", "cancelled", "failed", "lost"])
def test_orders_in_a_terminal_state_free_their_slot(status):
    result = diff([want("buy", 0, "99")], [tracked("a", "buy", 0, "99", status=status)])

    assert created(result) == [("buy", 0, D("99"), D("1"))]
    assert result.cancel == () and result.keep == ()


# --- keeping within tolerance -------------------------------------------------------------


@pytest.mark.parametrize(
    "tolerance, price, amount, filled, kept",
    [
        (D("0"), "99", "1", "0", True),  # identical
        (D("0"), "99.01", "1", "0", False),  # one tick off with no tolerance
        (D("0.001"), "99.05", "1", "0", True),
        (D("0.001"), "99.099", "1", "0", True),  # exactly 0.1 % of 99 above: within
        (D("0.001"), "98.901", "1", "0", True),  # exactly 0.1 % below: within
        (D("0.001"), "99.0991", "1", "0", False),
        (D("0.001"), "98.9009", "1", "0", False),
        (D("0.01"), "99", "1.01", "0", True),  # amount within 1 %
        (D("0.01"), "99", "1.02", "0", False),
        (D("0.1"), "99", "1", "0.5", False),  # half filled: 0.5 left of a desired 1
        (D("0.5"), "99", "1", "0.5", True),
        (D("0.1"), "99", "1", "0.05", True),
    ],
)
def test_open_order_within_refresh_tolerance_is_kept_otherwise_cancelled(tolerance, price, amount, filled, kept):
    status = "partially_filled" if D(filled) else "open"
    order = tracked("a", "buy", 0, price, amount, filled=filled, status=status)

    result = diff([want("buy", 0, "99")], [order], order_refresh_tolerance_pct=tolerance)

    if kept:
        assert result.keep == ("a",) and result.cancel == () and result.create == ()
    else:
        # the replacement is placed on the same tick as the cancel (funds allow: the budget is large)
        assert cancelled(result) == {"a": CancelReason.OUT_OF_TOLERANCE} and result.keep == ()
        assert created(result) == [("buy", 0, D("99"), D("1"))]


def test_a_refreshed_order_is_replaced_before_its_cancel_is_confirmed_when_funds_cover_both():
    desired = [want("buy", 0, "99")]

    first = diff(desired, [tracked("a", "buy", 0, "98")])
    pending = diff(desired, [tracked("a", "buy", 0, "98", status="pending_cancel")])
    replaced = diff(desired, [tracked("a", "buy", 0, "98", status="pending_cancel"),
                              tracked("b", "buy", 0, "99", status="pending_create")])

    assert cancelled(first) == {"a": CancelReason.OUT_OF_TOLERANCE}
    assert created(first) == [("buy", 0, D("99"), D("1"))]
    # a leaving order whose replacement could not be funded before: replaced as soon as it can be
    assert created(pending) == [("buy", 0, D("99"), D("1"))]
    # never a third order in a slot: the replacement keeps it
    assert replaced.keep == ("b",) and replaced.create == () and replaced.cancel == ()


def test_without_funds_for_both_the_slot_is_refilled_after_the_cancel_is_confirmed():
    desired = [want("buy", 0, "99")]
    budget = Budget(base=D("0"), quote=D("150"))  # 98 (leaving) + 99 (replacement) > 150

    first = diff(desired, [tracked("a", "buy", 0, "98")], budget=budget)
    pending = diff(desired, [tracked("a", "buy", 0, "98", status="pending_cancel")], budget=budget)
    confirmed = diff(desired, [tracked("a", "buy", 0, "98", status="cancelled")], budget=budget)

    assert cancelled(first) == {"a": CancelReason.OUT_OF_TOLERANCE} and first.create == ()
    assert [o.layer for o in first.deferred] == [0] and first.wake_at is None  # the confirmation wakes it
    assert pending.cancel == () and pending.create == () and pending.keep == ()
    assert created(confirmed) == [("buy", 0, D("99"), D("1"))]


def test_without_funds_for_replacements_a_refresh_leaves_one_level_at_a_time():
    # Both buys drifted and the quote budget holds only them: cancelling both would empty the side.
    orders = [tracked("b0", "buy", 0, "97"), tracked("b1", "buy", 1, "96")]
    desired = [want("buy", 0, "99"), want("buy", 1, "98")]

    result = diff(desired, orders, budget=Budget(base=D("0"), quote=D("200")))

    assert cancelled(result) == {"b1": CancelReason.OUT_OF_TOLERANCE}  # the outermost first
    assert result.keep == ("b0",) and result.create == ()  # 97 + 96 + 99 > 200: no replacement yet


def test_a_create_never_crosses_our_own_leaving_order():
    # The price jumped: the new buy (105) would trade with our own sell (104) still being cancelled.
    orders = [tracked("s", "sell", 0, "104", status="pending_cancel")]
    result = diff([want("buy", 0, "105"), want("sell", 0, "107")], orders)

    assert created(result) == [("sell", 0, D("107"), D("1"))]
    assert [(o.side.value, o.layer) for o in result.deferred] == [("buy", 0)]


@pytest.mark.parametrize("delay, fill_age, waits", [(None, 0.1, False), ("1", 0.5, True), ("1", 1, False),
                                                    ("5", 2, True)])
def test_a_filled_level_is_refilled_on_the_next_run_after_filled_order_delay(delay, fill_age, waits):
    orders = [tracked("b", "buy", 0, "99", status="filled", last_fill_age=fill_age), tracked("s", "sell", 0, "101")]
    params = {} if delay is None else {"filled_order_delay": D(delay)}

    result = diff([want("buy", 0, "99"), want("sell", 0, "101")], orders, order_levels=1, **params)

    assert result.keep == ("s",)
    if waits:
        assert result.create == () and result.wake_at == NOW - timedelta(seconds=fill_age) + timedelta(seconds=int(delay))
    else:
        assert created(result) == [("buy", 0, D("99"), D("1"))] and result.wake_at is None


def test_pending_create_order_occupies_its_slot():
    result = diff([want("buy", 0, "99")], [tracked("a", "buy", 0, "99", status="pending_create")])

    assert result.keep == ("a",) and result.create == ()


def test_pending_create_order_out_of_tolerance_is_cancelled_and_replaced_once():
    result = diff([want("buy", 0, "99")], [tracked("a", "buy", 0, "95", status="pending_create")])

    assert cancelled(result) == {"a": CancelReason.OUT_OF_TOLERANCE}
    assert created(result) == [("buy", 0, D("99"), D("1"))]


def test_slot_no_longer_desired_is_cancelled():
    result = diff([want("buy", 0, "99")], [tracked("a", "buy", 0, "99"), tracked("b", "sell", 0, "101")])

    assert result.keep == ("a",)
    assert cancelled(result) == {"b": CancelReason.NOT_DESIRED}


@pytest.mark.parametrize("levels, cancelled_layers", [(3, set()), (2, {2}), (1, {1, 2})])
def test_layers_beyond_order_levels_are_cancelled(levels, cancelled_layers):
    orders = [tracked(f"b{layer}", "buy", layer, str(99 - layer)) for layer in range(3)]
    desired = [want("buy", layer, str(99 - layer)) for layer in range(levels)]

    result = diff(desired, orders, order_levels=levels)

    assert cancelled(result) == {f"b{layer}": CancelReason.OUT_OF_LADDER for layer in cancelled_layers}
    assert set(result.keep) == {f"b{layer}" for layer in range(levels)}


def test_two_orders_in_one_slot_keep_the_oldest_and_cancel_the_other():
    orders = [tracked("young", "buy", 0, "99", age=5), tracked("old", "buy", 0, "99", age=50)]

    result = diff([want("buy", 0, "99")], orders)

    assert result.keep == ("old",)
    assert cancelled(result) == {"young": CancelReason.DUPLICATE}
    assert result.create == ()


def test_cancel_is_not_repeated_for_an_order_already_pending_cancel():
    result = diff([], [tracked("a", "buy", 0, "99", status="pending_cancel")])

    assert result.cancel == () and result.keep == () and result.create == ()


# --- max order age ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "max_age, age, kept",
    [
        (None, 10**6, True),
        (D("60"), 59, True),
        (D("60"), 60, False),  # at the limit: replaced
        (D("60"), 61, False),
        (D("0.5"), 0, True),
        (D("0.5"), 1, False),
    ],
)
def test_order_older_than_max_order_age_is_cancelled_for_replacement(max_age, age, kept):
    result = diff([want("buy", 0, "99")], [tracked("a", "buy", 0, "99", age=age)], max_order_age=max_age)

    if kept:
        assert result.keep == ("a",) and result.create == ()
    else:  # replaced on the same tick as its cancel
        assert cancelled(result) == {"a": CancelReason.MAX_AGE}
        assert created(result) == [("buy", 0, D("99"), D("1"))]


def test_max_order_age_counts_microseconds_exactly():
    order = TrackedOrder(
        client_order_id="a", side=Side.BUY, price=D("99"), amount=D("1"), layer=0,
        status=TrackedStatus.OPEN, created_at=NOW - timedelta(seconds=1, microseconds=499_999),
    )

    kept = diff([want("buy", 0, "99")], [order], max_order_age=D("1.5"))
    expired = diff([want("buy", 0, "99")], [order], max_order_age=D("1.499999"))

    assert kept.keep == ("a",)
    assert cancelled(expired) == {"a": CancelReason.MAX_AGE}


# --- hanging orders -----------------------------------------------------------------------


def filled_buy(fill_age):
    return tracked("filled-buy", "buy", 0, "99", status="filled", filled="1", age=100, last_fill_age=fill_age)


@pytest.mark.parametrize(
    "enabled, fill_age, sell_age, hanging",
    [
        (True, 5, 10, True),  # the buy filled while the sell was live
        (True, 10, 10, True),  # at the same instant
        (True, 11, 10, False),  # the fill happened before the sell was placed
        (False, 5, 10, False),
    ],
)
def test_opposite_side_fill_makes_an_order_hanging(enabled, fill_age, sell_age, hanging):
    sell = tracked("sell", "sell", 0, "101", age=sell_age)

    result = diff([want("sell", 0, "103")], [filled_buy(fill_age), sell], hanging_orders_enabled=enabled)

    if hanging:
        assert result.keep == ("sell",) and result.hang == ("sell",) and result.create == ()
    else:  # refreshed like any other: replaced as it is cancelled
        assert cancelled(result) == {"sell": CancelReason.OUT_OF_TOLERANCE} and result.hang == ()
        assert created(result) == [("sell", 0, D("103"), D("1"))]


def test_same_side_fill_does_not_make_an_order_hanging():
    filled_sell = tracked("filled-sell", "sell", 1, "102", status="filled", filled="1", age=100, last_fill_age=1)

    orders = [filled_sell, tracked("sell", "sell", 0, "101")]

    result = diff([want("sell", 0, "103")], orders, hanging_orders_enabled=True)

    assert cancelled(result) == {"sell": CancelReason.OUT_OF_TOLERANCE}


def test_partial_fill_of_the_opposite_side_does_not_make_an_order_hanging():
    partial = tracked("buy", "buy", 0, "99", status="partially_filled", filled="0.5", last_fill_age=1)

    result = diff(
        [want("buy", 0, "99", "0.5"), want("sell", 0, "103")],
        [partial, tracked("sell", "sell", 0, "101")],
        hanging_orders_enabled=True,
    )

    assert cancelled(result) == {"sell": CancelReason.OUT_OF_TOLERANCE}


@pytest.mark.parametrize(
    "desired",
    [[want("sell", 1, "104")], [want("sell", 0, "103"), want("sell", 1, "104")]],
    ids=["slot-not-desired", "slot-desired-elsewhere"],
)
def test_flagged_hanging_order_stays_and_keeps_its_slot(desired):
    sell = tracked("sell", "sell", 0, "101", hanging=True)

    result = diff(desired, [sell], hanging_orders_enabled=True)

    assert result.keep == ("sell",)
    assert result.hang == ()  # already flagged
    assert created(result) == [("sell", 1, D("104"), D("1"))]


@pytest.mark.parametrize(
    "overrides, layer, reason",
    [
        (dict(max_order_age=D("30")), 0, CancelReason.MAX_AGE),
        (dict(order_levels=1), 1, CancelReason.OUT_OF_LADDER),
        (dict(hanging_orders_enabled=False), 0, CancelReason.OUT_OF_TOLERANCE),
    ],
)
def test_hanging_order_still_leaves_by_age_ladder_size_or_when_disabled(overrides, layer, reason):
    values = dict(hanging_orders_enabled=True)
    values.update(overrides)
    sell = tracked("sell", "sell", layer, "101", age=40, hanging=True)

    result = diff([want("sell", 0, "103")], [sell], **values)

    assert cancelled(result) == {"sell": reason}


# --- budget -------------------------------------------------------------------------------


def test_creates_wait_while_a_cancelled_order_still_locks_the_budget():
    # Buy budget 200 quote: the old layer-1 buy (98) is being cancelled and still locks 98.
    orders = [tracked("b0", "buy", 0, "99"), tracked("b1", "buy", 1, "90")]
    desired = [want("buy", 0, "99"), want("buy", 1, "98"), want("buy", 2, "97")]

    result = diff(desired, orders, order_levels=3, budget=Budget(base=D("0"), quote=D("200")))

    assert result.keep == ("b0",)
    assert cancelled(result) == {"b1": CancelReason.OUT_OF_TOLERANCE}
    assert result.create == ()  # 99 + 90 + 98 > 200: no replacement of b1 before its cancel; 97 neither
    assert [o.layer for o in result.deferred] == [1, 2]


@pytest.mark.parametrize("status", ["pending_cancel", "pending_create", "open", "partially_filled"])
def test_every_active_order_counts_against_the_budget(status):
    orders = [tracked("b0", "buy", 0, "99", status=status)]
    desired = [want("buy", 1, "98")]

    short = diff(desired, orders, budget=Budget(base=D("0"), quote=D("196.99")))
    enough = diff(desired, orders, budget=Budget(base=D("0"), quote=D("197")))

    assert short.create == () and [o.layer for o in short.deferred] == [1]
    assert created(enough) == [("buy", 1, D("98"), D("1"))]


@pytest.mark.parametrize(
    "quote, base, created_layers",
    [
        (D("296"), D("3"), [("buy", 1), ("buy", 2), ("sell", 1), ("sell", 2)]),
        (D("295.99"), D("2.99"), [("buy", 1), ("sell", 1)]),
        (D("197"), D("2"), [("buy", 1), ("sell", 1)]),
        (D("196.99"), D("1.999"), []),
        (D("0"), D("0"), []),
    ],
)
def test_creates_never_push_locked_funds_past_the_budget(quote, base, created_layers):
    orders = [tracked("b0", "buy", 0, "99"), tracked("s0", "sell", 0, "101")]
    desired = [want(side, layer, price) for side, layer, price in [
        ("buy", 0, "99"), ("buy", 1, "98"), ("buy", 2, "99"),
        ("sell", 0, "101"), ("sell", 1, "102"), ("sell", 2, "103"),
    ]]

    result = diff(desired, orders, order_levels=3, budget=Budget(base=base, quote=quote))

    assert [(o.side.value, o.layer) for o in result.create] == created_layers
    assert set(result.keep) == {"b0", "s0"}


def test_partially_filled_order_locks_only_its_remaining_amount():
    orders = [tracked("b0", "buy", 0, "100", amount="2", filled="1.5", status="partially_filled")]

    result = diff(
        [want("buy", 0, "100", "2"), want("buy", 1, "98", "1")],
        orders,
        order_refresh_tolerance_pct=D("1"),
        budget=Budget(base=D("0"), quote=D("148")),
    )

    assert result.keep == ("b0",)
    assert created(result) == [("buy", 1, D("98"), D("1"))]  # 50 locked + 98 = 148


# --- inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: TrackedOrder(
            client_order_id="a", side="buy", price=D("99"), amount=D("1"), layer="0", status="open", created_at=NOW),
         "layer must be an int"),
        (lambda: TrackedOrder(
            client_order_id="a", side="buy", price=D("99"), amount=1.0, layer=0, status="open", created_at=NOW),
         "amount must be a Decimal"),
        (lambda: TrackedOrder(
            client_order_id="a", side="buy", price=D("99"), amount=D("1"), layer=0, status="open",
            created_at=datetime(2026, 1, 1)), "created_at must be timezone-aware"),
        (lambda: TrackedOrder(
            client_order_id="a", side="buy", price=D("99"), amount=D("1"), layer=0, status="gone", created_at=NOW),
         "status must be one of"),
        (lambda: TrackedOrder(
            client_order_id="a", side="buy", price=D("99"), amount=D("1"), layer=0, status="open", created_at=NOW,
            filled_amount=D("2")), "filled_amount 2 must be within"),
        (lambda: TrackedOrder(
            client_order_id="", side="buy", price=D("99"), amount=D("1"), layer=0, status="open", created_at=NOW),
         "client_order_id is required"),
        (lambda: diff([], [tracked("a", "buy", 0, "99"), tracked("a", "sell", 0, "101")]), "unique client_order_id"),
        (lambda: diff([want("buy", 0, "99"), want("buy", 0, "98")], []), "two desired orders for buy layer 0"),
        (lambda: diff([], [], now=datetime(2026, 1, 1)), "now must be timezone-aware"),
    ],
)
def test_invalid_diff_inputs_are_rejected_with_the_reason(build, message):
    with pytest.raises(StrategyInputError, match=message):
        build()


def test_float_price_in_a_tracked_order_is_a_float_error():
    with pytest.raises(FloatNotAllowed):
        TrackedOrder(client_order_id="a", side="buy", price=99.0, amount=D("1"), layer=0, status="open", created_at=NOW)


# --- ladders never stack: replays over a moving price ------------------------------------


class LadderReplay:
    """Strategy, diff and a miniature exchange, tick after tick, checking the ladder each time.

    Cancels go ``pending_cancel`` and creates ``pending_create`` as the intents layer writes
    them; the exchange then confirms them (or not, on a slow tick) and fills whole orders,
    which moves the budget and the balances as settlement would.
    """

    def __init__(self, *, params, rules, budget: Budget):
        self.params, self.rules, self.budget = params, rules, budget
        self.orders: dict[str, TrackedOrder] = {}
        self.created = 0
        self.most_per_side = 0

    def tick(self, *, now, market) -> None:
        proposal = propose_orders(
            params=self.params, market=market, rules=self.rules,
            balances=Balances(base=self.budget.base, quote=self.budget.quote), budget=self.budget,
        )
        result = diff_orders(
            desired=proposal.orders, tracked=list(self.orders.values()), params=self.params, budget=self.budget, now=now,
            reference_price=proposal.reference_price,
        )
        for cancel in result.cancel:
            self.orders[cancel.client_order_id] = replace(
                self.orders[cancel.client_order_id], status=TrackedStatus.PENDING_CANCEL
            )
        for cid in result.hang:
            self.orders[cid] = replace(self.orders[cid], hanging=True)
        for order in result.create:
            self.created += 1
            cid = f"c{self.created}"
            self.orders[cid] = TrackedOrder(
                client_order_id=cid, side=order.side, price=order.price, amount=order.amount,
                layer=order.layer, status=TrackedStatus.PENDING_CREATE, created_at=now,
            )
        self.check()

    def check(self) -> None:
        active = [o for o in self.orders.values() if o.is_active]
        staying = [o for o in active if o.status is not TrackedStatus.PENDING_CANCEL]
        slots = [(o.side, o.layer) for o in staying]
        assert len(set(slots)) == len(slots), "two staying orders in one slot: the ladder stacked"
        per_slot = Counter((o.side, o.layer) for o in active)
        assert max(per_slot.values(), default=0) <= 2, "more than a leaving order and its replacement in a slot"
        for side in Side:
            live = [o for o in staying if o.side is side]
            assert len(live) <= self.params.order_levels
            assert all(0 <= o.layer < self.params.order_levels for o in live)
            assert len([o for o in active if o.side is side]) <= 2 * self.params.order_levels
            self.most_per_side = max(self.most_per_side, len(live))
        buys = [o.price for o in active if o.side is Side.BUY]
        sells = [o.price for o in active if o.side is Side.SELL]
        if buys and sells:
            assert max(buys) < min(sells), "our own orders cross"
        with localcontext() as ctx:
            ctx.prec = 60
            assert sum((o.locked for o in active if o.side is Side.BUY), D(0)) <= self.budget.quote
            assert sum((o.locked for o in active if o.side is Side.SELL), D(0)) <= self.budget.base

    def exchange_confirms(self) -> None:
        for cid, order in list(self.orders.items()):
            if order.status is TrackedStatus.PENDING_CREATE:
                self.orders[cid] = replace(order, status=TrackedStatus.OPEN)
            elif order.status is TrackedStatus.PENDING_CANCEL:
                self.orders[cid] = replace(order, status=TrackedStatus.CANCELLED)

    def exchange_fills(self, side: Side, *, now) -> None:
        """The innermost resting order of ``side`` (open or being cancelled) fills whole."""
        resting = sorted(
            (o for o in self.orders.values()
             if o.side is side and o.status in (TrackedStatus.OPEN, TrackedStatus.PENDING_CANCEL)),
            key=lambda o: o.layer,
        )
        if not resting:
            return
        order = resting[0]
        self.orders[order.client_order_id] = replace(
            order, status=TrackedStatus.FILLED, filled_amount=order.amount, last_fill_at=now
        )
        with localcontext() as ctx:
            ctx.prec = 60
            notional = order.price * order.amount
            if side is Side.BUY:
                self.budget = Budget(base=self.budget.base + order.amount, quote=self.budget.quote - notional)
            else:
                self.budget = Budget(base=self.budget.base - order.amount, quote=self.budget.quote + notional)


def book_around(price: D) -> MarketSnapshot:
    return MarketSnapshot(best_bid=price - D("0.05"), best_ask=price + D("0.05"), last_price=price)


def test_ladder_never_stacks_over_100_ticks_with_a_moving_price():
    params = make_params(order_levels=3, order_level_spread=D("0.002"), max_order_age=D("7"))
    replay = LadderReplay(
        params=params, rules=MarketRules(price_tick=D("0.01"), amount_step=D("0.001")),
        budget=Budget(base=D("3"), quote=D("300")),
    )
    price = D("100")
    for tick in range(100):
        now = NOW + timedelta(seconds=tick)
        price += D((tick * 7919) % 11 - 5) / D(10)  # a deterministic walk
        replay.tick(now=now, market=book_around(price))
        if tick % 3 != 2:  # the exchange answers on most ticks, not all
            replay.exchange_confirms()

    assert replay.most_per_side == params.order_levels  # the ladder was really quoted
    assert replay.created > 10  # and really refreshed


@st.composite
def replays(draw):
    params = make_params(
        order_levels=draw(st.integers(1, 4)),
        order_level_spread=draw(st.sampled_from([D("0"), D("0.001"), D("0.01")])),
        order_refresh_tolerance_pct=draw(st.sampled_from([D("0"), D("0.002"), D("0.02")])),
        max_order_age=draw(st.sampled_from([None, D("3"), D("10")])),
        hanging_orders_enabled=draw(st.booleans()),
        inventory_skew_enabled=draw(st.booleans()),
        amount_change_per_layer=draw(st.sampled_from([D("0"), D("0.5")])),
        filled_order_delay=draw(st.sampled_from([D("0"), D("1"), D("3")])),
        ping_pong_enabled=draw(st.booleans()),
        minimum_spread=draw(st.sampled_from([None, D("0.005"), D("0.02")])),
    )
    budget = Budget(base=D(draw(st.integers(0, 60))) / D(10), quote=D(draw(st.integers(0, 600))))
    steps = draw(st.lists(
        st.tuples(st.integers(-30, 30), st.booleans(), st.sampled_from([None, None, Side.BUY, Side.SELL])),
        min_size=10, max_size=40,
    ))
    return params, budget, steps


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(replays())
def test_property_ladder_never_stacks_or_overspends_through_fills_and_slow_confirms(replay_case):
    params, budget, steps = replay_case
    replay = LadderReplay(params=params, rules=MarketRules(price_tick=D("0.01"), amount_step=D("0.001")), budget=budget)
    price = D("100")
    for tick, (move, confirmed, fill) in enumerate(steps):
        now = NOW + timedelta(seconds=tick)
        price = max(price + D(move) / D(10), D("1"))
        replay.tick(now=now, market=book_around(price))
        if fill is not None:
            replay.exchange_fills(fill, now=now)
            replay.check()
        if confirmed:
            replay.exchange_confirms()
            replay.check()


# --- the property -------------------------------------------------------------------------

STATUSES = list(TrackedStatus)


@st.composite
def diff_scenarios(draw):
    levels = draw(st.integers(1, 4))
    params = make_params(
        order_levels=levels,
        order_refresh_tolerance_pct=draw(st.sampled_from([D("0"), D("0.001"), D("0.01"), D("0.5")])),
        max_order_age=draw(st.sampled_from([None, D("5"), D("30")])),
        hanging_orders_enabled=draw(st.booleans()),
        filled_order_delay=draw(st.sampled_from([D("0"), D("1"), D("30")])),
        ping_pong_enabled=draw(st.booleans()),
        minimum_spread=draw(st.sampled_from([None, D("0.001"), D("0.05")])),
    )
    desired = []
    for side in Side:
        for layer in draw(st.sets(st.integers(0, levels - 1), max_size=levels)):
            price = D(draw(st.integers(9000, 11000))) / D(100)
            amount = D(draw(st.integers(1, 30))) / D(10)
            desired.append(DesiredOrder(side=side, price=price, amount=amount, layer=layer))
    tracked_orders = []
    for index in range(draw(st.integers(0, 12))):
        if desired and draw(st.booleans()):
            # An order placed from a desired one, so keeps, duplicates and hanging orders are common.
            model = draw(st.sampled_from(desired))
            side, layer, price, amount = model.side, model.layer, model.price, model.amount
        else:
            side = draw(st.sampled_from(list(Side)))
            layer = draw(st.integers(0, levels + 1))
            price = D(draw(st.integers(9000, 11000))) / D(100)
            amount = D(draw(st.integers(1, 30))) / D(10)
        status = draw(st.sampled_from(STATUSES))
        tenths_filled = 10 if status is TrackedStatus.FILLED else draw(st.sampled_from([0, 0, 0, 1, 5]))
        filled = amount * D(tenths_filled) / D(10)
        tracked_orders.append(
            TrackedOrder(
                client_order_id=f"o{index}",
                side=side,
                price=price,
                amount=amount,
                layer=layer,
                status=status,
                created_at=NOW - timedelta(seconds=draw(st.integers(0, 40))),
                filled_amount=filled,
                last_fill_at=NOW - timedelta(seconds=draw(st.integers(0, 60))) if filled else None,
                hanging=draw(st.booleans()),
            )
        )
    budget = Budget(base=D(draw(st.integers(0, 150))) / D(10), quote=D(draw(st.integers(0, 1500))))
    return params, desired, tracked_orders, budget, draw(st.booleans())


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(diff_scenarios())
def test_property_diff_never_leaves_more_than_order_levels_per_side(scenario):
    params, desired, tracked_orders, budget, refresh = scenario

    result = diff_orders(desired=desired, tracked=tracked_orders, params=params, budget=budget, now=NOW,
                         reference_price=D("100"), refresh=refresh)

    by_id = {o.client_order_id: o for o in tracked_orders}
    decided = [c.client_order_id for c in result.cancel] + list(result.keep)
    # Every active order that is not already being cancelled gets exactly one decision.
    assert sorted(decided) == sorted(
        o.client_order_id for o in tracked_orders if o.is_active and o.status is not TrackedStatus.PENDING_CANCEL
    )
    assert set(result.hang) <= set(result.keep)
    with localcontext() as ctx:
        ctx.prec = 60
        for side in Side:
            left_open = [by_id[cid] for cid in result.keep if by_id[cid].side is side]
            new = [o for o in result.create if o.side is side]
            assert len(left_open) + len(new) <= params.order_levels
            slots = [o.layer for o in left_open] + [o.layer for o in new]
            assert len(set(slots)) == len(slots)  # one staying order per layer
            assert all(0 <= layer < params.order_levels for layer in slots)
            # a create only into a slot whose one active order (if any) is on its way out
            leaving = {c.client_order_id for c in result.cancel}
            for o in new:
                held = [t for t in tracked_orders if t.is_active and (t.side, t.layer) == (side, o.layer)]
                assert len(held) <= 1
                assert all(t.status is TrackedStatus.PENDING_CANCEL or t.client_order_id in leaving for t in held)
            # never crossing our own orders that may be on the book
            opposite = [t.price for t in tracked_orders if t.is_active and t.side is not side]
            if opposite:
                assert all(o.price < min(opposite) if side is Side.BUY else o.price > max(opposite) for o in new)
            if new:
                active = [o for o in tracked_orders if o.is_active and o.side is side]
                if side is Side.BUY:
                    total = sum((o.price * o.remaining for o in active), D(0)) + sum(o.notional for o in new)
                    assert total <= budget.quote
                else:
                    total = sum((o.remaining for o in active), D(0)) + sum(o.amount for o in new)
                    assert total <= budget.base


# --- quoting options (issue 15) -------------------------------------------------------------


def test_an_order_drifted_nearer_than_minimum_spread_is_cancelled():
    orders = [tracked("b", "buy", 0, "99.8"), tracked("s", "sell", 0, "101")]

    result = diff_orders(desired=[want("sell", 0, "101")], tracked=orders,
                         params=make_params(order_levels=1, minimum_spread=D("0.005")), budget=BIG_BUDGET, now=NOW,
                         reference_price=D("100"))

    assert cancelled(result) == {"b": CancelReason.BELOW_MIN_SPREAD} and result.keep == ("s",)


@pytest.mark.parametrize("fills, quoted", [
    ([("buy", 5)], {"sell"}),  # a buy filled last: buys wait for a sell fill
    ([("buy", 9), ("sell", 5)], {"buy", "sell"}),  # the other side caught up: both quoted again
    ([("buy", 9), ("sell", 5), ("sell", 2)], {"buy"}),
    ([("sell", 5)], {"buy"}),
    ([], {"buy", "sell"}),
])
def test_ping_pong_quotes_the_filled_side_again_only_after_the_other_side_fills(fills, quoted):
    orders = [tracked(f"f{n}", side, 0, "99" if side == "buy" else "101", status="filled", filled="1", age=30,
                      last_fill_age=age) for n, (side, age) in enumerate(fills)]
    desired = [want("buy", 0, "99"), want("sell", 0, "101")]

    result = diff(desired, orders, order_levels=1, ping_pong_enabled=True)

    assert {o.side.value for o in result.create} == quoted


def test_ping_pong_takes_the_filled_sides_resting_orders_off():
    orders = [tracked("f", "buy", 0, "99", status="filled", filled="1", last_fill_age=5),
              tracked("b1", "buy", 1, "98"), tracked("s0", "sell", 0, "101")]
    desired = [want("buy", 0, "99"), want("buy", 1, "98"), want("sell", 0, "101")]

    result = diff(desired, orders, ping_pong_enabled=True)

    assert cancelled(result) == {"b1": CancelReason.NOT_DESIRED} and result.keep == ("s0",) and result.create == ()


def test_a_run_between_refreshes_only_refills_free_slots():
    # A woken run (an order closed): the drifted buy and the no-longer-desired sell stay until the refresh;
    # the free layer-1 buy slot is filled.
    orders = [tracked("b0", "buy", 0, "98"), tracked("s1", "sell", 1, "103")]
    desired = [want("buy", 0, "99"), want("buy", 1, "98"), want("sell", 0, "101")]

    between = diff(desired, orders, refresh=False)
    refreshing = diff(desired, orders)

    assert set(between.keep) == {"b0", "s1"} and between.cancel == ()
    assert created(between) == [("buy", 1, D("98"), D("1")), ("sell", 0, D("101"), D("1"))]
    assert cancelled(refreshing) == {"b0": CancelReason.OUT_OF_TOLERANCE, "s1": CancelReason.NOT_DESIRED}
