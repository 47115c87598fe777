"""The whole lifecycle through a real Celery worker on the configured broker, in ``transfer`` mode:
``ingest_snapshots`` -> ... -> ``running``, then ``stop_mm`` -> ``stopped``; ledger audit clean."""
import json
import re
import time
from decimal import Decimal

import pytest
from django.core.management import call_command

from exchanges.models import SimDeposit
from ledger.selectors import audit_ledger
from ledger.services import get_balance
from orders.models import MarketMakingOrder, OrderTransition, Snapshot
from strategy.models import StrategySession

from .conftest import BTC, ETH, USDT, snapshot_payload

pytestmark = pytest.mark.slow

WAIT_S = 60


def wait_for_state(order, wanted, worker):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        current = MarketMakingOrder.objects.get(pk=order.pk)
        if current.state == wanted:
            return current
        if current.state == "failed" or worker.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"order is {current.state} ({current.reason!r}), not {wanted};\n"
                f"worker log:\n{worker.log_path.read_text()[-6000:]}")


@pytest.mark.embedded  # the embedded default (SQLite + filesystem broker) runs the same chain
def test_ingested_payment_runs_to_running_through_the_worker_and_stops(
        sim_pair, make_order, celery_worker, tmp_path, capsys):
    # given a worker on the market-making queue in transfer mode, with short intervals
    worker = celery_worker(env={
        "MM_WITHDRAW_MODE": "transfer", "MM_PAYMENT_FIRST_CHECK_S": "0", "MM_PAYMENT_CHECK_INTERVAL_S": "1",
        "MM_WITHDRAWAL_CHECK_INTERVAL_S": "1", "SIM_DEPOSIT_CONFIRM_S": "1",
    })
    order = make_order(sim_pair)
    payloads = [snapshot_payload(order, asset_id=BTC, amount="0.5001"),
                snapshot_payload(order, asset_id=USDT, amount="600"),
                snapshot_payload(order, asset_id=USDT, amount="400"),
                snapshot_payload(order, asset_id=ETH, amount="0.002")]
    lines = [json.dumps(p) for p in payloads] + [json.dumps(payloads[0]), "{not json"]
    path = tmp_path / "snapshots.jsonl"
    path.write_text("\n".join(lines) + "\n")

    # when the snapshots are ingested (one duplicate, one malformed line)
    with pytest.raises(SystemExit) as exited:
        call_command("ingest_snapshots", str(path))
    assert exited.value.code == 2
    out = capsys.readouterr()
    assert "4 new, 1 already known, 1 malformed" in out.out and "line 6" in out.err

    # then the worker carries the order all the way to running
    running = wait_for_state(order, "running", worker)
    assert Snapshot.objects.filter(order=order, outcome="credited").count() == 4
    assert StrategySession.objects.get(order=order).status == "running"
    assert {d.asset: d.amount for d in SimDeposit.objects.all()} == {"BTC": Decimal("0.5"), "USDT": Decimal("1000")}
    assert get_balance(user_id=order.user_id, asset_id=USDT).locked == Decimal("1000")
    assert running.state == "running"

    # when the operator stops it
    call_command("stop_mm", str(order.order_id))
    stopped = MarketMakingOrder.objects.get(pk=order.pk)
    assert stopped.state == "stopped"
    assert StrategySession.objects.get(order=order).status == "stopped"
    assert get_balance(user_id=order.user_id, asset_id=USDT).available == Decimal("1000")
    assert list(OrderTransition.objects.filter(order=order).values_list("to_state", flat=True)) == [
        "payment_pending", "payment_complete", "withdrawing", "withdrawal_confirmed", "campaign_joined",
        "running", "stopped"]
    report = audit_ledger()
    assert report.ok, report.drifts


def wait_until_failed(orders, worker):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        states = {o.pk: MarketMakingOrder.objects.get(pk=o.pk) for o in orders}
        if all(s.state == "failed" for s in states.values()):
            return states
        time.sleep(0.2)
    pytest.fail(f"orders not failed: {[(s.state, s.reason) for s in states.values()]};\n"
                f"worker log:\n{worker.log_path.read_text()[-6000:]}")


