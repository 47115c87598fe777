"""Kill -9 beat and both workers mid-run and restart them: trading resumes, nothing is sent twice."""
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from django.utils import timezone

from exchanges.simulator.services import simulator_move_to
from intents.models import ACTIVE_INTENT_STATUSES, Intent
from ledger.selectors import audit_ledger
from reconciliation.services import reconcile_run
from intents import ids
from strategy.models import StrategySession, TickLease
from tests.intents.test_workers import wait_until
from tests.runtime_fixtures import make_running_order

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

ENV = {"STRATEGY_TICK_SIZE_MS": "500", "STRATEGY_INTENT_EXECUTION_DRIVER": "worker", "STRATEGY_INTENT_LEASE_S": "3",
       "STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE": "4"}


def start_beat(child_env, tmp_path, n):
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "mmproject", "beat", "-l", "INFO",
                             "--schedule", str(tmp_path / f"beat-{n}")], env={**child_env, **ENV},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def kill9(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def ours_open(client, order):
    prefix = ids.client_order_prefix(order.order_id)
    return [o for o in client.fetch_open_orders("BTC/USDT") if o["clientOrderId"].startswith(prefix)]


def test_kill_minus_nine_everything_then_restart(sim, celery_worker, child_env, tmp_path, settings):
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 4
    account = sim.accounts[0]
    orders = [make_running_order(account, layers=2, refresh=1) for _ in range(3)]
    client = sim.client(account)
    ticker = celery_worker(queues=("tick", "market-making"), env=ENV)
    executor = celery_worker(queues=("intents",), env=ENV, purge=True)
    beat = start_beat(child_env, tmp_path, 0)
    try:
        wait_until(lambda: all(len(ours_open(client, o)) == 4 for o in orders), timeout=60,
                   message="every ladder to be on the exchange")
        simulator_move_to("BTC/USDT", "30400")  # the next cycles requote: work is in flight when we kill
        time.sleep(0.7)

        # When beat and both workers are killed with SIGKILL mid-run
        for proc in (beat, ticker, executor):
            kill9(proc)
        killed_at = timezone.now()
        ran_before = TickLease.objects.get().ticks_run

        # and started again
        celery_worker(queues=("tick", "market-making"), env=ENV, purge=False)
        celery_worker(queues=("intents",), env=ENV, purge=False)
        beat = start_beat(child_env, tmp_path, 1)

        # Then the sessions run again within two ticks of the first tick after the restart
        def resumed():
            return all(s.next_run_at and s.next_run_at > killed_at for s in StrategySession.objects.all())
        wait_until(lambda: TickLease.objects.get().ticks_run > ran_before, timeout=60, message="a tick after restart")
        first = TickLease.objects.get().ticks_run
        wait_until(resumed, timeout=30, interval=0.1, message="every session to run after the restart")
        assert TickLease.objects.get().ticks_run - first <= 2
        # and they quote full ladders again around the new price
        wait_until(lambda: all(len(ours_open(client, o)) == 4 for o in orders), timeout=60,
                   message="the ladders to be requoted after the restart")
    finally:
        if beat.poll() is None:
            kill9(beat)

    # Nothing was sent twice and nothing is left behind
    clients = Counter(o["clientOrderId"] for o in client.fetch_open_orders("BTC/USDT"))
    assert set(clients.values()) == {1}
    # and no ladder stacked: the stated bound (docs/benchmarks.md, "Two-sided quoting") is 2 x layers orders a side,
    # reached only while a refresh places before it cancels (the workers still run here, refreshing every second)
    for order in orders:
        sides = Counter(o["side"] for o in ours_open(client, order))
        assert max(sides.values(), default=0) <= 2 * 2, sides
    wait_until(lambda: not Intent.objects.filter(status__in=ACTIVE_INTENT_STATUSES).exists(), timeout=30,
               message="no intent left in flight")
    assert audit_ledger().ok
    run = reconcile_run(trigger="test", set_baseline=True)
    assert run.ok, list(run.drifts.values_list("kind", "detail"))
