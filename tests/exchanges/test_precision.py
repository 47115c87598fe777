"""Rounding to the market and refusing orders below its limits, from real exchangeInfo filters."""
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from exchanges.errors import OrderRefused
from exchanges.precision import MarketRules, limit_order_prepare, market_rules
from ledger.errors import InvalidAmount

pytestmark = pytest.mark.embedded


def test_rules_come_exactly_from_the_exchange_filters(binance):
    rules = market_rules(binance, "BTC/USDT")

    assert rules.tick_size == Decimal("0.01") and rules.step_size == Decimal("0.00001")
    assert rules.min_cost == Decimal("5") and rules.min_amount == Decimal("0.00001")


def test_amount_rounds_down_and_price_rounds_to_the_passive_side(binance):
    rules = market_rules(binance, "BTC/USDT")

    buy = limit_order_prepare(rules, side="buy", amount=Decimal("0.0123456"), price=Decimal("29999.999"))
    sell = limit_order_prepare(rules, side="sell", amount="0.0123456", price="30000.001")

    assert (buy.amount, buy.price) == (Decimal("0.01234"), Decimal("29999.99"))
    assert (sell.amount, sell.price) == (Decimal("0.01234"), Decimal("30000.01"))


def test_below_minimum_notional_is_refused_before_any_call_and_the_exchange_agrees(binance):
    rules = market_rules(binance, "BTC/USDT")

    with pytest.raises(OrderRefused, match="notional"):
        limit_order_prepare(rules, side="buy", amount="0.0001", price="30000")  # 3 USDT < 5
    with pytest.raises(OrderRefused, match="minimum"):
        limit_order_prepare(rules, side="buy", amount="0.000004", price="30000")
    import ccxt

    with pytest.raises(ccxt.ExchangeError, match="NOTIONAL"):
        binance.create_order("BTC/USDT", "limit", "buy", "0.0001", "30000")


def test_a_prepared_order_is_accepted_by_the_exchange(binance):
    order = limit_order_prepare(market_rules(binance, "BTC/USDT"), side="buy", amount="0.0003337", price="29000.128")

    placed = binance.create_order(order.symbol, "limit", order.side, format(order.amount, "f"), format(order.price, "f"))

    assert Decimal(placed["info"]["origQty"]) == order.amount and Decimal(placed["info"]["price"]) == order.price


def test_float_amounts_are_rejected(binance):
    with pytest.raises(InvalidAmount, match="float"):
        limit_order_prepare(market_rules(binance, "BTC/USDT"), side="buy", amount=0.1, price="30000")


RULES = MarketRules(symbol="BTC/USDT", tick_size=Decimal("0.01"), step_size=Decimal("0.00001"),
                    min_amount=Decimal("0.00001"), max_amount=Decimal("9000"), min_price=Decimal("0.01"),
                    max_price=Decimal("1000000"), min_cost=Decimal("5"))


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    side=st.sampled_from(["buy", "sell"]),
    amount=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("50"), places=9),
    price=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("200000"), places=4),
)
def test_prepared_orders_sit_on_the_grid_are_never_more_aggressive_and_respect_the_minimums(side, amount, price):
    try:
        order = limit_order_prepare(RULES, side=side, amount=amount, price=price)
    except OrderRefused:
        rounded_amount = (amount / RULES.step_size).to_integral_value(rounding="ROUND_DOWN") * RULES.step_size
        tick_price = (price / RULES.tick_size).to_integral_value(
            rounding="ROUND_FLOOR" if side == "buy" else "ROUND_CEILING") * RULES.tick_size
        assert rounded_amount < RULES.min_amount or tick_price < RULES.min_price or rounded_amount * tick_price < RULES.min_cost
        return
    assert order.amount % RULES.step_size == 0 and order.price % RULES.tick_size == 0
    assert order.amount <= amount and amount - order.amount < RULES.step_size
    assert (order.price <= price) if side == "buy" else (order.price >= price)
    assert abs(order.price - price) < RULES.tick_size
    assert order.cost >= RULES.min_cost and order.amount >= RULES.min_amount
