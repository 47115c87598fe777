"""The same snapshot delivered at the same moment by separate OS processes is processed once."""
import json
import subprocess
import sys
from decimal import Decimal

import pytest

from ledger.models import LedgerEntry
from ledger.services import get_balance
from orders.models import PaymentState, Snapshot

from .conftest import USDT, snapshot_payload

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROCS = 3


def test_snapshot_delivered_by_three_processes_at_once_credits_once(order, child_env):
    # given one payment snapshot
    payload = snapshot_payload(order, asset_id=USDT, amount="250")
    # when three processes record and process it at the same moment
    run = subprocess.run([sys.executable, "-m", "tests.orders.intake_worker", str(PROCS), json.dumps(payload)],
                         env=child_env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-4000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])["results"]
    assert not [r["error"] for r in results if "error" in r]
    # then: one row, one credit, one leg increment, one payment check chain
    assert sum(r["created"] for r in results) == 1
    assert {r["outcome"] for r in results} == {"credited"}
    assert Snapshot.objects.filter(snapshot_id=payload["snapshot_id"]).count() == 1
    assert LedgerEntry.objects.filter(idempotency_key=f"snapshot-credit:{payload['snapshot_id']}").count() == 1
    assert get_balance(user_id=order.user_id, asset_id=USDT).available == Decimal("250")
    assert PaymentState.objects.get(order=order).quote_received == Decimal("250")
    jobs = [job for r in results for job in r["jobs"]]
    assert jobs.count("check_payment_complete") == 1


def test_one_refund_executed_by_two_workers_at_once_pays_once(order):
    import threading

    from django.db import connection

    from orders.models import OutgoingTransfer, Refund
    from orders.services import payment_fail, refund_execute, snapshot_intake, snapshot_record

    # given a failed order whose refund is debited but not sent (its sender crashed before the provider call)
    payload = snapshot_payload(order, asset_id=USDT, amount="3")
    snapshot_record(provider="local", data=payload)
    snapshot_intake(snapshot_id=payload["snapshot_id"])
    payment_fail(order_id=order.order_id, reason="test", by="test")
    refund = Refund.objects.get(order=order)
    Refund.objects.filter(pk=refund.pk).update(status="pending")
    OutgoingTransfer.objects.filter(request_id=refund.request_id).delete()
    # when two workers send it at the same moment
    barrier = threading.Barrier(2)
    outcomes = []

    def send():
        barrier.wait()
        try:
            outcomes.append(refund_execute(refund_id=refund.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then the provider holds one transfer and the ledger one debit
    assert outcomes == ["sent", "sent"]
    assert OutgoingTransfer.objects.filter(request_id=refund.request_id).count() == 1
    assert LedgerEntry.objects.filter(idempotency_key=refund.key).count() == 1
