"""The pure market-making function: every parameter, precision and budget edge, and its invariants."""
from decimal import Decimal as D
from datetime import datetime, timedelta, timezone
from decimal import localcontext

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategy.pure_mm import (
    AmountChangeType,
    Balances,
    Budget,
    DesiredOrder,
    DropReason,
    FloatNotAllowed,
    MarketRules,
    MarketSnapshot,
    PriceSource,
    PureMMParams,
    Side,
    StrategyInputError,
    inventory_cost_after,
    inventory_price,
    inventory_skew_ratios,
    moving_band_anchor,
    propose_orders,
)

pytestmark = pytest.mark.embedded

BOOK = MarketSnapshot(best_bid=D("99"), best_ask=D("101"), last_price=D("100.5"))
RULES = MarketRules(price_tick=D("0.01"), amount_step=D("0.001"))
BALANCES = Balances(base=D("10"), quote=D("1000"))
BUDGET = Budget(base=D("100"), quote=D("100000"))


def make_params(**overrides) -> PureMMParams:
    values = dict(bid_spread=D("0.01"), ask_spread=D("0.01"), order_amount=D("1"))
    values.update(overrides)
    return PureMMParams(**values)


def propose(*, market=BOOK, rules=RULES, balances=BALANCES, budget=BUDGET, reference_market=None, band_anchor=None,
            **params):
    return propose_orders(params=make_params(**params), market=market, rules=rules, balances=balances, budget=budget,
                          reference_market=reference_market, band_anchor=band_anchor)


def ladder(proposal, side):
    return [(order.layer, order.price, order.amount) for order in proposal.side(side)]


def reasons(proposal, side):
    return {dropped.layer: dropped.reason for dropped in proposal.dropped if dropped.side is side}


# --- spreads and price source -------------------------------------------------------------


@pytest.mark.parametrize(
    "bid_spread, ask_spread, buy_price, sell_price",
    [
        (D("0.01"), D("0.01"), D("99.00"), D("101.00")),
        (D("0.005"), D("0.02"), D("99.50"), D("102.00")),
        (D("0"), D("0"), D("100.00"), D("100.00")),
        (D("0.5"), D("1.5"), D("50.00"), D("250.00")),
    ],
)
def test_spreads_are_fractions_of_the_reference_price(bid_spread, ask_spread, buy_price, sell_price):
    proposal = propose(bid_spread=bid_spread, ask_spread=ask_spread)

    assert ladder(proposal, Side.BUY) == [(0, buy_price, D("1"))]
    assert ladder(proposal, Side.SELL) == [(0, sell_price, D("1"))]


@pytest.mark.parametrize(
    "source, reference, buy_price, sell_price",
    [
        (PriceSource.MID, D("100"), D("99.00"), D("101.00")),
        (PriceSource.BEST_BID, D("99"), D("98.01"), D("99.99")),
        (PriceSource.BEST_ASK, D("101"), D("99.99"), D("102.01")),
        # last 100.5: buy 99.495 rounds down, sell 101.505 rounds up.
        (PriceSource.LAST, D("100.5"), D("99.49"), D("101.51")),
        ("last", D("100.5"), D("99.49"), D("101.51")),
    ],
)
def test_price_source_picks_the_reference_price(source, reference, buy_price, sell_price):
    proposal = propose(price_source=source)

    assert proposal.reference_price == reference
    assert ladder(proposal, Side.BUY) == [(0, buy_price, D("1"))]
    assert ladder(proposal, Side.SELL) == [(0, sell_price, D("1"))]


@pytest.mark.parametrize(
    "source, market",
    [
        (PriceSource.MID, MarketSnapshot(best_bid=D("99"), best_ask=None, last_price=D("100"))),
        (PriceSource.MID, MarketSnapshot(best_bid=None, best_ask=D("101"))),
        (PriceSource.BEST_BID, MarketSnapshot(best_bid=None, best_ask=D("101"))),
        (PriceSource.BEST_ASK, MarketSnapshot(best_bid=D("99"), best_ask=None)),
        (PriceSource.LAST, MarketSnapshot(best_bid=D("99"), best_ask=D("101"), last_price=None)),
    ],
)
def test_missing_reference_price_proposes_nothing(source, market):
    proposal = propose(price_source=source, market=market, order_levels=2)

    assert proposal.orders == ()
    assert proposal.reference_price is None
    assert {(d.side, d.layer, d.reason) for d in proposal.dropped} == {
        (side, layer, DropReason.NO_REFERENCE_PRICE) for side in Side for layer in (0, 1)
    }


# --- layers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "levels, level_spread, buys, sells",
    [
        (1, D("0.01"), [D("99.00")], [D("101.00")]),
        (3, D("0"), [D("99.00")] * 3, [D("101.00")] * 3),
        (3, D("0.01"), [D("99.00"), D("98.00"), D("97.00")], [D("101.00"), D("102.00"), D("103.00")]),
        (2, D("0.0025"), [D("99.00"), D("98.75")], [D("101.00"), D("101.25")]),
    ],
)
def test_order_level_spread_widens_each_layer(levels, level_spread, buys, sells):
    proposal = propose(order_levels=levels, order_level_spread=level_spread)

    assert [price for _, price, _ in ladder(proposal, Side.BUY)] == buys
    assert [price for _, price, _ in ladder(proposal, Side.SELL)] == sells
    assert [layer for layer, _, _ in ladder(proposal, Side.BUY)] == list(range(levels))


