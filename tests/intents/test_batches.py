"""Intents claimed together run one after another in one process, their database work shared
(intents.executor), against the simulator over HTTP."""
import threading
import time
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exchanges.simulator.services import simulator_set_faults
from intents.executor import intents_execute
from intents.gates import claim_intents, sync_slots
from intents.halt import halt_set
from intents.models import Intent, IntentStatus, TrackedOrder, TrackedOrderStatus
from strategy import cycle
from strategy.trackers import refresh_market_data
from tests.runtime_fixtures import make_running_order


def quoted_sessions(account, n):
    """``n`` running one-layer sessions whose cycle has written their creates (a buy and a sell each)."""
    orders = [make_running_order(account, layers=1) for _ in range(n)]
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    assert cycle.strategies_run_due(now=timezone.now(), slot=1).intents_written == 2 * n
    sync_slots([account.pk])
    return orders


def claimed_one_per_session(sim, settings, sessions):
    """Claims of one account, one per session (one in flight per strategy key), its markets loaded."""
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8
    account = sim.accounts[0]
    quoted_sessions(account, sessions)
    claims = claim_intents(max_claims=8)
    assert len(claims) == sessions
    sim.client(account)  # markets loaded outside what a test counts or times (the process keeps them)
    return account, claims


def on_exchange(sim, account):
    return Counter(o["clientOrderId"] for o in sim.client(account).fetch_open_orders("BTC/USDT"))


def in_thread(after_s, work):
    """Run ``work`` on its own database connection ``after_s`` from now; the thread and its result."""
    result = {}

    def run():
        time.sleep(after_s)
        try:
            result["value"] = work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


@pytest.mark.embedded
@pytest.mark.parametrize("sessions", [2, 6])
def test_a_batch_costs_the_same_statements_whatever_its_size(sim, settings, sessions, monkeypatch):
    # Given `sessions` claims of one account, one per session, and sends fast enough that the send check
    # never goes stale within the batch (on a loaded machine six sends can pass RECHECK_AFTER_S, and the
    # executor then checks the rest again: two statements more, by design)
    monkeypatch.setattr("intents.executor.RECHECK_AFTER_S", 60.0)
    account, claims = claimed_one_per_session(sim, settings, sessions)

    # When they run as one batch
    with CaptureQueriesContext(connection) as queries:
        results = intents_execute(claims)

    # Then each is on the exchange once, tracked open, done, its slots free; in a fixed number of
    # statements: one read (intents, tracked orders, accounts), the send check and sent_at, then
    # tracked orders and releases together
    assert set(results.values()) == {IntentStatus.DONE}
    claimed = list(Intent.objects.filter(pk__in=[c.intent_pk for c in claims]))
    assert {i.status for i in claimed} == {IntentStatus.DONE} and all(i.sent_at and i.finished_at for i in claimed)
    assert all(i.exchange_order_id for i in claimed)
    tracked = {t.client_order_id: t for t in TrackedOrder.objects.filter(client_order_id__in=[i.client_order_id
                                                                                              for i in claimed])}
    assert {t.status for t in tracked.values()} == {TrackedOrderStatus.OPEN}
    assert {t.exchange_order_id for t in tracked.values()} == {i.exchange_order_id for i in claimed}
    assert on_exchange(sim, account) == Counter({cid: 1 for cid in tracked})
    assert not Intent.objects.filter(slots__isnull=False).exists()
    # (PostgreSQL: one statement; SQLite: three, between BEGIN and COMMIT)
    expected = 4 if connection.vendor == "postgresql" else 8
    assert len(queries) == expected, "\n".join(q["sql"][:160] for q in queries.captured_queries)


@pytest.mark.slow
@pytest.mark.embedded
def test_a_kill_switch_engaged_during_a_batch_stops_its_remaining_creates(sim, settings):
    # Given three claimed creates of one account whose exchange answers each after 400 ms
    account, claims = claimed_one_per_session(sim, settings, 3)
    simulator_set_faults(account_label="rt-sim-0", latency_ms=400)

    # When the kill switch is engaged while the first create is out
    thread, _ = in_thread(0.15, lambda: halt_set(engaged=True, reason="test", by="test"))
    results = intents_execute(claims)
    thread.join()
    simulator_set_faults(account_label="rt-sim-0")

    # Then only that first create reached the exchange; the other two were checked again (the
    # first check was older than RECHECK_AFTER_S), not sent, and their sent_at is cleared
    first, *rest = [Intent.objects.get(pk=c.intent_pk) for c in claims]
    assert results[first.pk] == IntentStatus.DONE and first.sent_at is not None
    assert [results[i.pk] for i in rest] == [IntentStatus.SUPERSEDED] * 2
    assert all(i.sent_at is None and "kill switch" in i.last_error for i in rest)
    assert set(on_exchange(sim, account)) == {first.client_order_id}
    assert [TrackedOrder.objects.get(client_order_id=i.client_order_id).status for i in rest] == [
        TrackedOrderStatus.CANCELLED] * 2


@pytest.mark.slow
@pytest.mark.embedded
def test_a_slow_batch_renews_its_claims_so_nobody_takes_them_over(sim, settings):
    # Given three claimed creates, a 2 s lease and an exchange answering each after 900 ms
    # (the batch takes ~2.7 s: longer than one lease)
    settings.STRATEGY_INTENT_LEASE_S = 2
    account, claims = claimed_one_per_session(sim, settings, 3)
    simulator_set_faults(account_label="rt-sim-0", latency_ms=900)

    # When another claimer tries after the first lease would have lapsed
    thread, stolen = in_thread(2.3, lambda: claim_intents(max_claims=8))
    results = intents_execute(claims)
    thread.join()
    simulator_set_faults(account_label="rt-sim-0")

    # Then it found nothing to take: the batch renewed its claims, and each ended once, done
    assert stolen["value"] == []
    assert set(results.values()) == {IntentStatus.DONE}
    claimed = list(Intent.objects.filter(pk__in=[c.intent_pk for c in claims]))
    assert [(i.status, i.attempts) for i in claimed] == [(IntentStatus.DONE, 1)] * 3
    assert set(on_exchange(sim, account)) == {i.client_order_id for i in claimed}


@pytest.mark.embedded
def test_a_lane_runs_its_batches_until_nothing_is_claimable(sim, settings):
    from intents.dispatcher import intents_lane

    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8
    account = sim.accounts[0]
    quoted_sessions(account, 5)

    # 10 creates of 5 keys, batches of 3: one in flight per key, so the buys and sells take turns
    assert intents_lane(budget_s=30, batch=3) == 10
    assert Counter(Intent.objects.values_list("status", flat=True)) == {IntentStatus.DONE: 10}
    assert len(on_exchange(sim, account)) == 10


@pytest.mark.embedded
def test_an_execution_may_outlast_a_lane_and_a_whole_batch_of_timeouts(settings):
    # One intent, a lane, then a last batch whose every intent times out and is looked up (also timing
    # out): the task's soft time limit must not stop it half-way.
    from intents.tasks import execute_intent

    worst = settings.STRATEGY_INTENT_LANE_S + 2 * (1 + settings.STRATEGY_INTENT_LANE_BATCH) * (
        settings.EXCHANGE_TIMEOUT_MS / 1000)
    assert execute_intent.soft_time_limit > worst
    assert execute_intent.time_limit > execute_intent.soft_time_limit
