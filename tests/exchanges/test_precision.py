"""Rounding to the market and refusing orders below its limits, from ccxt's unified market structure in
every ccxt precision mode."""
import copy
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from exchanges.errors import OrderRefused
from exchanges.precision import MarketRules, limit_order_prepare, market_rules
from exchanges.services import exchange_decimal
from ledger.errors import InvalidAmount
from strategy.trackers import market_rules as stored_market_rules
from tests.exchanges.test_services import okx_layer  # noqa: F401 (fixture)

pytestmark = pytest.mark.embedded


def test_rules_come_exactly_from_the_exchanges_unified_market(binance):
    rules = market_rules(binance, "BTC/USDT")

    assert rules.tick_size == Decimal("0.01") and rules.step_size == Decimal("0.00001")
    assert rules.min_cost == Decimal(5) and rules.min_amount == Decimal("0.00001")


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

    assert exchange_decimal(placed, "amount") == order.amount and exchange_decimal(placed, "price") == order.price


def test_float_amounts_are_rejected(binance):
    with pytest.raises(InvalidAmount, match="float"):
        limit_order_prepare(market_rules(binance, "BTC/USDT"), side="buy", amount=0.1, price="30000")


RULES = MarketRules(symbol="BTC/USDT", tick_size=Decimal("0.01"), step_size=Decimal("0.00001"),
                    min_amount=Decimal("0.00001"), max_amount=Decimal(9000), min_price=Decimal("0.01"),
                    max_price=Decimal(1000000), min_cost=Decimal(5))


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    side=st.sampled_from(["buy", "sell"]),
    amount=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(50), places=9),
    price=st.decimals(min_value=Decimal("0.001"), max_value=Decimal(200000), places=4),
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


def _in_mode(client, mode: int, price_precision, amount_precision):
    """``client`` (a real ccxt instance, markets loaded) as an exchange quoting BTC/USDT in ``mode``."""
    market = copy.deepcopy(client.markets["BTC/USDT"])
    market["precision"] = {"price": price_precision, "amount": amount_precision}
    client.precisionMode = mode
    client.set_markets([market])
    return client


def test_decimal_places_are_turned_into_steps(binance):
    import ccxt

    rules = market_rules(_in_mode(binance, ccxt.DECIMAL_PLACES, 2, 5), "BTC/USDT")
    order = limit_order_prepare(rules, side="sell", amount="0.0123456", price="30000.001")

    assert (rules.tick_size, rules.step_size) == (Decimal("0.01"), Decimal("0.00001"))
    assert (order.amount, order.price) == (Decimal("0.01234"), Decimal("30000.01"))


def test_significant_digits_round_each_number_at_its_own_magnitude(binance):
    import ccxt

    rules = market_rules(_in_mode(binance, ccxt.SIGNIFICANT_DIGITS, 5, 4), "BTC/USDT")
    buy = limit_order_prepare(rules, side="buy", amount="0.123456", price="30123.7")
    sell = limit_order_prepare(rules, side="sell", amount="1.23456", price="9999.91")

    assert (rules.tick_size, rules.price_digits, rules.amount_digits) == (None, 5, 4)
    assert (buy.amount, buy.price) == (Decimal("0.1234"), Decimal(30123))
    assert (sell.amount, sell.price) == (Decimal("1.234"), Decimal(10000))


def test_tick_size_mode_keeps_the_exchanges_step(binance):
    import ccxt

    rules = market_rules(_in_mode(binance, ccxt.TICK_SIZE, 0.5, 0.001), "BTC/USDT")

    assert (rules.tick_size, rules.step_size) == (Decimal("0.5"), Decimal("0.001"))


def test_the_strategy_stores_a_tick_in_every_mode_not_the_raw_precision_value(binance):
    import ccxt

    places = stored_market_rules(_in_mode(binance, ccxt.DECIMAL_PLACES, 2, 5), "BTC/USDT",
                                 near_price=Decimal(30000))
    digits = stored_market_rules(_in_mode(binance, ccxt.SIGNIFICANT_DIGITS, 5, 4), "BTC/USDT",
                                 near_price=Decimal("30000.5"))

    assert (places["price_tick"], places["amount_step"]) == (Decimal("0.01"), Decimal("0.00001"))
    # 5 digits at 30000: whole units; 4 digits at the smallest order (0.00001 BTC): 1e-8.
    assert (digits["price_tick"], digits["amount_step"]) == (Decimal(1), Decimal("1E-8"))


def test_rules_on_the_okx_dialect_come_from_its_unified_market(okx_layer):
    rules = market_rules(okx_layer, "BTC/USDT")

    assert (rules.tick_size, rules.step_size, rules.min_amount) == (Decimal("0.01"), Decimal("0.00001"),
                                                                     Decimal("0.00001"))