@pytest.mark.parametrize(
    "change_type, change, amounts, dropped",
    [
        (AmountChangeType.FIXED, D("0"), [D("1"), D("1"), D("1")], {}),
        (AmountChangeType.FIXED, D("0.5"), [D("1"), D("1.5"), D("2")], {}),
        (AmountChangeType.FIXED, D("-0.5"), [D("1"), D("0.5")], {2: DropReason.NON_POSITIVE_AMOUNT}),
        (AmountChangeType.PERCENTAGE, D("0.1"), [D("1"), D("1.1"), D("1.21")], {}),
        (AmountChangeType.PERCENTAGE, D("-0.5"), [D("1"), D("0.5"), D("0.25")], {}),
        # 1 * 1.05 ** 2 = 1.1025, rounded down to the 0.001 step.
        ("percentage", D("0.05"), [D("1"), D("1.05"), D("1.102")], {}),
    ],
)
def test_amount_changes_per_layer_fixed_or_percentage(change_type, change, amounts, dropped):
    proposal = propose(order_levels=3, amount_change_type=change_type, amount_change_per_layer=change)

    for side in Side:
        assert [amount for _, _, amount in ladder(proposal, side)] == amounts
        assert reasons(proposal, side) == dropped


# --- price band ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ceiling, floor, buys_on, sells_on",
    [
        (None, None, True, True),
        (D("100"), None, False, True),  # reference at the ceiling: no buys
        (D("99.5"), None, False, True),  # reference above the ceiling: no buys
        (D("100.01"), None, True, True),
        (None, D("100"), True, False),  # reference at the floor: no sells
        (None, D("100.5"), True, False),  # reference below the floor: no sells
        (None, D("99.99"), True, True),
        (D("100.01"), D("99.99"), True, True),
    ],
)
def test_price_band_switches_a_side_off_by_reference_price(ceiling, floor, buys_on, sells_on):
    proposal = propose(price_ceiling=ceiling, price_floor=floor, order_levels=2)

    assert bool(proposal.side(Side.BUY)) is buys_on
    assert bool(proposal.side(Side.SELL)) is sells_on
    if not buys_on:
        assert reasons(proposal, Side.BUY) == {0: DropReason.PRICE_BAND, 1: DropReason.PRICE_BAND}
    if not sells_on:
        assert reasons(proposal, Side.SELL) == {0: DropReason.PRICE_BAND, 1: DropReason.PRICE_BAND}


def test_no_buy_priced_at_or_above_the_ceiling_even_with_zero_spread():
    proposal = propose(bid_spread=D("0"), ask_spread=D("0"), price_ceiling=D("100.01"))

    (buy,) = proposal.side(Side.BUY)
    assert buy.price < D("100.01")


# --- inventory skew -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "base, quote, bid_ratio, ask_ratio",
    [
        (D("10"), D("1000"), D("1"), D("1")),  # on target: 50 % of 2000 in base
        (D("10.5"), D("950"), D("0.5"), D("1.5")),  # half way to the band's upper edge
        (D("11"), D("900"), D("0"), D("2")),  # at the upper edge: buys stop
        (D("20"), D("0"), D("0"), D("2")),  # beyond it
        (D("9.5"), D("1050"), D("1.5"), D("0.5")),  # half way to the lower edge
        (D("9"), D("1100"), D("2"), D("0")),  # at the lower edge: sells stop
        (D("0"), D("2000"), D("2"), D("0")),
        (D("0"), D("0"), D("0"), D("0")),  # nothing to quote with
    ],
)
def test_inventory_skew_ratios_follow_the_base_share_of_real_balances(base, quote, bid_ratio, ask_ratio):
    ratios = inventory_skew_ratios(
        base=base, quote=quote, price=D("100"), target_base_fraction=D("0.5"), base_range=D("1")
    )

    assert ratios == (bid_ratio, ask_ratio)


@pytest.mark.parametrize(
    "base_value, expected",
    [(D("999.99"), (D("2"), D("0"))), (D("1000"), (D("1"), D("1"))), (D("1000.01"), (D("0"), D("2")))],
)
def test_inventory_skew_with_zero_range_is_a_step_at_the_target(base_value, expected):
    ratios = inventory_skew_ratios(
        base=base_value / D("100"), quote=D("2000") - base_value, price=D("100"),
        target_base_fraction=D("0.5"), base_range=D("0"),
    )

    assert ratios == expected


def test_inventory_skew_range_is_capped_at_half_the_portfolio():
    # A huge range would put the lower edge below zero; Hummingbot caps it at half the value.
    ratios = inventory_skew_ratios(
        base=D("5"), quote=D("1500"), price=D("100"), target_base_fraction=D("0.5"), base_range=D("1000")
    )

    assert ratios == (D("1.5"), D("0.5"))


