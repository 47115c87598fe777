"""The simulator under concurrent clients: balances stay exact, the in-flight gauge sees the overlap."""
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import ccxt
import pytest

from exchanges.models import SimBalance, SimOrder
from exchanges.simulator.services import (
    simulator_max_concurrency,
    simulator_reset_concurrency,
    simulator_set_balance,
    simulator_set_faults,
)

pytestmark = pytest.mark.embedded


def test_concurrent_orders_on_one_account_never_overspend(simulator):
    simulator_set_balance(account_label=simulator.sim_label, asset="USDT", free="1000")
    clients = [simulator.client() for _ in range(8)]

    def place(index):
        try:
            clients[index].create_order("BTC/USDT", "limit", "buy", "0.005", "29000", {"newClientOrderId": f"mm-c-{index}"})
            return "placed"
        except ccxt.InsufficientFunds:
            return "refused"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(place, range(8)))

    # 145 USDT each: exactly six fit in 1000 USDT, whichever requests win the race.
    assert outcomes.count("placed") == 6 and outcomes.count("refused") == 2
    usdt = SimBalance.objects.get(account__label=simulator.sim_label, asset="USDT")
    assert usdt.locked == Decimal("870") and usdt.free == Decimal("130")
    assert SimOrder.objects.filter(account__label=simulator.sim_label).count() == 6


def test_in_flight_gauge_records_the_most_concurrent_order_requests(simulator):
    simulator_set_faults(account_label=simulator.sim_label, latency_ms=600)
    simulator_reset_concurrency(simulator.sim_label)
    clients = [simulator.client() for _ in range(3)]

    def place(index):
        clients[index].create_order("BTC/USDT", "limit", "buy", "0.001", "29000", {"newClientOrderId": f"mm-g-{index}"})

    clients[0].fetch_balance()  # reads are not order requests
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(place, range(3)))

    assert 2 <= simulator_max_concurrency(simulator.sim_label) <= 3
    simulator_reset_concurrency(simulator.sim_label)
    assert simulator_max_concurrency(simulator.sim_label) == 0
    clients[0].create_order("BTC/USDT", "limit", "buy", "0.001", "29000", {"newClientOrderId": "mm-g-serial"})
    assert simulator_max_concurrency(simulator.sim_label) == 1


def test_catch_up_reads_the_markets_only_once_a_step_can_be_due(db, settings, django_assert_num_queries):
    import time

    from exchanges.models import SimMarket
    from exchanges.simulator.services import simulator_catch_up, simulator_market_ensure

    simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=3)
    settings.SIM_STEP_MS = 60_000
    simulator_catch_up()  # starts the market's clock

    with django_assert_num_queries(0):
        simulator_catch_up()  # nothing can be due for a minute

    settings.SIM_STEP_MS = 1  # another interval: the hint no longer applies
    time.sleep(0.01)
    simulator_catch_up()
    assert SimMarket.objects.get(symbol="BTC/USDT").step >= 1
