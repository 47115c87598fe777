"""Polling jobs count their polls on the order's own row (orders.services.chains), not with Celery's retry
counter: the limit takes the failure path, a message delivered twice or of a replaced chain does nothing, and
(through a real worker) a transient error at every poll, past MM_JOB_MAX_RETRIES, still ends in a final state."""
import json
import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from ledger.selectors import audit_ledger
from ledger.services import get_balance
from orders.models import MarketMakingOrder, OrderState, Refund
from orders.services import snapshot_intake, snapshot_record

from .conftest import BTC, USDT, snapshot_payload
from .test_sweeps import queued_jobs, run_jobs


def part_paid(order, capture, amount="400"):
    """Pay the order's USDT leg in part through intake; returns the job that starts its check chain."""
    payload = snapshot_payload(order, asset_id=USDT, amount=amount)
    with capture(execute=False) as queued:
        snapshot_record(provider="local", data=payload)
        snapshot_intake(snapshot_id=payload["snapshot_id"])
    return [job for job in queued_jobs(queued) if job[0] == "check_payment_complete"]


@pytest.mark.embedded
def test_checks_are_counted_on_the_order_and_the_last_one_fails_and_refunds(
        order, settings, capsys, django_capture_on_commit_callbacks):
    # given a part-paid order (deadline an hour away) and a limit of three checks
    settings.MM_PAYMENT_MAX_CHECKS = 3
    start = part_paid(order, django_capture_on_commit_callbacks)
    assert start == [("check_payment_complete", (str(order.order_id),))]
    # when its chain runs
    ran = run_jobs(django_capture_on_commit_callbacks, start)
    # then each poll was a new message carrying the chain and the attempt, and the third failed the order
    oid = str(order.order_id)
    assert ran == [("check_payment_complete", (oid,)), ("check_payment_complete", (oid, 1, 1)),
                   ("check_payment_complete", (oid, 1, 2))]
    order.refresh_from_db()
    assert order.state == OrderState.FAILED and order.reason == "payment still incomplete after 3 checks"
    assert (order.job_name, order.job_chain, order.job_attempts, order.job_lease_until) == (
        "check_payment_complete", 1, 3, None)
    call_command("mm_order", "show", oid)
    assert json.loads(capsys.readouterr().out)["job"] == {
        "name": "check_payment_complete", "chain": 1, "attempts": 3, "lease_until": None}
    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.status) == (Decimal("400"), "sent")
    assert get_balance(user_id=order.user_id, asset_id=USDT).total == 0
    assert audit_ledger().ok


def test_a_poll_delivered_twice_queues_the_next_poll_once(order, django_capture_on_commit_callbacks):
    from orders.tasks import check_payment_complete

    # given a chain at its second poll
    start = part_paid(order, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False) as first:
        check_payment_complete.apply(args=start[0][1], throw=True)
    (second,) = queued_jobs(first)
    # when the second poll's message is delivered twice (a worker lost after it queued the third)
    with django_capture_on_commit_callbacks(execute=False) as once:
        check_payment_complete.apply(args=second[1], throw=True)
    with django_capture_on_commit_callbacks(execute=False) as again:
        check_payment_complete.apply(args=second[1], throw=True)
    # then the third poll is queued once and the count moved once
    assert len(queued_jobs(once)) == 1 and queued_jobs(again) == []
    order.refresh_from_db()
    assert order.job_attempts == 2


def test_a_poll_of_a_replaced_chain_and_a_start_beside_a_live_chain_do_nothing(
        order, django_capture_on_commit_callbacks):
    from orders.tasks import check_payment_complete

    # given chain 1 polling, then replaced by chain 2 (the sweeper, after chain 1's lease passed)
    start = part_paid(order, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False) as first:
        check_payment_complete.apply(args=start[0][1], throw=True)
    (old_poll,) = queued_jobs(first)
    MarketMakingOrder.objects.filter(pk=order.pk).update(job_lease_until=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=False) as second:
        check_payment_complete.apply(args=(str(order.order_id),), throw=True)
    assert queued_jobs(second) == [("check_payment_complete", (str(order.order_id), 2, 1))]
    # when chain 1's late poll and another start arrive
    with django_capture_on_commit_callbacks(execute=False) as late:
        check_payment_complete.apply(args=old_poll[1], throw=True)
        check_payment_complete.apply(args=(str(order.order_id),), throw=True)
    # then neither polls nor queues anything: chain 2 is the order's one chain
    assert queued_jobs(late) == []
    order.refresh_from_db()
    assert (order.job_chain, order.job_attempts) == (2, 1)