@pytest.mark.parametrize(
    "enabled, target, base, quote, buy_amount, sell_amount",
    [
        (False, D("0.5"), D("20"), D("0"), D("1"), D("1")),  # disabled: balances ignored
        (True, D("0.5"), D("10"), D("1000"), D("1"), D("1")),
        (True, D("0.5"), D("10.5"), D("950"), D("0.5"), D("1.5")),
        (True, D("0.25"), D("5"), D("1500"), D("1"), D("1")),  # 25 % of 2000 held in base
        (True, D("0.25"), D("10"), D("1000"), D("0"), D("2")),  # far above a 25 % target
    ],
)
def test_inventory_skew_scales_amounts_from_real_balances(enabled, target, base, quote, buy_amount, sell_amount):
    proposal = propose(
        inventory_skew_enabled=enabled,
        inventory_target_base_pct=target,
        balances=Balances(base=base, quote=quote),
    )

    buys = [amount for _, _, amount in ladder(proposal, Side.BUY)]
    assert buys == ([buy_amount] if buy_amount else [])
    assert [amount for _, _, amount in ladder(proposal, Side.SELL)] == [sell_amount]
    if not buy_amount:
        assert reasons(proposal, Side.BUY) == {0: DropReason.NON_POSITIVE_AMOUNT}


def test_inventory_range_is_multiplier_times_one_sides_ladder_amount():
    # Ladder of 2 x 1 base, multiplier 0.5: range 1 base = 100 quote. Base value 1050 vs target 1000.
    proposal = propose(
        order_levels=2,
        inventory_skew_enabled=True,
        inventory_range_multiplier=D("0.5"),
        balances=Balances(base=D("10.5"), quote=D("950")),
    )

    assert (proposal.bid_ratio, proposal.ask_ratio) == (D("0.5"), D("1.5"))
    assert [amount for _, _, amount in ladder(proposal, Side.SELL)] == [D("1.5"), D("1.5")]


# --- precision and minimums ---------------------------------------------------------------


@pytest.mark.parametrize(
    "tick, price, side, expected",
    [
        (D("0.01"), D("99.999"), Side.BUY, D("99.99")),
        (D("0.01"), D("99.999"), Side.SELL, D("100.00")),
        (D("0.01"), D("99.99"), Side.BUY, D("99.99")),
        (D("0.01"), D("99.99"), Side.SELL, D("99.99")),
        (D("0.05"), D("99.97"), Side.BUY, D("99.95")),
        (D("0.05"), D("99.97"), Side.SELL, D("100.00")),
        (D("5"), D("12347"), Side.BUY, D("12345")),
        (D("5"), D("12347"), Side.SELL, D("12350")),
        (D("0.00000001"), D("0.000012345678912"), Side.BUY, D("0.00001234")),
        (D("0.00000001"), D("0.000012345678912"), Side.SELL, D("0.00001235")),
        (D("0.000000000000000001"), D("123456789012.123456789012345678"), Side.BUY,
         D("123456789012.123456789012345678")),
    ],
)
def test_prices_round_away_from_the_book(tick, price, side, expected):
    rules = MarketRules(price_tick=tick, amount_step=D("1"))

    assert rules.round_price(price, side) == expected


@pytest.mark.parametrize(
    "step, amount, expected",
    [
        (D("0.001"), D("1.23456"), D("1.234")),
        (D("0.001"), D("1.2349999"), D("1.234")),
        (D("0.5"), D("1.7"), D("1.5")),
        (D("1"), D("0.999"), D("0")),
        (D("10"), D("129"), D("120")),
    ],
)
def test_amounts_round_down_to_the_step(step, amount, expected):
    assert MarketRules(price_tick=D("1"), amount_step=step).round_amount(amount) == expected


def test_proposed_prices_and_amounts_sit_on_the_grid():
    rules = MarketRules(price_tick=D("0.05"), amount_step=D("0.25"))
    proposal = propose(
        rules=rules,
        order_levels=3,
        order_level_spread=D("0.0013"),
        amount_change_type=AmountChangeType.PERCENTAGE,
        amount_change_per_layer=D("0.3"),
        price_source=PriceSource.LAST,
    )

    assert [(o.price, o.amount) for o in proposal.side(Side.BUY)] == [
        (D("99.45"), D("1")),  # 99.495 down
        (D("99.35"), D("1.25")),  # 99.36435 down; 1.3 down
        (D("99.20"), D("1.5")),  # 99.2337 down; 1.69 down
    ]
    assert [(o.price, o.amount) for o in proposal.side(Side.SELL)] == [
        (D("101.55"), D("1")),  # 101.505 up
        (D("101.65"), D("1.25")),  # 101.63565 up
        (D("101.80"), D("1.5")),  # 101.7663 up
    ]


