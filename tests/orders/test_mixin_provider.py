"""The Mixin provider against a local HTTP stand-in of the Mixin API (signed requests, real HTTP)."""
import uuid
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ledger.models import LedgerEntry
from orders.errors import TransferRejected, TransferUncertain
from orders.models import ProviderCursor, Refund, RefundStatus, Snapshot
from orders.services.intake import snapshots_poll
from orders.providers.mixin import MixinPaymentProvider
from orders.services import snapshot_intake

from .conftest import BTC, USDT, snapshot_payload
from .mixin_standin import MixinStandIn

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

CLIENT_ID = str(uuid.uuid4())


@pytest.fixture
def mixin(settings):
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
    with MixinStandIn(public_key=key.public_key(), client_id=CLIENT_ID) as standin:
        settings.MM_PAYMENT_PROVIDER = "mixin"
        settings.MIXIN_API_BASE = standin.base_url
        settings.MIXIN_CLIENT_ID = CLIENT_ID
        settings.MIXIN_SESSION_ID = str(uuid.uuid4())
        settings.MIXIN_SESSION_PRIVATE_KEY = seed
        settings.MIXIN_POLL_LIMIT = 2
        settings.MIXIN_HTTP_TIMEOUT_S = 5
        yield standin


def mixin_snapshot(order, created_at, **kwargs):
    snap = snapshot_payload(order, **kwargs)
    snap["created_at"] = created_at
    snap["type"] = "snapshot"
    return snap


def test_poll_records_new_snapshots_and_resumes_from_the_cursor_after_a_restart(mixin, order,
                                                                                 django_capture_on_commit_callbacks):
    mixin.snapshots += [mixin_snapshot(order, f"2026-11-24T10:00:0{i}.000000001Z", asset_id=USDT, amount="1")
                        for i in range(3)]
    with django_capture_on_commit_callbacks(execute=False) as queued:
        first = snapshots_poll(provider=MixinPaymentProvider.from_settings())
    assert (first.received, first.new, first.cursor) == (2, 2, "2026-11-24T10:00:01.000000001Z")
    assert [cb.args[0] for cb in queued] == ["process_market_making_snapshots"] * 2
    # a new provider (a restarted process) continues from the stored cursor
    with django_capture_on_commit_callbacks(execute=False):
        second = snapshots_poll(provider=MixinPaymentProvider.from_settings())
    assert (second.received, second.new) == (2, 1)  # the one at the cursor again, and the third
    assert mixin.requests[-1].endswith("offset=2026-11-24T10%3A00%3A01.000000001Z")
    assert ProviderCursor.objects.get(provider="mixin").cursor == "2026-11-24T10:00:02.000000001Z"
    assert Snapshot.objects.filter(provider="mixin").count() == 3


def test_snapshot_seen_twice_is_processed_once(mixin, order, django_capture_on_commit_callbacks):
    snap = mixin_snapshot(order, "2026-11-24T10:00:00Z", asset_id=USDT, amount="7")
    mixin.snapshots.append(snap)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=False):
            snapshots_poll(provider=MixinPaymentProvider.from_settings())
        snapshot_intake(snapshot_id=snap["snapshot_id"])
    assert LedgerEntry.objects.filter(idempotency_key=f"snapshot-credit:{snap['snapshot_id']}").count() == 1
    assert order.payment.__class__.objects.get(order=order).quote_received == Decimal("7")


def test_outgoing_transfers_in_the_feed_are_not_payments(mixin, order, django_capture_on_commit_callbacks):
    mixin.snapshots.append(mixin_snapshot(order, "2026-11-24T10:00:00Z", asset_id=USDT, amount="-5"))
    with django_capture_on_commit_callbacks(execute=False):
        result = snapshots_poll(provider=MixinPaymentProvider.from_settings())
    assert (result.received, result.new) == (1, 0)
    assert not Snapshot.objects.exists()


def test_refund_through_mixin_uses_the_refund_request_id_as_trace_id_and_pays_once(mixin, db):
    mixin.balances[BTC] = Decimal("10")
    payload = snapshot_payload(None, memo_hex="00")
    from orders.services import snapshot_record

    snapshot_record(provider="mixin", data=payload)
    # the first attempt's answer is lost (HTTP 500): the refund stays pending, nothing is compensated
    mixin.fail_next = 1
    with pytest.raises(TransferUncertain):
        snapshot_intake(snapshot_id=payload["snapshot_id"])
    refund = Refund.objects.get(key=f"snapshot-refund:{payload['snapshot_id']}")
    assert refund.status == RefundStatus.PENDING
    # the retry (and one more) reuse the trace id: one transfer at Mixin
    snapshot_intake(snapshot_id=payload["snapshot_id"])
    snapshot_intake(snapshot_id=payload["snapshot_id"])
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SENT
    assert list(mixin.transfers) == [str(refund.request_id)]
    assert mixin.balances[BTC] == Decimal("9.5")


def test_refund_mixin_refuses_is_compensated(mixin, db):
    payload = snapshot_payload(None, memo_hex="00")
    from orders.services import snapshot_record

    snapshot_record(provider="mixin", data=payload)
    snapshot_intake(snapshot_id=payload["snapshot_id"])  # the bot holds no BTC: 20117
    refund = Refund.objects.get(key=f"snapshot-refund:{payload['snapshot_id']}")
    assert refund.status == RefundStatus.COMPENSATED and "20117" in refund.error
    assert LedgerEntry.objects.filter(idempotency_key=f"{refund.key}:compensation").count() == 1


def test_requests_with_a_wrong_key_are_refused(mixin, settings):
    settings.MIXIN_SESSION_PRIVATE_KEY = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
    with pytest.raises(TransferRejected, match="401"):
        MixinPaymentProvider.from_settings().transfer(request_id=str(uuid.uuid4()), asset_id=BTC,
                                                      amount=Decimal("1"), opponent_id=str(uuid.uuid4()))


def test_poll_snapshots_command_polls_once_and_reports(mixin, order, capsys, django_capture_on_commit_callbacks):
    from django.core.management import call_command

    mixin.snapshots.append(mixin_snapshot(order, "2026-11-24T10:00:00Z", asset_id=USDT, amount="3"))
    with django_capture_on_commit_callbacks(execute=False):
        call_command("poll_snapshots")
    assert "1 received, 1 new, 0 malformed; cursor 2026-11-24T10:00:00Z" in capsys.readouterr().out


def test_poll_snapshots_command_fails_clearly_when_mixin_is_down(mixin):
    from django.core.management import CommandError, call_command

    mixin.fail_next = 1
    with pytest.raises(CommandError, match="HTTP 500"):
        call_command("poll_snapshots")
    assert not ProviderCursor.objects.exists()
