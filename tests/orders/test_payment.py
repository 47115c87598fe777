"""Payment completion: all legs covered, still pending, or failed at the deadline with a refund."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from ledger.models import LedgerEntry
from ledger.services import get_balance
from orders.models import MarketMakingOrder, OrderTransition, OutgoingTransfer, Refund, RefundStatus
from orders.services import payment_check, payment_fail, refund_execute, snapshot_intake, snapshot_record

from .conftest import BTC, ETH, USDT, snapshot_payload

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def pay(order, asset_id, amount):
    snapshot, _ = snapshot_record(provider="local", data=snapshot_payload(order, asset_id=asset_id, amount=amount))
    assert snapshot_intake(snapshot_id=snapshot.snapshot_id) == "credited"


def expire(order):
    MarketMakingOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def state(order):
    return MarketMakingOrder.objects.get(pk=order.pk).state


def test_all_legs_covered_completes_the_payment(order, settings, django_capture_on_commit_callbacks):
    settings.MM_WITHDRAW_MODE = "disabled"
    pay(order, BTC, "0.5001")
    pay(order, USDT, "1000")
    pay(order, ETH, "0.002")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert payment_check(order_id=order.order_id) == "complete"
    # disabled mode: the order stops at payment_complete, nothing else is queued
    assert state(order) == "payment_complete"
    assert queued == []
    last = OrderTransition.objects.filter(order=order).last()
    assert (last.from_state, last.to_state, last.by) == ("payment_pending", "payment_complete",
                                                         "task:check_payment_complete")


def test_complete_payment_queues_the_withdrawal_when_enabled(order, settings, django_capture_on_commit_callbacks):
    settings.MM_WITHDRAW_MODE = "transfer"
    pay(order, BTC, "0.5001")
    pay(order, USDT, "1000")
    pay(order, ETH, "0.002")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        payment_check(order_id=order.order_id)
    assert [cb.args[0] for cb in queued] == ["withdraw_to_exchange"]


def test_incomplete_payment_before_the_deadline_stays_pending(order):
    pay(order, BTC, "0.5001")
    assert payment_check(order_id=order.order_id) == "pending"
    assert state(order) == "payment_pending"
    assert not Refund.objects.exists()


def test_timeout_fails_the_order_and_refunds_each_asset_once(order):
    # given a partial payment: base with its fee, half the quote
    pay(order, BTC, "0.3")
    pay(order, BTC, "0.2001")
    pay(order, USDT, "500")
    expire(order)
    # when the check runs at the deadline, and again (a redelivered job)
    assert payment_check(order_id=order.order_id) == "failed"
    assert payment_check(order_id=order.order_id) == "noop"
    # then the order failed, and each asset was refunded once, in full
    order.refresh_from_db()
    assert order.state == "failed" and "deadline" in order.reason
    refunds = {r.asset_id: r for r in Refund.objects.filter(order=order)}
    assert set(refunds) == {BTC, USDT}
    assert refunds[BTC].key == f"mm-refund:{order.order_id}:{BTC}"
    assert (refunds[BTC].amount, refunds[USDT].amount) == (Decimal("0.5001"), Decimal("500"))
    assert all(r.status == RefundStatus.SENT for r in refunds.values())
    assert OutgoingTransfer.objects.count() == 2
    assert get_balance(user_id=order.user_id, asset_id=BTC).total == 0
    assert get_balance(user_id=order.user_id, asset_id=USDT).total == 0


def test_insufficient_fee_is_refunded_at_the_deadline(order):
    # given base and quote paid in full but the ETH fee short
    pay(order, BTC, "0.5001")
    pay(order, USDT, "1000")
    pay(order, ETH, "0.001")
    assert payment_check(order_id=order.order_id) == "pending"
    expire(order)
    assert payment_check(order_id=order.order_id) == "failed"
    assert Refund.objects.get(order=order, asset_id=ETH).amount == Decimal("0.001")
    assert get_balance(user_id=order.user_id, asset_id=ETH).total == 0


def test_exhausted_checks_fail_and_refund(order):
    pay(order, USDT, "10")
    assert payment_fail(order_id=order.order_id, reason="checks exhausted", by="test") == "failed"
    assert state(order) == "failed"
    assert Refund.objects.get(order=order).amount == Decimal("10")


def test_order_failed_without_payment_refunds_nothing(order):
    expire(order)
    assert payment_check(order_id=order.order_id) == "failed"
    assert not Refund.objects.exists()


def test_retried_refund_pays_once(order):
    pay(order, USDT, "10")
    payment_fail(order_id=order.order_id, reason="test", by="test")
    refund = Refund.objects.get(order=order)
    # a worker that crashed after paying but before saving "sent" runs the refund again
    Refund.objects.filter(pk=refund.pk).update(status=RefundStatus.PENDING)
    assert refund_execute(refund_id=refund.pk) == "sent"
    assert OutgoingTransfer.objects.filter(request_id=refund.request_id).count() == 1
    assert LedgerEntry.objects.filter(idempotency_key=refund.key).count() == 1