@pytest.mark.parametrize(
    "min_amount, min_notional, buy_reason, sell_reason",
    [
        (D("1"), D("0"), None, None),  # exactly the minimum amount is enough
        (D("1.001"), D("0"), DropReason.BELOW_MIN_AMOUNT, DropReason.BELOW_MIN_AMOUNT),
        (D("0"), D("99"), None, None),  # buy notional 99.00 exactly at the minimum
        (D("0"), D("99.01"), DropReason.BELOW_MIN_NOTIONAL, None),  # sell notional is 101
        (D("0"), D("101.01"), DropReason.BELOW_MIN_NOTIONAL, DropReason.BELOW_MIN_NOTIONAL),
    ],
)
def test_orders_below_minimum_amount_or_notional_are_dropped_not_rounded_up(
    min_amount, min_notional, buy_reason, sell_reason
):
    rules = MarketRules(price_tick=D("0.01"), amount_step=D("0.001"), min_amount=min_amount, min_notional=min_notional)
    proposal = propose(rules=rules)

    for side, reason in ((Side.BUY, buy_reason), (Side.SELL, sell_reason)):
        if reason is None:
            assert ladder(proposal, side) == [(0, D("99.00") if side is Side.BUY else D("101.00"), D("1"))]
        else:
            assert ladder(proposal, side) == []
            assert reasons(proposal, side) == {0: reason}


def test_prices_and_amounts_stay_exact_at_a_trillion_units_and_18_decimals():
    tick = step = D("0.000000000000000001")
    market = MarketSnapshot(
        best_bid=D("999999999999.999999999999999998"), best_ask=D("999999999999.999999999999999999")
    )
    budget = Budget(base=D("0.333333333333333333"), quote=D("333333333333.333333333333333333"))
    proposal = propose(
        market=market,
        rules=MarketRules(price_tick=tick, amount_step=step),
        bid_spread=D("0.000000000000000001"),
        ask_spread=D("0.000000000000000001"),
        order_amount=D("0.333333333333333333"),
        budget=budget,
    )

    (buy,) = proposal.side(Side.BUY)
    (sell,) = proposal.side(Side.SELL)
    # mid = 1e12 - 1.5e-18; mid * (1 -/+ 1e-18) = 1e12 -/+ 1e-6 - 1.5e-18 (+/- 1.5e-36),
    # rounded down for the buy and up for the sell at the 18th decimal.
    assert buy.price == D("999999999999.999998999999999998")
    assert sell.price == D("1000000000000.000000999999999999")
    assert buy.amount == D("0.333333333333333333")  # 333333333333.33 quote budget fits 0.333... at ~1e12
    assert buy.price * buy.amount <= budget.quote
    assert sell.amount == D("0.333333333333333333")


def test_amount_rounded_to_zero_is_dropped():
    proposal = propose(order_amount=D("0.0004"))

    assert proposal.orders == ()
    assert reasons(proposal, Side.BUY) == {0: DropReason.NON_POSITIVE_AMOUNT}


@pytest.mark.parametrize(
    "bid_spread, level_spread", [(D("0.99999"), D("0")), (D("0.5"), D("0.5")), (D("0.5"), D("0.6"))]
)
def test_buy_layers_priced_at_or_below_zero_are_dropped(bid_spread, level_spread):
    proposal = propose(bid_spread=bid_spread, order_levels=2, order_level_spread=level_spread)

    assert reasons(proposal, Side.BUY)[1] == DropReason.NON_POSITIVE_PRICE
    assert all(order.price > 0 for order in proposal.orders)


# --- budget -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quote, min_amount, buys",
    [
        (D("297"), D("0"), [(0, D("99.00"), D("1")), (1, D("98.00"), D("1")), (2, D("97.00"), D("1"))]),
        (D("293.99"), D("0"), [(0, D("99.00"), D("1")), (1, D("98.00"), D("1")), (2, D("97.00"), D("0.999"))]),
        (D("200"), D("0"), [(0, D("99.00"), D("1")), (1, D("98.00"), D("1")), (2, D("97.00"), D("0.03"))]),
        (D("200"), D("0.5"), [(0, D("99.00"), D("1")), (1, D("98.00"), D("1"))]),
        (D("98.999"), D("0"), [(0, D("99.00"), D("0.999"))]),
        (D("99"), D("1"), [(0, D("99.00"), D("1"))]),
        (D("98.99"), D("1"), []),  # layer 1 would fit 1.01, but outer layers never jump a gap
        (D("0"), D("0"), []),
    ],
)
def test_buys_never_lock_more_quote_than_the_budget(quote, min_amount, buys):
    rules = MarketRules(price_tick=D("0.01"), amount_step=D("0.001"), min_amount=min_amount)
    budget = Budget(base=D("100"), quote=quote)
    proposal = propose(rules=rules, order_levels=3, order_level_spread=D("0.01"), budget=budget)

    assert ladder(proposal, Side.BUY) == buys
    assert sum(o.notional for o in proposal.side(Side.BUY)) <= quote
    assert set(reasons(proposal, Side.BUY).values()) <= {DropReason.BUDGET}


@pytest.mark.parametrize(
    "base, sells",
    [
        (D("3"), [D("1"), D("1"), D("1")]),
        (D("2.5"), [D("1"), D("1"), D("0.5")]),
        (D("2.0009"), [D("1"), D("1")]),  # 0.0009 rounds down to nothing
        (D("0.9999"), [D("0.999")]),
        (D("0"), []),
    ],
)
def test_sells_never_lock_more_base_than_the_budget(base, sells):
    proposal = propose(order_levels=3, budget=Budget(base=base, quote=D("100000")))

    assert [amount for _, _, amount in ladder(proposal, Side.SELL)] == sells
    assert sum(o.amount for o in proposal.side(Side.SELL)) <= base


