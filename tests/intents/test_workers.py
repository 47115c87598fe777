"""Intent execution through real Celery workers against the simulator over HTTP."""
import os
import signal
import time
from collections import Counter

import pytest
from django.utils import timezone

from exchanges.simulator.services import (
    simulator_max_concurrency,
    simulator_reset_concurrency,
    simulator_set_faults,
)
from intents.dispatcher import intents_dispatch
from intents.models import ACTIVE_INTENT_STATUSES, Intent, IntentStatus, TrackedOrder
from intents import ids
from strategy import cycle
from strategy.trackers import refresh_market_data
from tests.runtime_fixtures import make_running_order, sim_account

pytestmark = [pytest.mark.slow]


def wait_until(predicate, timeout, interval=0.2, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def all_intents_finished():
    return not Intent.objects.filter(status__in=ACTIVE_INTENT_STATUSES).exists()


def worker_env(**extra):
    return {"STRATEGY_INTENT_MAX_IN_FLIGHT": "8", "STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE": "1",
            "STRATEGY_INTENT_LEASE_S": "3", "EXCHANGE_TIMEOUT_MS": "1500", **extra}


# PostgreSQL only: concurrent claims on row locks (SKIP LOCKED); SQLite serializes every claim on its one write
# lock, and its claim path is run by tests/intents/test_gates.py (~50 s here)
def test_in_flight_limits_hold_for_eight_workers_on_three_exchanges(sim, celery_worker, settings):
    # Given 3 simulator accounts (standing for 3 exchanges) with 50, 200 and 400 ms latency, a few 5xx,
    # and 48 running sessions of one layer each (96 creates)
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 1
    accounts = [sim.accounts[0], sim_account(sim.base_url, 1), sim_account(sim.base_url, 2)]
    for n, latency in enumerate((50, 200, 400)):
        simulator_set_faults(account_label=f"rt-sim-{n}", latency_ms=latency, http_5xx=2)
    orders = [make_running_order(accounts[i % 3], layers=1) for i in range(48)]
    for account in accounts:
        refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    for n in range(3):
        simulator_reset_concurrency(f"rt-sim-{n}")
    summary = cycle.strategies_run_due(now=timezone.now(), slot=1)
    assert summary.intents_written == 96

    # When 8 worker processes execute them
    for _ in range(8):
        # A lease well above one execution (a 400 ms create, a lookup after a 5xx, on a loaded CI
        # machine): a lease that lapses while its request is still out lets a second claimer in,
        # which is the lease's contract, not the limit this test is about.
        celery_worker(queues=("intents",), env=worker_env(STRATEGY_INTENT_LEASE_S="15"), purge=False)
    intents_dispatch(inline=False)
    wait_until(all_intents_finished, timeout=120, message="every intent to finish")

    # Then the exchange never saw more than one order request of an account at once
    assert [simulator_max_concurrency(f"rt-sim-{n}") for n in range(3)] == [1, 1, 1]
    assert Counter(Intent.objects.values_list("status", flat=True)) == {IntentStatus.DONE: 96}
    # and every session has exactly its two orders on the exchange, none duplicated
    for account in accounts:
        client = sim.client(account)
        on_exchange = Counter(o["clientOrderId"] for o in client.fetch_open_orders("BTC/USDT"))
        assert all(count == 1 for count in on_exchange.values())
        assert set(on_exchange) == set(TrackedOrder.objects.filter(account=account).values_list(
            "client_order_id", flat=True))
    assert len(orders) == 48


@pytest.mark.embedded
def test_sigkill_after_the_exchange_accepted_never_duplicates(sim, celery_worker, settings):
    # Given one session whose creates are accepted by the exchange but answered only after 4 s
    settings.STRATEGY_INTENT_LEASE_S = 3
    account = sim.accounts[0]
    order = make_running_order(account, layers=1)
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    cycle.strategies_run_due(now=timezone.now(), slot=1)
    simulator_set_faults(account_label="rt-sim-0", timeout_after_accept_s=4)
    worker = celery_worker(queues=("intents",), env=worker_env(EXCHANGE_TIMEOUT_MS="10000"), purge=True)
    intents_dispatch(inline=False)
    client = sim.client(account)
    prefix = ids.client_order_prefix(order.order_id)

    # When the worker is killed after the exchange accepted the first order
    wait_until(lambda: any(o["clientOrderId"].startswith(prefix) for o in client.fetch_open_orders("BTC/USDT")),
               timeout=30, interval=0.05, message="the exchange to accept an order")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    simulator_set_faults(account_label="rt-sim-0")

    # and a new worker takes over once the lease expired
    celery_worker(queues=("intents",), env=worker_env(), purge=False)
    time.sleep(3.5)

    def finished():
        intents_dispatch(inline=False)
        return all_intents_finished()

    wait_until(finished, timeout=60, interval=0.5, message="the intents to finish after the restart")

    # Then every intent ended once and each order exists once on the exchange
    intents = list(Intent.objects.all())
    assert [i.status for i in intents] == [IntentStatus.DONE] * 2
    on_exchange = Counter(o["clientOrderId"] for o in client.fetch_open_orders("BTC/USDT")
                          if o["clientOrderId"].startswith(prefix))
    assert sorted(on_exchange) == sorted(i.client_order_id for i in intents)
    assert set(on_exchange.values()) == {1}
    assert max(i.attempts for i in intents) >= 2, "the killed execution must have been taken over"
