"""Snapshot intake: every snapshot recorded once; valid ones credited to a leg, others refunded."""
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from ledger.models import LedgerEntry
from ledger.services import get_balance
from orders.memo import encode_market_making_create_memo
from orders.models import MarketMakingOrder, OutgoingTransfer, PaymentState, Refund, RefundStatus, Snapshot
from orders.services import snapshot_intake, snapshot_record

from .conftest import BTC, USDT, snapshot_payload

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_valid_snapshot_credits_the_ledger_and_its_leg(order, django_capture_on_commit_callbacks):
    # given an order awaiting payment
    payload = snapshot_payload(order, asset_id=BTC, amount="0.5")
    # when its base payment arrives
    with django_capture_on_commit_callbacks(execute=False):
        outcome = snapshot_intake(snapshot_id=snapshot_record(provider="local", data=payload)[0].snapshot_id)
    # then it is credited once to the user and to the base leg, and one payment check is queued
    assert outcome == "credited"
    assert get_balance(user_id=order.user_id, asset_id=BTC).available == Decimal("0.5")
    payment = PaymentState.objects.get(order=order)
    assert payment.base_received == Decimal("0.5") and payment.base_fee_received == 0
    assert payment.check_started_at is not None
    assert LedgerEntry.objects.filter(idempotency_key=f"snapshot-credit:{payload['snapshot_id']}").count() == 1


def test_replayed_snapshot_credits_once_and_starts_one_check_chain(order, django_capture_on_commit_callbacks):
    # given the same snapshot delivered three times
    payload = snapshot_payload(order, asset_id=USDT, amount="1000")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        for _ in range(3):
            snapshot_record(provider="local", data=payload)
            snapshot_intake(snapshot_id=payload["snapshot_id"])
    # then: one snapshot row, one credit, one leg increment, one check chain
    assert Snapshot.objects.filter(snapshot_id=payload["snapshot_id"]).count() == 1
    assert get_balance(user_id=order.user_id, asset_id=USDT).available == Decimal("1000")
    assert PaymentState.objects.get(order=order).quote_received == Decimal("1000")
    assert LedgerEntry.objects.filter(ref_id=payload["snapshot_id"]).count() == 1
    # process job queued once (the later deliveries find it processed), check chain once
    assert len(queued) == 2


def test_partial_payments_over_several_snapshots_add_up(order, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        for amount in ("0.2", "0.3", "0.0001"):
            snapshot_intake(snapshot_id=snapshot_record(
                provider="local", data=snapshot_payload(order, asset_id=BTC, amount=amount))[0].snapshot_id)
    payment = PaymentState.objects.get(order=order)
    # the base leg fills first, then the base fee leg paid in the same asset
    assert payment.base_received == Decimal("0.5")
    assert payment.base_fee_received == Decimal("0.0001")
    assert sum(1 for cb in queued if "check_payment_complete" in str(cb.args)) <= 1
    assert PaymentState.objects.filter(order=order, check_started_at__isnull=False).count() == 1


def test_one_snapshot_covering_base_and_its_fee_fills_both_legs(order):
    snapshot_intake(snapshot_id=snapshot_record(
        provider="local", data=snapshot_payload(order, asset_id=BTC, amount="0.5001"))[0].snapshot_id)
    payment = PaymentState.objects.get(order=order)
    assert (payment.base_received, payment.base_fee_received) == (Decimal("0.5"), Decimal("0.0001"))
    assert Snapshot.objects.get(order=order).allocation == {"base": "0.5", "base_fee": "0.0001"}


def test_overpayment_stays_on_the_principal_leg(order):
    snapshot_intake(snapshot_id=snapshot_record(
        provider="local", data=snapshot_payload(order, asset_id=BTC, amount="0.7"))[0].snapshot_id)
    payment = PaymentState.objects.get(order=order)
    assert (payment.base_received, payment.base_fee_received) == (Decimal("0.6999"), Decimal("0.0001"))


def assert_refunded(payload, reason_part):
    snapshot = Snapshot.objects.get(snapshot_id=payload["snapshot_id"])
    assert snapshot.outcome == "refunded", snapshot.reason
    assert reason_part in snapshot.reason
    refund = Refund.objects.get(key=f"snapshot-refund:{payload['snapshot_id']}")
    assert refund.status == RefundStatus.SENT
    assert refund.amount == Decimal(payload["amount"])
    # the payer got the money back: the ledger nets to zero and the provider paid once
    assert get_balance(user_id=payload["opponent_id"], asset_id=payload["asset_id"]).total == 0
    transfer = OutgoingTransfer.objects.get(request_id=refund.request_id)
    assert (transfer.opponent_id, transfer.amount) == (payload["opponent_id"], Decimal(payload["amount"]))
    return snapshot


def _memo(payload: bytes) -> str:
    import hashlib

    from orders.memo import b58encode

    return b58encode(payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4])


_IDS = uuid.uuid4().bytes + uuid.uuid4().bytes


@pytest.mark.parametrize(
    "memo_text, reason",
    [
        ("not base58 0OIl", "bad_base58"),
        ("2NEpo7TZRRrLZSi2U2NEpo7TZRRrLZSi2U2NEpo7TZRRrLZSi2U", "bad_checksum"),
        (_memo(bytes([2, 1, 1]) + _IDS), "wrong_version"),
        (_memo(bytes([1, 2, 1]) + _IDS), "wrong_trading_type"),
        (_memo(bytes([1, 1, 2]) + _IDS), "wrong_action"),
        (_memo(bytes([1, 1, 1]) + _IDS[:-1]), "wrong_length"),
        ("", "empty"),
    ],
)
def test_bad_memo_is_refunded_with_the_reason(db, memo_text, reason):
    payload = snapshot_payload(None, memo_hex=memo_text.encode().hex())
    snapshot_intake(snapshot_id=snapshot_record(provider="local", data=payload)[0].snapshot_id)
    assert_refunded(payload, reason)