def test_budget_shortfall_below_min_notional_drops_the_layer():
    rules = MarketRules(price_tick=D("0.01"), amount_step=D("0.001"), min_notional=D("5"))
    budget = Budget(base=D("100"), quote=D("200"))
    proposal = propose(rules=rules, order_levels=3, order_level_spread=D("0.01"), budget=budget)

    assert [layer for layer, _, _ in ladder(proposal, Side.BUY)] == [0, 1]
    assert reasons(proposal, Side.BUY) == {2: DropReason.BUDGET}


# --- takers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, market, take, buy, sell",
    [
        # Last trade far above the book: the buy would cross the 101 ask.
        (dict(price_source=PriceSource.LAST), MarketSnapshot(D("99"), D("101"), D("110")), False, None, D("111.10")),
        (dict(price_source=PriceSource.LAST), MarketSnapshot(D("99"), D("101"), D("110")), True,
         D("108.90"), D("111.10")),
        # Last trade far below: the sell would cross the 99 bid.
        (dict(price_source=PriceSource.LAST), MarketSnapshot(D("99"), D("101"), D("90")), False, D("89.10"), None),
        # A buy exactly at the best ask and a sell exactly at the best bid both take.
        (dict(price_source=PriceSource.BEST_ASK, bid_spread=D("0")), BOOK, False, None, D("102.01")),
        (dict(price_source=PriceSource.BEST_BID, ask_spread=D("0")), BOOK, False, D("98.01"), None),
        (dict(price_source=PriceSource.BEST_BID, ask_spread=D("0")), BOOK, True, D("98.01"), D("99.00")),
        # One tick inside the book is a maker.
        (dict(price_source=PriceSource.BEST_ASK, bid_spread=D("0.0001")), BOOK, False, D("100.98"), D("102.01")),
        # No asks: a buy cannot take, whatever its price.
        (dict(price_source=PriceSource.BEST_BID, bid_spread=D("0")), MarketSnapshot(D("99"), None), False,
         D("99.00"), D("99.99")),
    ],
)
def test_takers_are_dropped_unless_crossing_is_allowed(params, market, take, buy, sell):
    proposal = propose(market=market, take_if_crossed=take, **params)

    assert [o.price for o in proposal.side(Side.BUY)] == ([buy] if buy else [])
    assert [o.price for o in proposal.side(Side.SELL)] == ([sell] if sell else [])
    if buy is None:
        assert reasons(proposal, Side.BUY) == {0: DropReason.TAKER}
    if sell is None:
        assert reasons(proposal, Side.SELL) == {0: DropReason.TAKER}


# --- inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: make_params(bid_spread=0.01), "bid_spread"),
        (lambda: make_params(order_amount=1.0), "order_amount"),
        (lambda: make_params(price_ceiling=100.0), "price_ceiling"),
        (lambda: make_params(max_order_age=60.0), "max_order_age"),
        (lambda: make_params(order_refresh_tolerance_pct=0.001), "order_refresh_tolerance_pct"),
        (lambda: MarketSnapshot(best_bid=99.0, best_ask=D("101")), "best_bid"),
        (lambda: MarketSnapshot(best_bid=D("99"), best_ask=D("101"), last_price=100.5), "last_price"),
        (lambda: MarketRules(price_tick=0.01, amount_step=D("1")), "price_tick"),
        (lambda: MarketRules(price_tick=D("0.01"), amount_step=D("1"), min_notional=10.0), "min_notional"),
        (lambda: Balances(base=D("1"), quote=1000.0), "quote"),
        (lambda: Budget(base=1.5, quote=D("1")), "base"),
        (lambda: DesiredOrder(side=Side.BUY, price=99.5, amount=D("1"), layer=0), "price"),
    ],
)
def test_float_inputs_are_rejected_naming_the_field(build, field):
    with pytest.raises(FloatNotAllowed, match=f"{field} must be a Decimal.*not a float"):
        build()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(bid_spread=D("1")), "bid_spread"),
        (dict(bid_spread=D("-0.01")), "bid_spread"),
        (dict(ask_spread=D("-0.01")), "ask_spread"),
        (dict(order_amount=D("0")), "order_amount"),
        (dict(order_levels=0), "order_levels"),
        (dict(order_levels=True), "order_levels"),
        (dict(order_levels=D("2")), "order_levels"),
        (dict(order_level_spread=D("-0.001")), "order_level_spread"),
        (dict(amount_change_type="percentage", amount_change_per_layer=D("-1")), "amount_change_per_layer"),
        (dict(amount_change_type="linear"), "amount_change_type must be one of fixed, percentage"),
        (dict(price_source="vwap"), "price_source must be one of mid, best_bid, best_ask, last"),
        (dict(price_ceiling=D("0")), "price_ceiling"),
        (dict(price_ceiling=D("100"), price_floor=D("100")), "price_floor"),
        (dict(inventory_target_base_pct=D("50")), r"inventory_target_base_pct is a fraction"),
        (dict(inventory_range_multiplier=D("-1")), "inventory_range_multiplier"),
        (dict(order_refresh_tolerance_pct=D("-0.1")), "order_refresh_tolerance_pct"),
        (dict(max_order_age=D("0")), "max_order_age"),
        (dict(take_if_crossed="yes"), "take_if_crossed must be a bool"),
        (dict(bid_spread="NaN"), "bid_spread must be finite"),
        (dict(bid_spread="abc"), "is not a decimal number"),
        (dict(bid_spread=None), "bid_spread is required"),
    ],
)
def test_out_of_range_parameters_are_rejected_with_the_reason(overrides, message):
    with pytest.raises(StrategyInputError, match=message):
        make_params(**overrides)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: MarketRules(price_tick=D("0"), amount_step=D("1")), "price_tick must be positive"),
        (lambda: MarketRules(price_tick=D("1"), amount_step=D("-1")), "amount_step must be positive"),
        (lambda: MarketSnapshot(best_bid=D("0"), best_ask=D("1")), "best_bid must be positive"),
        (lambda: Balances(base=D("-1"), quote=D("0")), "balances must not be negative"),
        (lambda: Budget(base=D("0"), quote=D("-1")), "budget must not be negative"),
    ],
)
def test_invalid_market_inputs_are_rejected(build, message):
    with pytest.raises(StrategyInputError, match=message):
        build()


