"""A create that timed out keeps its in-flight slots until the exchange can no longer be processing it."""
import os
import signal
import threading
import time
import uuid
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from exchanges.clients import exchange_client
from exchanges.models import SimOrder, SimRateWindow
from exchanges.simulator.limits import api_key_caller
from exchanges.simulator.services import (
    simulator_max_concurrency,
    simulator_reset_concurrency,
    simulator_set_faults,
)
from intents import gates
from intents.dispatcher import intents_dispatch
from intents.executor import intents_execute
from intents.models import ACTIVE_INTENT_STATUSES, Intent, IntentSlot, IntentStatus
from strategy import cycle
from strategy.trackers import refresh_market_data
from tests.runtime_fixtures import make_running_order

pytestmark = [pytest.mark.slow]

RECV_WINDOW_MS = 2500  # the hold: the timeout, then this receive window and 1 s


def run_workers(n: int, timeout_s: float) -> None:
    """``n`` threads claiming and executing one intent at a time until none is active."""
    errors = []

    def work():
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                claims = gates.claim_intents(max_claims=1)
                if claims:
                    intents_execute(claims)
                elif not Intent.objects.filter(status__in=ACTIVE_INTENT_STATUSES).exists():
                    return
                else:
                    time.sleep(0.05)
            errors.append("timed out")
        except Exception as exc:  # reported by the test
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def timed_out_creates(sim, settings, sessions: int) -> None:
    """Running sessions whose creates the exchange accepts but answers only after 3 s; our timeout is 1 s."""
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 2
    settings.STRATEGY_INTENT_LANE_S = 0
    settings.EXCHANGE_TIMEOUT_MS = 1000
    account = sim.accounts[0]
    for _ in range(sessions):
        make_running_order(account, layers=1)
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    gates.sync_slots([account.pk])
    summary = cycle.strategies_run_due(now=timezone.now(), slot=1)
    assert summary.intents_written == 2 * sessions
    exchange_client(account_id=account.pk).options["recvWindow"] = RECV_WINDOW_MS
    simulator_set_faults(account_label="rt-sim-0", timeout_after_accept_s=3)
    simulator_reset_concurrency("rt-sim-0")


@pytest.mark.embedded
def test_a_timed_out_create_holds_its_slots_until_its_receive_window_passed(sim, settings):
    # Given 4 creates of one account limited to 2 in flight, each accepted by the exchange and answered
    # after 3 s, while our client gives up after 1 s
    timed_out_creates(sim, settings, sessions=2)

    # When 4 workers execute them (each timeout is looked up: the order is found, the intent done)
    started = time.monotonic()
    run_workers(4, timeout_s=40)

    # Then the exchange never had more than 2 of the account's order requests at once
    assert simulator_max_concurrency("rt-sim-0") == 2
    assert set(Intent.objects.values_list("status", flat=True)) == {IntentStatus.DONE}
    # because the second pair waited for the first pair's hold (1 s timeout + 2.5 s window + 1 s)
    assert time.monotonic() - started >= 4.5
    # and the last pair's slots are still held, with no intent in them
    held = IntentSlot.objects.filter(scope=gates.account_scope(sim.accounts[0].pk), intent__isnull=True,
                                     lease_until__gt=timezone.now())
    assert held.count() == 2


@pytest.mark.embedded
def test_without_the_hold_the_exchange_sees_more_than_the_limit(sim, settings, monkeypatch):
    # Given the same creates, and slots freed as soon as the lookup found the order (the old behaviour)
    timed_out_creates(sim, settings, sessions=2)
    monkeypatch.setattr("intents.executor.timed_out_hold_until", lambda window_s: None)

    # When 4 workers execute them
    run_workers(4, timeout_s=40)

    # Then the exchange saw the second pair while the first was still in flight: the hold is what holds
    assert simulator_max_concurrency("rt-sim-0") > 2


# PostgreSQL only, as tests/intents/test_workers.py's eight workers (SQLite serialises every claim)
def test_eight_workers_with_kills_and_timeouts_never_exceed_the_limits(sim, celery_worker, settings):
    # Given 4 sessions (8 creates) of one account limited to 2 order requests in flight, the exchange's
    # weight counted in 10 s windows, and creates accepted but answered only after 3 s (our timeout: 1 s)
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 2
    settings.SIM_REQUEST_WEIGHT_WINDOW_S = 10
    account = sim.accounts[0]
    for _ in range(4):
        make_running_order(account, layers=1)
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    assert cycle.strategies_run_due(now=timezone.now(), slot=1).intents_written == 8
    simulator_set_faults(account_label="rt-sim-0", timeout_after_accept_s=3)
    simulator_reset_concurrency("rt-sim-0")
    env = {"STRATEGY_INTENT_MAX_IN_FLIGHT": "8", "STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE": "2",
           "STRATEGY_INTENT_LEASE_S": "5", "EXCHANGE_TIMEOUT_MS": "1000",
           "EXCHANGE_BUDGET_KEY_PREFIX": f"test-budget:{uuid.uuid4().hex[:8]}"}
    workers = [celery_worker(queues=("intents",), env=env, purge=n == 0) for n in range(8)]

    # When they execute them, and half the workers are killed once the exchange accepted the first orders
    intents_dispatch(inline=False)
    deadline = time.monotonic() + 30
    while SimOrder.objects.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    for worker in workers[:4]:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    simulator_set_faults(account_label="rt-sim-0")
    for _ in range(4):
        celery_worker(queues=("intents",), env=env, purge=False)
    deadline = time.monotonic() + 120
    while Intent.objects.filter(status__in=ACTIVE_INTENT_STATUSES).exists():
        assert time.monotonic() < deadline, "the intents did not finish"
        intents_dispatch(inline=False)
        time.sleep(0.5)

    # Then the exchange never had more than 2 of the account's order requests at once, every order is there
    # once, and its record shows no window past its request limit and nothing refused
    assert simulator_max_concurrency("rt-sim-0") <= 2
    assert set(Intent.objects.values_list("status", flat=True)) == {IntentStatus.DONE}
    on_exchange = Counter(SimOrder.objects.values_list("client_order_id", flat=True))
    assert set(on_exchange.values()) == {1} and len(on_exchange) == 8
    windows = SimRateWindow.objects.filter(caller=api_key_caller(account.api_key))
    assert windows.exists()
    assert all(w.used <= w.limit and w.refused == 0 for w in windows)
