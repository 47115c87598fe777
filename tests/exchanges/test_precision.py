"""Rounding to the market and refusing orders below its limits, from real exchangeInfo filters."""
from decimal import Decimal

import pytest

from exchanges.errors import OrderRefused
from exchanges.precision import limit_order_prepare, market_rules
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
