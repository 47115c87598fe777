"""The lifecycle sweeper in beat: scheduled and routed, one sweep at a time (its lease), every state that
waits on a job swept, a live polling chain left alone, unpaid orders failed at their deadline."""
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from ledger.selectors import audit_ledger
from ledger.services import get_balance
from orders.models import MarketMakingOrder, OrderState, Refund, SweepLease
from orders.services import snapshot_intake, snapshot_record
from orders.services.resume import STOP_RESUMED_REASON, lifecycle_sweep, sweep_lease_release, sweep_lease_take
from strategy.models import SessionStatus, StrategySession

from .conftest import USDT, snapshot_payload


def queued_jobs(callbacks) -> list[tuple[str, tuple]]:
    """(job, args) of each enqueue_after_commit captured (a partial of mmproject.jobs._send_logged)."""
    return [(cb.args[0], cb.args[1]) for cb in callbacks]


def run_jobs(capture, jobs: list[tuple[str, tuple]], *, limit: int = 100) -> list[tuple[str, tuple]]:
    """Run lifecycle jobs in this process, each with what it queues in turn (countdowns not waited):
    a worker without the waiting. Returns every (job, args) run, in order."""
    import orders.tasks  # noqa: F401 (registers the jobs)
    from mmproject.celery import app

    ran, todo = [], list(jobs)
    while todo:
        assert len(ran) < limit, ran
        name, args = todo.pop(0)
        with capture(execute=False) as more:
            app.tasks[name].apply(args=args, throw=True)
        ran.append((name, args))
        todo += queued_jobs(more)
    return ran


def sweep(capture) -> tuple[dict, list[tuple[str, tuple]]]:
    with capture(execute=False) as queued:
        counts = lifecycle_sweep(holder="test")
    return counts, queued_jobs(queued)


def test_the_sweeper_is_in_beat_on_the_market_making_queue(settings):
    from mmproject.celery import MARKET_MAKING_QUEUE, _beat_schedule, app

    settings.MM_SWEEP_INTERVAL_S = 45
    entry = _beat_schedule()["lifecycle-sweep"]
    assert entry["task"] == "resume_market_making"
    assert entry["schedule"] == timedelta(seconds=45)
    assert entry["options"]["expires"] == 45.0
    assert app.conf.task_routes["resume_market_making"] == {"queue": MARKET_MAKING_QUEUE}


@pytest.mark.embedded
def test_a_sweep_is_skipped_while_another_holds_the_lease_and_runs_once_it_is_released_or_expired(order):
    # given another sweep holding the lease
    assert sweep_lease_take(holder="other", ttl_s=60)
    # when a sweep starts, it does nothing and is counted as skipped
    assert lifecycle_sweep(holder="test") is None
    assert SweepLease.objects.get().skipped == 1
    with pytest.raises(SystemExit) as exited:
        call_command("mm_resume")
    assert exited.value.code == 1
    # then once released, a sweep runs and records what it did
    sweep_lease_release(holder="other", counts=None)
    assert lifecycle_sweep(holder="test") is not None
    lease = SweepLease.objects.get()
    assert (lease.runs, lease.lease_until) == (1, None) and "refunds_sent" in lease.last_counts
    # and a lease whose sweep died is taken over once it has expired
    assert sweep_lease_take(holder="crashed", ttl_s=60)
    SweepLease.objects.update(lease_until=timezone.now() - timedelta(seconds=1))
    assert lifecycle_sweep(holder="test") is not None


def test_concurrent_sweeps_take_the_lease_once(transactional_db):
    # given eight sweepers starting at the same moment, each on its own connection
    SweepLease.objects.create(name="lifecycle")
    barrier, taken = threading.Barrier(8), []

    def take(n):
        try:
            barrier.wait()
            taken.append(sweep_lease_take(holder=f"beat-{n}", ttl_s=60))
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then exactly one holds it
    assert sorted(taken) == [False] * 7 + [True]
    assert SweepLease.objects.get().skipped == 7


@pytest.mark.embedded
def test_an_unpaid_order_fails_at_its_deadline_and_what_arrived_is_refunded(
        pair, make_order, django_capture_on_commit_callbacks):
    # given an order never paid and one paid in part, both past their deadline, and one not yet due
    never_paid, part_paid, not_due = make_order(pair), make_order(pair), make_order(pair)
    payload = snapshot_payload(part_paid, asset_id=USDT, amount="400")
    with django_capture_on_commit_callbacks(execute=False):
        snapshot_record(provider="local", data=payload)
        snapshot_intake(snapshot_id=payload["snapshot_id"])
    MarketMakingOrder.objects.filter(pk__in=[never_paid.pk, part_paid.pk]).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    # the part-paid order's check chain was lost (never queued) and its lease long passed
    MarketMakingOrder.objects.filter(pk=part_paid.pk).update(
        job_name="check_payment_complete", job_chain=1, job_lease_until=timezone.now() - timedelta(seconds=5))

    # when the sweep runs and its jobs run
    counts, jobs = sweep(django_capture_on_commit_callbacks)
    assert sorted(jobs) == sorted([("check_payment_complete", (str(never_paid.order_id),)),
                                   ("check_payment_complete", (str(part_paid.order_id),))])
    assert counts["chains_lost"] == 1
    run_jobs(django_capture_on_commit_callbacks, jobs)

    # then both failed with the deadline as the reason, and the 400 USDT that arrived went back once
    for order in (never_paid, part_paid):
        order.refresh_from_db()
        assert order.state == OrderState.FAILED and "not complete by the deadline" in order.reason
        assert order.job_lease_until is None  # the chain ended: nothing holds the order
    refund = Refund.objects.get()
    assert (refund.order_id, refund.amount, refund.status) == (part_paid.pk, Decimal("400"), "sent")
    assert get_balance(user_id=part_paid.user_id, asset_id=USDT).total == 0
    not_due.refresh_from_db()
    assert not_due.state == OrderState.PAYMENT_PENDING
    assert audit_ledger().ok