@pytest.mark.slow
def test_withdrawal_monitor_counts_its_checks_and_abandons_at_the_limit(sim_pair, make_order, settings):
    from orders.services import payment_check, withdrawal_start
    from orders.tasks import monitor_mixin_withdrawal

    from .conftest import pay_in_full

    # given an order sent to the exchange whose deposits never confirm, and a limit of two checks
    settings.MM_WITHDRAW_MODE = "transfer"
    settings.SIM_DEPOSIT_CONFIRM_S = 3600
    settings.MM_WITHDRAWAL_MAX_CHECKS = 2
    order = make_order(sim_pair)
    pay_in_full(order)
    assert payment_check(order_id=order.order_id) == "complete"
    assert withdrawal_start(order_id=order.order_id) == "sent"
    oid = str(order.order_id)
    # when its monitor chain polls (each poll run here with the chain and attempt it would carry)
    monitor_mixin_withdrawal.apply(args=(oid,), throw=True)
    order.refresh_from_db()
    assert (order.job_name, order.job_attempts, order.state) == ("monitor_mixin_withdrawal", 1, "withdrawing")
    monitor_mixin_withdrawal.apply(args=(oid, order.job_chain, 1), throw=True)
    # then the second check abandons it: failed, funds locked for review, the chain ended
    order.refresh_from_db()
    assert order.state == "failed" and order.reason.startswith("deposits still unconfirmed after 2 checks")
    assert (order.job_attempts, order.job_lease_until) == (2, None)
    assert get_balance(user_id=order.user_id, asset_id=BTC).locked == Decimal("0.5")


def _retries(worker) -> int:
    return len(re.findall(r"check_payment_complete\[\S+\] retry: Retry in", worker.log_path.read_text()))


def _wait(predicate, worker, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} not reached;\nworker log:\n{worker.log_path.read_text()[-5000:]}")


@pytest.mark.slow
def test_a_transient_database_error_at_every_poll_never_ends_the_chain(
        pair, make_order, celery_worker, child_env, transactional_db, django_capture_on_commit_callbacks):
    """At each poll the test holds the order's row lock, so the worker's poll waits past its lock_timeout and
    gets a real database error (OperationalError: lock timeout), retried by Celery. Six polls against
    MM_JOB_MAX_RETRIES=3: with Celery's retry counter counting the polls, the errors from the 4th poll on
    would have ended the chain with no failure and no refund."""
    if connection.vendor != "postgresql":
        pytest.skip("lock_timeout is PostgreSQL's")
    from mmproject.jobs import send

    # given a part-paid order whose chain has not started (the worker purges the messages intake sent)
    order = make_order(pair)
    part_paid(order, django_capture_on_commit_callbacks)
    checks = 6
    worker = celery_worker(env={
        "DATABASE_URL": child_env["DATABASE_URL"] + "?options=-c%20lock_timeout%3D300",
        "MM_PAYMENT_CHECK_INTERVAL_S": "1", "MM_PAYMENT_MAX_CHECKS": str(checks), "MM_JOB_MAX_RETRIES": "3"})

    def polls_done():
        return MarketMakingOrder.objects.filter(pk=order.pk).values_list("job_attempts", "state").get()

    # when every poll meets a transient error first
    for poll in range(checks):
        _wait(lambda: polls_done()[0] == poll, worker, f"poll {poll}")
        with transaction.atomic():
            MarketMakingOrder.objects.select_for_update().filter(pk=order.pk).values_list("pk").get()
            if poll == 0:
                send("check_payment_complete", (str(order.order_id),))
            _wait(lambda: _retries(worker) > poll, worker, f"a retry of poll {poll + 1}")
    # then the chain still reaches its end: failed after its checks, what arrived refunded once
    _wait(lambda: polls_done() == (checks, "failed"), worker, "failed")
    order.refresh_from_db()
    assert order.reason == f"payment still incomplete after {checks} checks"
    assert _retries(worker) >= checks
    refund = Refund.objects.get(order=order)
    _wait(lambda: Refund.objects.get(pk=refund.pk).status == "sent", worker, "refund sent")
    assert audit_ledger().ok


@pytest.mark.slow
def test_a_stop_still_stopping_at_its_last_poll_ends_its_chain_for_the_sweeper(
        pair, settings, caplog, django_capture_on_commit_callbacks):
    from intents.ids import strategy_key
    from intents.models import IntentStatus
    from orders.services.resume import STOP_RESUMED_REASON
    from orders.tasks import stop_mm
    from strategy.models import SessionStatus, StrategySession
    from tests.factories import ExchangeAccountFactory, IntentFactory, OrderFactory

    from .test_sweeps import sweep

    # given a running order whose create is still in flight on the exchange (so its stop cannot finish yet),
    # and a stop allowed one poll
    settings.MM_STOP_MAX_RETRIES = 1
    order = OrderFactory(pair=pair, state=OrderState.RUNNING, exchange_account=ExchangeAccountFactory())
    IntentFactory(strategy_key=strategy_key(order.order_id), account=order.exchange_account,
                  status=IntentStatus.IN_FLIGHT, lease_until=timezone.now() + timedelta(minutes=5))
    # when the stop job runs its one poll (waiting its 5 s for the exchange to be clear)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        stop_mm.apply(args=(str(order.order_id), "operator stop"), throw=True)
    # then it is still stopping, the poll was counted, no next poll was queued and the chain let go of the order
    assert queued_jobs(queued) == []
    order.refresh_from_db()
    assert order.state == OrderState.RUNNING
    assert StrategySession.objects.get(order=order).status == SessionStatus.STOPPING
    assert (order.job_name, order.job_attempts, order.job_lease_until) == ("stop_mm", 1, None)
    assert "event=stop_attempts_exhausted" in caplog.text
    # and the next sweep starts the stop again
    _, jobs = sweep(django_capture_on_commit_callbacks)
    assert jobs == [("stop_mm", (str(order.order_id), STOP_RESUMED_REASON))]