def test_worker_fails_and_refunds_at_the_deadline_or_when_checks_run_out(pair, make_order, celery_worker,
                                                                          settings, transactional_db):
    from orders.models import Refund
    from orders.services import snapshot_record

    # given a worker that checks every second, three times at most
    worker = celery_worker(env={"MM_PAYMENT_FIRST_CHECK_S": "0", "MM_PAYMENT_CHECK_INTERVAL_S": "1",
                                "MM_PAYMENT_MAX_CHECKS": "3"})
    # an order whose deadline comes first, and one whose checks run out first; both half paid
    settings.MM_PAYMENT_TIMEOUT_S = 2
    by_deadline = make_order(pair)
    settings.MM_PAYMENT_TIMEOUT_S = 600
    by_checks = make_order(pair)
    for order in (by_deadline, by_checks):
        snapshot_record(provider="local", data=snapshot_payload(order, asset_id=USDT, amount="400"))
    # then both fail through the worker's retries, each with its reason, and each refund is paid once
    states = wait_until_failed([by_deadline, by_checks], worker)
    assert "deadline" in states[by_deadline.pk].reason
    assert "after 3 checks" in states[by_checks.pk].reason
    for order in (by_deadline, by_checks):
        refund = Refund.objects.get(order=order)
        assert (refund.asset_id, refund.amount, refund.status) == (USDT, Decimal("400"), "sent")
        assert get_balance(user_id=order.user_id, asset_id=USDT).total == 0
    assert audit_ledger().ok


def _pool_children(pid: int) -> list[int]:
    import subprocess

    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in out.split()]


def test_job_of_a_killed_worker_process_is_redelivered_and_applied_once(sim_pair, make_order, celery_worker,
                                                                         settings):
    import os
    import signal

    from exchanges.simulator.services import simulator_set_faults

    from .conftest import pay_in_full

    # given a prefork worker, and an exchange that answers slowly, so the job is caught mid-flight
    worker = celery_worker(pool="prefork", env={
        "MM_WITHDRAW_MODE": "transfer", "MM_WITHDRAWAL_CHECK_INTERVAL_S": "1"})
    simulator_set_faults(account_label="orders-sim", latency_ms=5000)
    settings.MM_WITHDRAW_MODE = "transfer"
    order = make_order(sim_pair)
    pay_in_full(order)
    from orders.services import payment_check

    assert payment_check(order_id=order.order_id) == "complete"  # queues withdraw_to_exchange
    # wait until a pool process is inside the job: it has built its exchange client and is calling out
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log = worker.log_path.read_text()
        if re.search(r"Task withdraw_to_exchange\[\S+\] received", log) and "exchange_client_created" in log:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    # when the pool process running withdraw_to_exchange is killed
    children = _pool_children(worker.pid)
    assert children, worker.log_path.read_text()[-3000:]
    simulator_set_faults(account_label="orders-sim")
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    # then the job is redelivered to a new pool process and the chain completes, every effect once
    wait_for_state(order, "running", worker)
    log = worker.log_path.read_text()
    assert "WorkerLostError" in log, log[-3000:]
    # the killed message itself came back (same task id); other deliveries, e.g. queued again by the
    # payment check chain, are allowed: every effect below still happens once
    received = re.findall(r"Task withdraw_to_exchange\[(\S+)\] received", log)
    assert any(received.count(task_id) == 2 for task_id in received), log[-3000:]
    assert SimDeposit.objects.count() == 2
    assert get_balance(user_id=order.user_id, asset_id=BTC).locked == Decimal("0.5")
    assert get_balance(user_id=order.user_id, asset_id=USDT).locked == Decimal("1000")
    assert list(OrderTransition.objects.filter(order=order).values_list("to_state", flat=True)) == [
        "payment_pending", "payment_complete", "withdrawing", "withdrawal_confirmed", "campaign_joined", "running"]
    assert audit_ledger().ok