def test_the_sweep_leaves_a_live_polling_chain_alone(order, django_capture_on_commit_callbacks):
    # given a paid-in-part order whose check chain polled a moment ago (its lease runs)
    payload = snapshot_payload(order, asset_id=USDT, amount="1")
    with django_capture_on_commit_callbacks(execute=False):
        snapshot_record(provider="local", data=payload)
        snapshot_intake(snapshot_id=payload["snapshot_id"])
    MarketMakingOrder.objects.filter(pk=order.pk).update(
        job_name="check_payment_complete", job_chain=3, job_attempts=2,
        job_lease_until=timezone.now() + timedelta(seconds=30))
    # when the sweep runs, nothing is queued for it
    _, jobs = sweep(django_capture_on_commit_callbacks)
    assert jobs == []
    # and a start that arrives anyway (the admin's retry) is ignored while the chain lives
    run_jobs(django_capture_on_commit_callbacks, [("check_payment_complete", (str(order.order_id),))])
    order.refresh_from_db()
    assert (order.job_chain, order.job_attempts) == (3, 2)


def _stopping_order(pair, **job):
    from tests.factories import OrderFactory

    order = OrderFactory(pair=pair, state=OrderState.RUNNING)
    StrategySession.objects.filter(order=order).update(status=SessionStatus.STOPPING)
    MarketMakingOrder.objects.filter(pk=order.pk).update(**job)
    return order


def test_a_stop_that_ran_out_of_polls_is_started_again_and_a_live_one_is_not(pair, django_capture_on_commit_callbacks):
    # given a stop chain that gave up (lease released) and one still polling
    gave_up = _stopping_order(pair, job_name="stop_mm", job_chain=1, job_attempts=60, job_lease_until=None)
    polling = _stopping_order(pair, job_name="stop_mm", job_chain=1, job_attempts=3,
                              job_lease_until=timezone.now() + timedelta(seconds=40))
    # when the sweep runs
    _, jobs = sweep(django_capture_on_commit_callbacks)
    # then only the one that gave up gets a new stop, and neither gets start_mm
    assert jobs == [("stop_mm", (str(gave_up.order_id), STOP_RESUMED_REASON))]
    assert polling.state == OrderState.RUNNING


@pytest.mark.parametrize("state, job", [
    (OrderState.WITHDRAWING, "monitor_mixin_withdrawal"),
    (OrderState.WITHDRAWAL_CONFIRMED, "join_campaign"),
    (OrderState.CAMPAIGN_JOINED, "start_mm"),
])
def test_each_state_that_waits_on_a_job_is_swept(pair, state, job, settings, django_capture_on_commit_callbacks):
    from tests.factories import OrderFactory

    settings.MM_WITHDRAW_MODE = "transfer"
    order = OrderFactory(pair=pair, state=state, strategy_session=None)
    _, jobs = sweep(django_capture_on_commit_callbacks)
    assert jobs == [(job, (str(order.order_id),))]


@pytest.mark.slow
@pytest.mark.embedded
def test_with_no_person_acting_beat_sweeps_every_order_whose_job_was_lost_to_its_end(
        pair, make_order, celery_worker, child_env, tmp_path, transactional_db, django_capture_on_commit_callbacks):
    # given, with every job message lost: an unpaid order and a part-paid one, both past their deadline (the
    # part-paid one's check chain long dead), and a running order whose stop ran out of polls
    never_paid, part_paid = make_order(pair), make_order(pair)
    payload = snapshot_payload(part_paid, asset_id=USDT, amount="400")
    snapshot_record(provider="local", data=payload)
    snapshot_intake(snapshot_id=payload["snapshot_id"])
    past = timezone.now() - timedelta(seconds=1)
    MarketMakingOrder.objects.filter(pk__in=[never_paid.pk, part_paid.pk]).update(expires_at=past)
    MarketMakingOrder.objects.filter(pk=part_paid.pk).update(job_name="check_payment_complete", job_chain=1,
                                                              job_lease_until=past)
    stopping = _stopping_order(pair, job_name="stop_mm", job_chain=1, job_attempts=60, job_lease_until=None)
    # when a worker runs (it purges the messages sent above) with two beats, each sweeping every second
    env = {"MM_SWEEP_INTERVAL_S": "1", "STRATEGY_TICK_SIZE_MS": "60000"}
    worker = celery_worker(env=env)
    beats = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "mmproject", "beat", "-l", "INFO",
                               "--schedule", str(tmp_path / f"beat-{n}")], env={**child_env, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
             for n in range(2)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = dict(MarketMakingOrder.objects.filter(
                pk__in=[never_paid.pk, part_paid.pk, stopping.pk]).values_list("pk", "state"))
            if states == {never_paid.pk: "failed", part_paid.pk: "failed", stopping.pk: "stopped"}:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"orders not ended: {states};\n{worker.log_path.read_text()[-5000:]}")
    finally:
        for beat in beats:
            beat.terminate()
            beat.wait(timeout=15)
    # then each ended with its reason, the 400 USDT that arrived went back, and the sweeps ran one at a time
    assert "not complete by the deadline" in MarketMakingOrder.objects.get(pk=part_paid.pk).reason
    assert MarketMakingOrder.objects.get(pk=stopping.pk).reason == STOP_RESUMED_REASON
    refund = Refund.objects.get()
    assert (refund.order_id, refund.amount, refund.status) == (part_paid.pk, Decimal("400"), "sent")
    assert SweepLease.objects.get().runs >= 1
    assert audit_ledger().ok