def test_decimal_strings_and_ints_are_accepted_exactly():
    params = make_params(bid_spread="0.01", order_amount=2, max_order_age="30")

    assert params.bid_spread == D("0.01") and isinstance(params.order_amount, D) and params.max_order_age == D("30")


def test_same_inputs_give_the_same_proposal():
    inputs = dict(order_levels=3, order_level_spread=D("0.002"), inventory_skew_enabled=True)

    assert propose(**inputs) == propose(**inputs)


# --- the property -------------------------------------------------------------------------

TICKS = [D("0.01"), D("0.05"), D("1"), D("5"), D("0.0001"), D("0.00000001")]
STEPS = [D("0.001"), D("0.25"), D("1"), D("0.00000001"), D("10")]


def fractions(max_millionths: int):
    """Fractions in millionths, zero one time in three (zero spreads are where takers come from)."""
    return st.one_of(st.just(D(0)), st.integers(0, max_millionths).map(lambda n: D(n) / D(1_000_000)))


@st.composite
def scenarios(draw):
    tick = draw(st.sampled_from(TICKS))
    step = draw(st.sampled_from(STEPS))
    bid_ticks = draw(st.integers(1, 10_000_000))
    best_bid = D(bid_ticks) * tick
    best_ask = best_bid + D(draw(st.integers(-5, 200))) * tick  # a crossed book now and then
    if best_ask <= 0:
        best_ask = tick
    last = best_bid * (D(1) + D(draw(st.integers(-200, 200))) / D(1000))
    inventory = best_bid * (D(1) + D(draw(st.integers(-200, 200))) / D(1000))
    market = MarketSnapshot(
        best_bid=draw(st.sampled_from([best_bid, best_bid, best_bid, None])),
        best_ask=draw(st.sampled_from([best_ask, best_ask, best_ask, None])),
        last_price=draw(st.sampled_from([last, last, None])),
        inventory_price=draw(st.sampled_from([inventory, None])),
    )
    # Now and then the reference price comes from another market (a price source elsewhere).
    elsewhere = best_bid * (D(1) + D(draw(st.integers(-50, 50))) / D(1000))
    reference_market = draw(st.sampled_from([None, None, MarketSnapshot(
        best_bid=elsewhere, best_ask=elsewhere + tick, last_price=elsewhere)]))
    moving = draw(st.booleans())
    band_anchor = draw(st.sampled_from([None, best_bid * (D(1) + D(draw(st.integers(-30, 30))) / D(1000))]))
    reference = best_bid
    rules = MarketRules(
        price_tick=tick,
        amount_step=step,
        min_amount=D(draw(st.integers(0, 3))) * step,
        min_notional=D(draw(st.integers(0, 50))) * reference * step,
    )
    amount = D(draw(st.integers(1, 1000))) * step
    change_type = draw(st.sampled_from(list(AmountChangeType)))
    change = (
        D(draw(st.integers(-3, 3))) * step
        if change_type is AmountChangeType.FIXED
        else D(draw(st.integers(-90, 100))) / D(100)
    )
    band = draw(st.sampled_from(["none", "ceiling", "floor", "both"]))
    spread = D(draw(st.integers(-100, 100))) / D(1000)
    params = PureMMParams(
        bid_spread=draw(fractions(200_000)),
        ask_spread=draw(fractions(200_000)),
        order_amount=amount,
        order_levels=draw(st.integers(1, 6)),
        order_level_spread=draw(fractions(50_000)),
        amount_change_type=change_type,
        amount_change_per_layer=change,
        price_source=draw(st.sampled_from(list(PriceSource))),
        price_ceiling=reference * (1 + abs(spread) + D("0.001")) if band in ("ceiling", "both") else None,
        price_floor=reference * (1 - abs(spread) / 2 - D("0.001")) if band in ("floor", "both") else None,
        inventory_skew_enabled=draw(st.booleans()),
        inventory_target_base_pct=draw(fractions(1_000_000)),
        inventory_range_multiplier=D(draw(st.integers(0, 30))) / D(10),
        take_if_crossed=draw(st.booleans()),
        moving_price_band_enabled=moving,
        price_ceiling_pct=D(draw(st.integers(0, 30))) / D(1000),
        price_floor_pct=D(draw(st.integers(0, 30))) / D(1000),
    )
    balances = Balances(
        base=D(draw(st.integers(0, 5000))) * step, quote=D(draw(st.integers(0, 5000))) * reference * step
    )
    budget = Budget(base=D(draw(st.integers(0, 5000))) * step, quote=D(draw(st.integers(0, 5000))) * reference * step)
    return params, market, rules, balances, budget, dict(reference_market=reference_market, band_anchor=band_anchor)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_desired_orders_respect_book_budget_layers_and_precision(scenario):
    params, market, rules, balances, budget, extra = scenario

    proposal = propose_orders(params=params, market=market, rules=rules, balances=balances, budget=budget, **extra)

    with localcontext() as ctx:
        ctx.prec = 80  # exact sums and products in the assertions
        buys, sells = proposal.side(Side.BUY), proposal.side(Side.SELL)
        # Layers per side: at most order_levels, each layer once, each layer either proposed or dropped.
        for side, orders in ((Side.BUY, buys), (Side.SELL, sells)):
            layers = [o.layer for o in orders]
            assert len(orders) <= params.order_levels
            assert len(set(layers)) == len(layers)
            dropped = [d.layer for d in proposal.dropped if d.side is side]
            assert sorted(layers + dropped) == list(range(params.order_levels))
        # Budget.
        assert sum((o.price * o.amount for o in buys), D(0)) <= budget.quote
        assert sum((o.amount for o in sells), D(0)) <= budget.base
        # Precision and minimums; rounding never makes a quote more aggressive.
        for order in proposal.orders:
            assert type(order.price) is D and type(order.amount) is D
            assert order.price > 0 and order.amount > 0
            unrounded = params.layer_price(proposal.reference_price, order.side, order.layer)
            assert order.price <= unrounded if order.side is Side.BUY else order.price >= unrounded
            assert order.price - unrounded < rules.price_tick and unrounded - order.price < rules.price_tick
            assert order.price % rules.price_tick == 0
            assert order.amount % rules.amount_step == 0
            assert order.amount >= rules.min_amount
            assert order.price * order.amount >= rules.min_notional
        # Never crosses the book unless allowed.
        if not params.take_if_crossed:
            if market.best_ask is not None:
                assert all(o.price < market.best_ask for o in buys)
            if market.best_bid is not None:
                assert all(o.price > market.best_bid for o in sells)
        # Price band: fixed, or moving around its anchor (the reference itself when none is set yet).
        ceiling, floor = params.price_ceiling, params.price_floor
        if params.moving_price_band_enabled and proposal.reference_price is not None:
            anchor = extra["band_anchor"] if extra["band_anchor"] is not None else proposal.reference_price
            ceiling, floor = anchor * (1 + params.price_ceiling_pct), anchor * (1 - params.price_floor_pct)
        if ceiling is not None and buys:
            assert proposal.reference_price < ceiling
            assert all(o.price < ceiling for o in buys)
        if floor is not None and sells:
            assert proposal.reference_price > floor
            assert all(o.price > floor for o in sells)
        # The reference price is the price source's, on the market it names.
        source = extra["reference_market"] or market
        expected = source.reference_price(params.price_source)
        assert proposal.reference_price == expected