def test_memo_that_is_not_hex_is_refunded(db):
    payload = snapshot_payload(None, memo_hex="xyz")
    snapshot_intake(snapshot_id=snapshot_record(provider="local", data=payload)[0].snapshot_id)
    assert_refunded(payload, "bad_hex")


def test_unknown_pair_is_refunded(db):
    memo = encode_market_making_create_memo(uuid.uuid4(), uuid.uuid4()).encode().hex()
    payload = snapshot_payload(None, memo_hex=memo)
    snapshot_intake(snapshot_id=snapshot_record(provider="local", data=payload)[0].snapshot_id)
    assert_refunded(payload, "unknown pair")


def test_unknown_order_on_a_known_pair_is_refunded(pair):
    memo = encode_market_making_create_memo(pair.pair_id, uuid.uuid4()).encode().hex()
    payload = snapshot_payload(None, memo_hex=memo)
    snapshot_intake(snapshot_id=snapshot_record(provider="local", data=payload)[0].snapshot_id)
    assert_refunded(payload, "unknown order")


def test_disabled_pair_is_refunded(order):
    order.pair.enabled = False
    order.pair.save()
    payload = snapshot_payload(order)
    snapshot_intake(snapshot_id=snapshot_record(provider="local", data=payload)[0].snapshot_id)
    assert_refunded(payload, "disabled")
    assert PaymentState.objects.get(order=order).base_received == 0


def test_expired_order_is_refunded(order):
    MarketMakingOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    payload = snapshot_payload(order)
    snapshot_intake(snapshot_id=snapshot_record(provider="local", data=payload)[0].snapshot_id)
    assert_refunded(payload, "expired")


def test_wrong_asset_is_refunded(order):
    payload = snapshot_payload(order, asset_id=str(uuid.uuid4()), amount="3")
    snapshot_intake(snapshot_id=snapshot_record(provider="local", data=payload)[0].snapshot_id)
    assert_refunded(payload, "pays no leg")


def test_payer_other_than_the_order_user_is_refunded_to_the_payer(order):
    stranger = str(uuid.uuid4())
    payload = snapshot_payload(order, opponent_id=stranger)
    snapshot_intake(snapshot_id=snapshot_record(provider="local", data=payload)[0].snapshot_id)
    assert_refunded(payload, "is not the order's user")
    assert get_balance(user_id=order.user_id, asset_id=BTC).total == 0


def test_snapshot_without_a_payer_is_held_with_the_reason(db):
    payload = snapshot_payload(None, memo_hex="00", opponent_id="")
    snapshot_intake(snapshot_id=snapshot_record(provider="local", data=payload)[0].snapshot_id)
    snapshot = Snapshot.objects.get(snapshot_id=payload["snapshot_id"])
    assert snapshot.outcome == "held" and "no payer" in snapshot.reason
    assert not Refund.objects.exists()


def test_refund_the_provider_rejects_is_compensated_once(db):
    # given a bad-memo snapshot from a payer id the provider cannot pay
    payload = snapshot_payload(None, memo_hex="00", opponent_id="not-a-mixin-user")
    # when it is processed (and processed again)
    for _ in range(2):
        snapshot_record(provider="local", data=payload)
        snapshot_intake(snapshot_id=payload["snapshot_id"])
    # then the debit is compensated by one credit and nothing was paid out
    refund = Refund.objects.get(key=f"snapshot-refund:{payload['snapshot_id']}")
    assert refund.status == RefundStatus.COMPENSATED and "not a Mixin user id" in refund.error
    keys = set(LedgerEntry.objects.filter(user_id="not-a-mixin-user").values_list("idempotency_key", flat=True))
    sid = payload["snapshot_id"]
    assert keys == {f"snapshot-credit:{sid}", f"snapshot-refund:{sid}", f"snapshot-refund:{sid}:compensation"}
    assert get_balance(user_id="not-a-mixin-user", asset_id=BTC).available == Decimal("0.5")
    assert not OutgoingTransfer.objects.exists()


@pytest.mark.parametrize(
    "broken, message",
    [
        ({"amount": 0.5}, "decimal string"),
        ({"amount": "-1"}, "negative"),
        ({"amount": "0.123456789"}, "decimal places"),
        ({"snapshot_id": ""}, "snapshot_id"),
        ({"asset_id": None}, "asset_id"),
        ({"created_at": "yesterday"}, "not a timestamp"),
        ({"created_at": "2026-13-45T10:00:00Z"}, "not a timestamp"),
    ],
)
def test_malformed_snapshot_is_refused_and_not_stored(db, broken, message):
    from orders.errors import InvalidSnapshot

    payload = {**snapshot_payload(None, memo_hex="00"), **broken}
    with pytest.raises(InvalidSnapshot, match=message):
        snapshot_record(provider="local", data=payload)
    assert not Snapshot.objects.exists()


def test_redelivery_with_different_content_is_refused_and_the_first_stands(order):
    payload = snapshot_payload(order, asset_id=USDT, amount="5")
    snapshot_record(provider="local", data=payload)
    from orders.errors import InvalidSnapshot

    with pytest.raises(InvalidSnapshot, match="already recorded as 5"):
        snapshot_record(provider="local", data={**payload, "amount": "50"})
    assert Snapshot.objects.get(snapshot_id=payload["snapshot_id"]).amount == Decimal("5")
