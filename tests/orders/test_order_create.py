"""order_create: the strategy parameters an order carries, their per-field checks and the strategy's own check."""
from decimal import Decimal

import pytest

from orders.errors import InvalidOrderRequest
from orders.models import MarketMakingOrder
from strategy.params import params_for

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_an_order_created_without_them_runs_as_before(pair, make_order):
    # given an order created with none of the newer strategy parameters
    order = make_order(pair)

    # then they are off, and the strategy gets what it got before they existed
    order.refresh_from_db()
    assert (order.inventory_skew_enabled, order.hanging_orders_enabled) == (False, False)
    assert (order.inventory_target_base_pct, order.inventory_range_multiplier) == (Decimal("0.5"), Decimal(1))
    assert (order.order_refresh_tolerance_pct, order.max_order_age_s, order.order_level_spread) == (0, None, None)
    params = params_for(order)
    assert params.order_level_spread == order.bid_spread == Decimal("0.001")
    assert params.max_order_age is None and params.order_refresh_tolerance_pct == 0
    assert not params.inventory_skew_enabled and not params.hanging_orders_enabled


@pytest.mark.parametrize("field, value, stored, param, passed", [
    ("inventory_skew_enabled", True, True, "inventory_skew_enabled", True),
    ("inventory_target_base_pct", "0.25", Decimal("0.25"), "inventory_target_base_pct", Decimal("0.25")),
    ("inventory_target_base_pct", "1", Decimal(1), "inventory_target_base_pct", Decimal(1)),
    ("inventory_range_multiplier", "2.5", Decimal("2.5"), "inventory_range_multiplier", Decimal("2.5")),
    ("inventory_range_multiplier", 0, Decimal(0), "inventory_range_multiplier", Decimal(0)),
    ("hanging_orders_enabled", True, True, "hanging_orders_enabled", True),
    ("order_refresh_tolerance_pct", Decimal("0.0015"), Decimal("0.0015"), "order_refresh_tolerance_pct",
     Decimal("0.0015")),
    ("max_order_age_s", 90, 90, "max_order_age", Decimal(90)),
    ("order_level_spread", "0.0003", Decimal("0.0003"), "order_level_spread", Decimal("0.0003")),
    ("order_level_spread", "0", Decimal(0), "order_level_spread", Decimal(0)),
])
def test_each_strategy_parameter_is_stored_exactly_and_reaches_the_strategy(
        pair, make_order, field, value, stored, param, passed):
    order = make_order(pair, **{field: value})

    order = MarketMakingOrder.objects.get(pk=order.pk)
    assert getattr(order, field) == stored
    assert getattr(params_for(order), param) == passed


@pytest.mark.parametrize("field, value, message", [
    ("inventory_skew_enabled", "true", "inventory_skew_enabled must be true or false, got 'true'"),
    ("inventory_skew_enabled", 1, "inventory_skew_enabled must be true or false, got 1"),
    ("hanging_orders_enabled", None, "hanging_orders_enabled must be true or false, got None"),
    ("inventory_target_base_pct", "1.5", "inventory_target_base_pct must be a fraction in [0, 1]"),
    ("inventory_target_base_pct", "-0.1", "inventory_target_base_pct -0.1 is negative"),
    ("inventory_range_multiplier", "-1", "inventory_range_multiplier -1 is negative"),
    ("inventory_range_multiplier", "lots", "inventory_range_multiplier 'lots' is not a decimal number"),
    ("order_refresh_tolerance_pct", "-0.001", "order_refresh_tolerance_pct -0.001 is negative"),
    ("order_refresh_tolerance_pct", "0.123456789", "order_refresh_tolerance_pct 0.123456789 has more than 8"),
    ("order_level_spread", "NaN", "order_level_spread is NaN"),
    ("order_level_spread", "-0.001", "order_level_spread -0.001 is negative"),
    ("max_order_age_s", 0, "max_order_age_s must be a positive integer, got 0"),
    ("max_order_age_s", "60", "max_order_age_s must be a positive integer, got '60'"),
    ("max_order_age_s", True, "max_order_age_s must be a positive integer, got True"),
    # past what the column holds: a clear refusal, not a database error
    ("max_order_age_s", 2**31, "max_order_age_s must be at most 2147483647, got 2147483648"),
    ("order_refresh_time", 10**12, "order_refresh_time must be at most 2147483647"),
    ("number_of_layers", 101, "number_of_layers must be at most 100, got 101"),
])
def test_a_bad_value_is_refused_naming_its_field(pair, make_order, field, value, message):
    with pytest.raises(InvalidOrderRequest) as refused:
        make_order(pair, **{field: value})
    assert message in str(refused.value)
    assert not MarketMakingOrder.objects.exists()


@pytest.mark.parametrize("field, value, message", [
    ("inventory_target_base_pct", 0.5, "inventory_target_base_pct must be a Decimal, int or decimal string, "
                                       "not a float (0.5)"),
    ("inventory_range_multiplier", 1.0, "inventory_range_multiplier must be a Decimal, int or decimal string, "
                                        "not a float (1.0)"),
    ("order_refresh_tolerance_pct", 0.001, "order_refresh_tolerance_pct must be a Decimal, int or decimal string, "
                                           "not a float (0.001)"),
    ("order_level_spread", 0.001, "order_level_spread must be a Decimal, int or decimal string, not a float (0.001)"),
    ("max_order_age_s", 60.0, "max_order_age_s must be a positive integer, got 60.0"),
])
def test_floats_are_refused(pair, make_order, field, value, message):
    with pytest.raises(InvalidOrderRequest) as refused:
        make_order(pair, **{field: value})
    assert message in str(refused.value)
    assert not MarketMakingOrder.objects.exists()


@pytest.mark.parametrize("params, message", [
    ({"bid_spread": "1"}, "bid_spread must be a fraction in [0, 1), got 1.00000000"),
    ({"price_source_type": "vwap"}, "unknown price source 'vwap'"),
    ({"floor_price": "30000", "ceiling_price": "30000"}, "price_floor 30000.00000000 must be below price_ceiling"),
])
def test_parameters_the_strategy_refuses_are_refused_at_creation_with_its_message(pair, make_order, params, message):
    with pytest.raises(InvalidOrderRequest, match="the strategy refuses these parameters") as refused:
        make_order(pair, **params)
    assert message in str(refused.value)
    assert not MarketMakingOrder.objects.exists()