# --- quoting options (issue 15) -------------------------------------------------------------


def test_add_transaction_costs_moves_prices_out_by_the_maker_fee():
    rules = MarketRules(price_tick=D("0.01"), amount_step=D("0.001"), maker_fee=D("0.001"))

    plain = propose(rules=rules)
    costed = propose(rules=rules, add_transaction_costs=True)

    assert ladder(plain, Side.BUY)[0][1] == D("99") and ladder(plain, Side.SELL)[0][1] == D("101")
    # 99 x 0.999 = 98.901 -> 98.90 (a buy rounds down); 101 x 1.001 = 101.101 -> 101.11 (a sell rounds up)
    assert ladder(costed, Side.BUY)[0][1] == D("98.90") and ladder(costed, Side.SELL)[0][1] == D("101.11")


@pytest.mark.parametrize("others_bid, others_ask, buy, sell", [
    (D("98.5"), D("101.5"), D("98.51"), D("101.49")),  # our 99 / 101 would be inside others: stop one tick in
    (D("99.5"), D("100.5"), D("99"), D("101")),  # others are inside us: ours stay where they are
    (None, None, D("99"), D("101")),  # nobody else quotes: nothing to optimise against
])
def test_order_optimization_tops_the_book_of_others_by_one_tick_at_most(others_bid, others_ask, buy, sell):
    market = MarketSnapshot(best_bid=D("99.9"), best_ask=D("100.1"), others_best_bid=others_bid,
                            others_best_ask=others_ask)

    proposal = propose(market=market, order_optimization_enabled=True, order_levels=2,
                       order_level_spread=D("0.01"))

    assert ladder(proposal, Side.BUY)[0][1] == buy and ladder(proposal, Side.SELL)[0][1] == sell
    # outer layers keep their spread
    assert ladder(proposal, Side.BUY)[1][1] == D("98") and ladder(proposal, Side.SELL)[1][1] == D("102")


