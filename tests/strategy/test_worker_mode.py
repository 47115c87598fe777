"""The tick in worker mode (real Celery workers and beats): it never waits on an exchange."""
import subprocess
import sys
import time

import pytest
from django.utils import timezone

from exchanges.simulator.services import simulator_set_faults
from intents.models import TrackedOrder, TrackedOrderStatus
from intents import ids
from strategy.models import MarketData, StrategySession, TickLease
from strategy.tick import tick_run
from tests.intents.test_workers import wait_until
from tests.runtime_fixtures import make_running_order

pytestmark = [pytest.mark.slow, pytest.mark.embedded]


def test_worker_tick_enqueues_trackers_and_quotes_from_stored_data(sim, celery_worker, settings):
    # Given an exchange that answers after 400 ms, and workers on the tick and intents queues
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "worker"
    settings.STRATEGY_TICK_SIZE_MS = 10
    simulator_set_faults(account_label="rt-sim-0", latency_ms=400)
    account = sim.accounts[0]
    order = make_running_order(account, layers=1)
    worker = celery_worker(queues=("tick", "intents"), env={"STRATEGY_INTENT_EXECUTION_DRIVER": "worker"})

    # When the first tick runs, no market data is stored yet: it enqueues and does not wait
    first = tick_run()
    assert first.ran and first.duration_ms < 400 and first.sessions_run == 0
    try:
        # (9 s on an idle machine, worker start included; a make test of three passes once took over 30)
        wait_until(lambda: MarketData.objects.filter(account=account).exists(), timeout=60,
                   message="the market-data task to store the book")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the worker's log ends:\n{worker.log_path.read_text()[-4000:]}") from None

    # Then a later tick quotes from the stored book and the workers place the orders
    StrategySession.objects.update(next_run_at=timezone.now())
    time.sleep(0.02)
    second = tick_run()
    assert second.ran and second.sessions_run == 1 and second.duration_ms < 400
    key = ids.strategy_key(order.order_id)
    wait_until(lambda: TrackedOrder.objects.filter(strategy_key=key, status=TrackedOrderStatus.OPEN).count() == 2,
               timeout=30, message="both orders to be open on the exchange")


# transactional_db: the test reads what the worker commits (on SQLite a test transaction would hold the write
# lock, BEGIN IMMEDIATE, and read one snapshot)
def test_two_beats_never_double_tick(transactional_db, child_env, celery_worker, tmp_path):
    # Given two beat processes by mistake, each sending a tick every 500 ms, and one tick worker
    env = {"STRATEGY_TICK_SIZE_MS": "500"}
    celery_worker(queues=("tick",), env=env)
    beats = [
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "mmproject", "beat", "-l", "INFO",
                          "--schedule", str(tmp_path / f"beat-{n}")], env={**child_env, **env},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for n in range(2)
    ]
    try:
        # (beats and the worker take a few seconds to start on a busy machine)
        wait_until(lambda: TickLease.objects.filter(ticks_run__gte=2).exists(), timeout=60,
                   message="the beats to start ticking")
        before = TickLease.objects.get()
        started = time.monotonic()
        time.sleep(4)
        after = TickLease.objects.get()
        elapsed = time.monotonic() - started
    finally:
        for beat in beats:
            beat.terminate()
        for beat in beats:
            beat.wait(timeout=15)

    # Then at most one tick ran per 500 ms period, and the duplicates were counted as skipped
    ran, skipped = after.ticks_run - before.ticks_run, after.ticks_skipped - before.ticks_skipped
    assert 2 <= ran <= elapsed / 0.5 + 1
    assert skipped >= 2