def test_layers_nearer_than_minimum_spread_are_not_proposed():
    proposal = propose(bid_spread=D("0.001"), ask_spread=D("0.01"), minimum_spread=D("0.005"))

    assert ladder(proposal, Side.BUY) == [] and reasons(proposal, Side.BUY) == {0: DropReason.BELOW_MIN_SPREAD}
    assert ladder(proposal, Side.SELL) == [(0, D("101"), D("1"))]


# --- moving price band, inventory cost, price source elsewhere ---------------------------------------


def test_the_moving_band_is_set_on_the_first_run_and_kept_until_its_refresh_time():
    params = PureMMParams(bid_spread=D("0.01"), ask_spread=D("0.01"), order_amount=D("1"),
                          moving_price_band_enabled=True, price_band_refresh_time=60)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    anchor = moving_band_anchor(params, D("100"), None, None, start)
    assert anchor == (D("100"), start)
    assert moving_band_anchor(params, D("103"), *anchor, start + timedelta(seconds=59)) == anchor
    assert moving_band_anchor(params, D("103"), *anchor, start + timedelta(seconds=60)) == (
        D("103"), start + timedelta(seconds=60))
    off = PureMMParams(bid_spread=D("0.01"), ask_spread=D("0.01"), order_amount=D("1"))
    assert moving_band_anchor(off, D("103"), None, None, start) == (None, None)


@pytest.mark.parametrize("mid, buys, sells", [
    (D("100.5"), True, True),  # inside the band around 100 (99 .. 101)
    (D("101"), False, True),  # at the ceiling: no buy
    (D("99"), True, False),  # at the floor: no sell
])
def test_the_moving_band_switches_a_side_off_around_its_anchor(mid, buys, sells):
    market = MarketSnapshot(best_bid=mid - D("0.01"), best_ask=mid + D("0.01"))

    proposal = propose(market=market, moving_price_band_enabled=True, price_ceiling_pct=D("0.01"),
                       price_floor_pct=D("0.01"), band_anchor=D("100"))

    assert bool(ladder(proposal, Side.BUY)) is buys and bool(ladder(proposal, Side.SELL)) is sells
    if not buys:
        assert reasons(proposal, Side.BUY) == {0: DropReason.PRICE_BAND}


def test_inventory_cost_is_the_average_price_of_the_bought_base_still_held():
    base, cost = inventory_cost_after(D(0), D(0), side="buy", amount=D("1"), quote=D("100"))
    base, cost = inventory_cost_after(base, cost, side="buy", amount=D("1"), quote=D("110"))
    assert inventory_price(base, cost) == D("105")
    base, cost = inventory_cost_after(base, cost, side="sell", amount=D("0.5"), quote=D("60"))
    assert (base, inventory_price(base, cost)) == (D("1.5"), D("105"))  # a sell keeps the average
    assert inventory_cost_after(base, cost, side="sell", amount=D("2"), quote=D("240")) == (D(0), D(0))
    assert inventory_price(D(0), D(0)) is None


def test_the_inventory_cost_price_source_quotes_around_it_and_falls_back_to_mid():
    held = MarketSnapshot(best_bid=D("99.9"), best_ask=D("100.1"), inventory_price=D("110"))
    none_held = MarketSnapshot(best_bid=D("99.9"), best_ask=D("100.1"))

    priced = propose(market=held, price_source=PriceSource.INVENTORY_COST)
    fallback = propose(market=none_held, price_source=PriceSource.INVENTORY_COST)

    # bought dear: sells no lower than cost plus the spread; the buy at 108.9 would take and is dropped
    assert priced.reference_price == D("110") and ladder(priced, Side.SELL)[0][1] == D("111.1")
    assert reasons(priced, Side.BUY) == {0: DropReason.TAKER}
    assert fallback.reference_price == D("100")


def test_a_price_source_elsewhere_gives_the_reference_but_the_own_book_decides_what_would_take():
    own = MarketSnapshot(best_bid=D("99.9"), best_ask=D("100.1"))
    elsewhere = MarketSnapshot(best_bid=D("101.9"), best_ask=D("102.1"))

    proposal = propose(market=own, reference_market=elsewhere, bid_spread=D("0.01"), ask_spread=D("0.01"))

    assert proposal.reference_price == D("102")
    # the buy at 102 x 0.99 = 100.98 would take the own market's ask of 100.1: dropped
    assert ladder(proposal, Side.BUY) == [] and reasons(proposal, Side.BUY) == {0: DropReason.TAKER}
    assert ladder(proposal, Side.SELL)[0][1] == D("103.02")
