"""The Mixin provider against the local Mixin Safe stand-in (signed requests, real HTTP, real signatures)."""
import os
import random
import uuid
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from exchanges.crypto import encrypt_secret
from ledger.models import LedgerEntry
from ledger.services import credit_deposit, get_balance
from orders.errors import ProviderError, TransferRejected, TransferUncertain
from orders.models import ProviderCursor, Refund, RefundStatus, Snapshot
from orders.providers import mixin_safe as safe
from orders.providers.mixin import MixinPaymentProvider, MixinRefused
from orders.providers.mixin_standin import FEE_USER_ID, MixinSafeStandIn
from orders.services import snapshot_intake, snapshot_record
from orders.services.intake import snapshots_poll
from orders.services.refunds import refund_create, refund_execute

from .conftest import BTC, USDT, snapshot_payload

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

CLIENT_ID = str(uuid.uuid4())


def _seed(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()


def mixin_settings(settings, standin, *, session_seed: str, spend_seed: str):
    settings.MM_PAYMENT_PROVIDER = "mixin"
    settings.MIXIN_API_BASE = standin.base_url
    settings.MIXIN_CLIENT_ID = CLIENT_ID
    settings.MIXIN_SESSION_ID = str(uuid.uuid4())
    settings.MIXIN_SESSION_PRIVATE_KEY = session_seed
    settings.MIXIN_SPEND_PRIVATE_KEY = encrypt_secret(spend_seed)
    settings.MIXIN_PIN = ""
    settings.MIXIN_MAX_INPUTS = 255
    settings.MIXIN_POLL_LIMIT = 2
    settings.MIXIN_HTTP_TIMEOUT_S = 5


@pytest.fixture
def mixin(settings):
    session = Ed25519PrivateKey.generate()
    spend_seed = os.urandom(32).hex()
    with MixinSafeStandIn(client_id=CLIENT_ID, session_public_key=session.public_key(),
                          spend_public_key=safe.spend_public_key(spend_seed)) as standin:
        mixin_settings(settings, standin, session_seed=_seed(session), spend_seed=spend_seed)
        standin.spend_seed = spend_seed
        yield standin


def provider():
    return MixinPaymentProvider.from_settings()


def mixin_snapshot(order, created_at, **kwargs):
    snap = snapshot_payload(order, **kwargs)
    snap["created_at"] = created_at
    snap["type"] = "snapshot"
    return snap


def refund_for(mixin, amount="0.5", asset_id=BTC, known=True):
    """A snapshot with a bad memo from a (known) Mixin user, refunded: returns its Refund."""
    payload = snapshot_payload(None, memo_hex="00", asset_id=asset_id, amount=amount)
    if known:
        mixin.add_user(payload["opponent_id"])
    snapshot_record(provider="mixin", data=payload)
    try:
        snapshot_intake(snapshot_id=payload["snapshot_id"])
    except TransferUncertain:
        pass
    return Refund.objects.get(key=f"snapshot-refund:{payload['snapshot_id']}")


def paid(mixin, request_id) -> list[dict]:
    return [t for t in mixin.payments() if t["request_id"] == str(request_id)]


# --- snapshots ----------------------------------------------------------------------------------------
def test_poll_records_new_snapshots_and_resumes_from_the_cursor_after_a_restart(mixin, order,
                                                                                 django_capture_on_commit_callbacks):
    mixin.snapshots += [mixin_snapshot(order, f"2026-11-24T10:00:0{i}.000000001Z", asset_id=USDT, amount="1")
                        for i in range(3)]
    with django_capture_on_commit_callbacks(execute=False) as queued:
        first = snapshots_poll(provider=provider())
    assert (first.received, first.new, first.cursor) == (2, 2, "2026-11-24T10:00:01.000000001Z")
    assert [cb.args[0] for cb in queued] == ["process_market_making_snapshots"] * 2
    # a new provider (a restarted process) continues from the stored cursor
    with django_capture_on_commit_callbacks(execute=False):
        second = snapshots_poll(provider=provider())
    assert (second.received, second.new) == (2, 1)  # the one at the cursor again, and the third
    assert mixin.requests[-1].endswith("offset=2026-11-24T10%3A00%3A01.000000001Z")
    assert ProviderCursor.objects.get(provider="mixin").cursor == "2026-11-24T10:00:02.000000001Z"
    assert Snapshot.objects.filter(provider="mixin").count() == 3


def test_a_payment_to_the_bot_appears_as_a_snapshot_the_poller_reads(mixin, order, django_capture_on_commit_callbacks):
    from orders.memo import encode_market_making_create_memo

    memo = encode_market_making_create_memo(order.pair.pair_id, order.order_id)
    mixin.pay(user_id=order.user_id, asset_id=USDT, amount="7", memo=memo)
    with django_capture_on_commit_callbacks(execute=False):
        assert snapshots_poll(provider=provider()).new == 1
    snapshot = Snapshot.objects.get(provider="mixin")
    assert snapshot_intake(snapshot_id=snapshot.snapshot_id) == "credited"
    assert order.payment.__class__.objects.get(order=order).quote_received == Decimal("7")
    assert mixin.balance(USDT) == Decimal("7")


def test_snapshot_seen_twice_is_processed_once(mixin, order, django_capture_on_commit_callbacks):
    snap = mixin_snapshot(order, "2026-11-24T10:00:00Z", asset_id=USDT, amount="7")
    mixin.snapshots.append(snap)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=False):
            snapshots_poll(provider=provider())
        snapshot_intake(snapshot_id=snap["snapshot_id"])
    assert LedgerEntry.objects.filter(idempotency_key=f"snapshot-credit:{snap['snapshot_id']}").count() == 1
    assert order.payment.__class__.objects.get(order=order).quote_received == Decimal("7")


def test_outgoing_transfers_in_the_feed_are_not_payments(mixin, order, django_capture_on_commit_callbacks):
    mixin.snapshots.append(mixin_snapshot(order, "2026-11-24T10:00:00Z", asset_id=USDT, amount="-5"))
    with django_capture_on_commit_callbacks(execute=False):
        result = snapshots_poll(provider=provider())
    assert (result.received, result.new) == (1, 0)
    assert not Snapshot.objects.exists()


def test_deposit_is_credited_once_it_has_its_confirmations(mixin):
    entry = mixin.deposit_entry("c6d0c728-2624-429b-8e0d-d9d19b6592fa")
    mixin.deposit(asset_id=BTC, amount="0.3", destination=entry["destination"], transaction_hash="ab" * 32,
                  confirmations=3)
    pending = provider()._call("GET", "/safe/deposits", params={"asset": BTC})
    assert [(d["confirmations"], d["threshold"]) for d in pending] == [(0, 3)]
    assert mixin.confirm(2) == 0 and mixin.balance(BTC) == 0
    assert mixin.confirm(1) == 1 and mixin.balance(BTC) == Decimal("0.3")
    assert provider()._call("GET", "/safe/deposits", params={"asset": BTC}) == []
    assert mixin.snapshots[-1]["deposit"]["deposit_hash"] == "ab" * 32


# --- refunds through Safe -----------------------------------------------------------------------------
def test_refund_is_paid_once_through_safe_with_the_change_back_to_the_bot(mixin):
    mixin.fund(BTC, "10")
    refund = refund_for(mixin)
    assert refund.status == RefundStatus.SENT
    [payment] = paid(mixin, refund.request_id)
    assert payment["amount"] == "0.5" and payment["receivers"][0]["members"] == [refund.user_id]
    assert mixin.balance(BTC, refund.user_id) == Decimal("0.5")
    assert mixin.balance(BTC) == Decimal("9.5")  # the change came back as a new output of the bot
    outgoing = [s for s in mixin.snapshots if s.get("request_id") == str(refund.request_id)]
    assert [(s["amount"], s["opponent_id"], bytes.fromhex(s["memo"]).decode()) for s in outgoing] == [
        ("-0.5", refund.user_id, f"refund: {refund.reason}"[:140])]
    # a later call with the same request id reads the transaction and pays nothing more
    receipt = provider().transfer(request_id=str(refund.request_id), asset_id=BTC, amount=Decimal("0.5"),
                                  opponent_id=refund.user_id)
    assert receipt.tx_id == payment["transaction_hash"] and len(mixin.payments()) == 1


@pytest.mark.parametrize("fault, path", [
    ("drop_after_accept", "/safe/transactions"),   # paid, the answer lost (connection closed)
    ("5xx_after_accept", "/safe/transactions"),    # paid, then a 500
    ("5xx", "/safe/transactions"),                 # not paid: a crash after signing, before submitting
    ("5xx", "/safe/transaction/requests"),
    ("drop_after_accept", "/safe/transaction/requests"),
])
def test_a_retry_after_an_uncertain_outcome_pays_once(mixin, fault, path):
    mixin.fund(BTC, "10")
    mixin.fault(fault, path=path)
    refund = refund_for(mixin)
    assert refund.status == RefundStatus.PENDING  # uncertain: neither sent nor compensated
    assert refund_execute(refund_id=refund.pk) == RefundStatus.SENT
    assert refund_execute(refund_id=refund.pk) == RefundStatus.SENT
    assert len(paid(mixin, refund.request_id)) == 1 and len(mixin.payments()) == 1
    assert mixin.balance(BTC, refund.user_id) == Decimal("0.5") and mixin.balance(BTC) == Decimal("9.5")
    assert not LedgerEntry.objects.filter(idempotency_key=f"{refund.key}:compensation").exists()


def test_a_transaction_signed_but_never_submitted_is_resubmitted_unchanged(mixin):
    mixin.fund(BTC, "10")
    mixin.fault("5xx", method="POST", path="/safe/transactions")  # the process dies between signing and submitting
    refund = refund_for(mixin)
    requested = mixin.transactions[str(refund.request_id)]
    assert requested["state"] == "unspent"
    raw = requested["raw_transaction"]
    mixin.fund(BTC, "1")  # the bot's outputs changed meanwhile: the retry must not build anew
    assert refund_execute(refund_id=refund.pk) == RefundStatus.SENT
    [payment] = paid(mixin, refund.request_id)
    assert payment["raw_transaction_unsigned"] == raw


def test_a_request_outrun_by_another_payment_is_built_again_and_paid_once(mixin):
    from orders.providers.mixin_safe import unique_object_id

    mixin.fund(BTC, "10")
    mixin.fault("5xx", method="POST", path="/safe/transactions")
    first = refund_for(mixin)  # requested (the bot's only output), never submitted
    second = refund_for(mixin)  # picks the same output and is paid
    assert second.status == RefundStatus.SENT
    # the first one's transaction spends an output that is gone: its resubmission is refused as a double
    # spend, so it can never be made; the payment is built again under the next derived request id
    assert refund_execute(refund_id=first.pk) == RefundStatus.SENT
    assert mixin.transactions[str(first.request_id)]["state"] == "unspent"
    [payment] = paid(mixin, unique_object_id(str(first.request_id), "REBUILD", "1"))
    assert payment["receivers"][0]["members"] == [first.user_id]
    assert refund_execute(refund_id=first.pk) == RefundStatus.SENT
    assert provider().transfer(request_id=str(first.request_id), asset_id=BTC, amount=Decimal("0.5"),
                               opponent_id=first.user_id).tx_id == payment["transaction_hash"]
    assert mixin.balance(BTC, first.user_id) == Decimal("0.5") and mixin.balance(BTC) == Decimal("9")
    assert len(mixin.payments()) == 2


def test_a_request_id_reused_for_another_payment_pays_nothing_more_and_says_so(mixin):
    mixin.fund(BTC, "10")
    alice, bob = mixin.add_user(str(uuid.uuid4())), mixin.add_user(str(uuid.uuid4()))
    request_id = str(uuid.uuid4())
    provider().transfer(request_id=request_id, asset_id=BTC, amount=Decimal("0.5"), opponent_id=alice)
    for amount, user in ((Decimal("0.7"), alice), (Decimal("0.5"), bob)):
        with pytest.raises(TransferUncertain, match=f"request id {request_id} was already used by Mixin transaction"):
            provider().transfer(request_id=request_id, asset_id=BTC, amount=amount, opponent_id=user)
    assert len(mixin.payments()) == 1 and mixin.balance(BTC, bob) == 0


def test_the_stand_in_refuses_a_second_transaction_spending_the_same_output(mixin):
    mixin.fund(BTC, "1")
    [output] = mixin._list_outputs({"members": [safe.hash_members([CLIENT_ID])]})
    client = provider()
    txs = []
    for n in range(2):
        request_id = str(uuid.uuid4())
        tx = client._transaction(request_id, asset_id=BTC, inputs=[output],
                                 receivers=[{"user": CLIENT_ID, "units": 10**8}], extra=b"%d" % n)
        txs.append((request_id, tx))
    (r1, tx1), (r2, tx2) = txs
    views = client._call("POST", "/safe/transaction/requests", body=[{"request_id": r1, "raw": safe.encode_transaction(tx1)}])[0]["views"]
    views2 = client._call("POST", "/safe/transaction/requests", body=[{"request_id": r2, "raw": safe.encode_transaction(tx2)}])[0]["views"]
    client._call("POST", "/safe/transactions", body=[{"request_id": r1, "raw": safe.sign_transaction(tx1, views, mixin.spend_seed)}])
    with pytest.raises(MixinRefused, match="double spend refused"):
        client._call("POST", "/safe/transactions", body=[{"request_id": r2, "raw": safe.sign_transaction(tx2, views2, mixin.spend_seed)}])
    assert mixin.balance(BTC) == Decimal("1")


def test_a_signature_by_another_spend_key_is_refused(mixin, settings):
    mixin.fund(BTC, "10")
    settings.MIXIN_SPEND_PRIVATE_KEY = encrypt_secret(os.urandom(32).hex())
    refund = refund_for(mixin)
    assert refund.status == RefundStatus.COMPENSATED and "invalid signature of input 0" in refund.error
    assert not mixin.payments() and mixin.balance(BTC) == Decimal("10")


def test_unknown_recipient_is_rejected_and_compensated(mixin):
    mixin.fund(BTC, "10")
    refund = refund_for(mixin, known=False)
    assert refund.status == RefundStatus.COMPENSATED and "User not found" in refund.error
    assert LedgerEntry.objects.filter(idempotency_key=f"{refund.key}:compensation").count() == 1
    assert not mixin.payments()


def test_not_enough_outputs_is_rejected_and_compensated(mixin):
    mixin.fund(BTC, "0.2")
    refund = refund_for(mixin)
    assert refund.status == RefundStatus.COMPENSATED
    assert "not enough outputs: the bot holds 0.2 of" in refund.error and "0.5 needed" in refund.error
    assert LedgerEntry.objects.filter(idempotency_key=f"{refund.key}:compensation").count() == 1


def test_the_stand_in_refuses_an_asset_mismatch(mixin):
    mixin.fund(BTC, "1")
    [output] = mixin._list_outputs({"members": [safe.hash_members([CLIENT_ID])]})
    client = provider()
    tx = client._transaction(str(uuid.uuid4()), asset_id=BTC, inputs=[output],
                             receivers=[{"user": CLIENT_ID, "units": 10**8}], extra=b"")
    tx["asset"] = safe.kernel_asset_id(USDT)
    with pytest.raises(MixinRefused, match="asset mismatch: input .* is asset " + BTC):
        client._call("POST", "/safe/transaction/requests", body=[{"request_id": str(uuid.uuid4()),
                                                                   "raw": safe.encode_transaction(tx)}])


def test_bad_amounts_and_ids_are_rejected_before_any_request(mixin):
    client = provider()
    with pytest.raises(TransferRejected, match="not float"):
        client.transfer(request_id=str(uuid.uuid4()), asset_id=BTC, amount=0.5, opponent_id=str(uuid.uuid4()))
    with pytest.raises(TransferRejected, match="more than 8 decimal places"):
        client.transfer(request_id=str(uuid.uuid4()), asset_id=BTC, amount=Decimal("0.000000001"),
                        opponent_id=str(uuid.uuid4()))
    with pytest.raises(TransferRejected, match="not a Mixin user id"):
        client.transfer(request_id=str(uuid.uuid4()), asset_id=BTC, amount=Decimal("1"), opponent_id="bob")
    assert mixin.requests == []


def test_requests_with_a_wrong_session_key_are_refused(mixin, settings):
    settings.MIXIN_SESSION_PRIVATE_KEY = _seed(Ed25519PrivateKey.generate())
    with pytest.raises(TransferRejected, match="401"):
        provider().transfer(request_id=str(uuid.uuid4()), asset_id=BTC, amount=Decimal("1"),
                            opponent_id=str(uuid.uuid4()))


def test_a_spend_key_stored_in_plain_text_is_refused(mixin, settings):
    settings.MIXIN_SPEND_PRIVATE_KEY = mixin.spend_seed
    with pytest.raises(ProviderError, match="MIXIN_SPEND_PRIVATE_KEY must be stored encrypted"):
        provider()


def test_the_pin_stands_for_the_spend_key_when_only_it_is_set(mixin, settings):
    mixin.fund(BTC, "1")
    settings.MIXIN_PIN = encrypt_secret(mixin.spend_seed + "00" * 32)
    settings.MIXIN_SPEND_PRIVATE_KEY = ""
    user = mixin.add_user(str(uuid.uuid4()))
    provider().transfer(request_id=str(uuid.uuid4()), asset_id=BTC, amount=Decimal("0.25"), opponent_id=user)
    assert mixin.balance(BTC, user) == Decimal("0.25")


def test_many_small_outputs_are_consolidated_first(mixin, settings):
    settings.MIXIN_MAX_INPUTS = 3
    mixin.fund(BTC, "1", outputs=10)  # ten outputs of 0.1
    user = mixin.add_user(str(uuid.uuid4()))
    request_id = str(uuid.uuid4())
    provider().transfer(request_id=request_id, asset_id=BTC, amount=Decimal("0.75"), opponent_id=user)
    [payment] = paid(mixin, request_id)
    assert mixin.balance(BTC, user) == Decimal("0.75") and mixin.balance(BTC) == Decimal("0.25")
    consolidations = [t for t in mixin.payments() if t["request_id"] != request_id]
    assert len(consolidations) >= 2 and all(t["amount"] == "0" for t in consolidations)
    assert len(safe.decode_transaction(payment["raw_transaction"])["inputs"]) <= 3


# --- withdrawals through Safe ---------------------------------------------------------------------------
def test_withdrawal_pays_address_and_tag_with_the_fee_output(mixin):
    mixin.fund(USDT, "100")
    mixin.set_fee(USDT, "1.5")
    request_id = str(uuid.uuid4())
    receipt = provider().withdraw(request_id=request_id, asset_id=USDT, exchange_asset="USDT", amount=Decimal("40"),
                                  address="0xdeposit", tag="memo-7")
    [withdrawal] = mixin.withdrawals
    assert (withdrawal["address"], withdrawal["tag"], withdrawal["amount"]) == ("0xdeposit", "memo-7", "40")
    assert receipt.tx_id == withdrawal["transaction_hash"]
    assert mixin.balance(USDT, FEE_USER_ID) == Decimal("1.5") and mixin.balance(USDT) == Decimal("58.5")
    assert [s["amount"] for s in mixin.snapshots if s.get("request_id") == request_id] == ["-41.5"]
    # again: nothing more leaves
    provider().withdraw(request_id=request_id, asset_id=USDT, exchange_asset="USDT", amount=Decimal("40"),
                        address="0xdeposit", tag="memo-7")
    assert len(mixin.withdrawals) == 1


def test_a_fee_changed_once_while_sending_is_read_again_and_paid(mixin):
    mixin.fund(USDT, "100")
    mixin.set_fee(USDT, "1")
    mixin.change_fee_after_read(USDT, "2")
    provider().withdraw(request_id=str(uuid.uuid4()), asset_id=USDT, exchange_asset="USDT", amount=Decimal("10"),
                        address="0xdeposit")
    assert len(mixin.withdrawals) == 1 and mixin.balance(USDT, FEE_USER_ID) == Decimal("2")


def test_a_fee_that_keeps_changing_is_a_clear_rejection_and_nothing_leaves(mixin):
    mixin.fund(USDT, "100")
    mixin.set_fee(USDT, "1")
    mixin.change_fee_after_read(USDT, "2", "3", "4", "5")
    with pytest.raises(TransferRejected, match="withdrawal fee of .* changed while sending .* nothing was sent"):
        provider().withdraw(request_id=str(uuid.uuid4()), asset_id=USDT, exchange_asset="USDT",
                            amount=Decimal("10"), address="0xdeposit")
    assert not mixin.withdrawals and mixin.balance(USDT) == Decimal("100")


def test_a_fee_charged_in_another_asset_is_rejected(mixin):
    mixin.fund(USDT, "100")
    mixin.set_fee(USDT, "0.001", fee_asset_id=BTC)
    with pytest.raises(TransferRejected, match="only in another asset"):
        provider().withdraw(request_id=str(uuid.uuid4()), asset_id=USDT, exchange_asset="USDT",
                            amount=Decimal("10"), address="0xdeposit")
    assert not mixin.withdrawals


# --- many refunds with faults -----------------------------------------------------------------------------
def test_a_hundred_refunds_with_faults_are_each_paid_once_and_the_books_agree(mixin):
    rng = random.Random(17)
    refunds = []
    for i in range(100):
        user = mixin.add_user(str(uuid.uuid4()))
        deposit = Decimal(rng.randint(1, 10**6)) / 10**8 + Decimal("0.01")
        mixin.pay(user_id=user, asset_id=BTC, amount=deposit)
        credit_deposit(user_id=user, asset_id=BTC, amount=deposit, idempotency_key=f"t-dep:{i}",
                       ref_type="test", ref_id=str(i))
        amount = deposit if i % 3 else (deposit / 2).quantize(Decimal("1e-8"))
        refunds.append(refund_create(key=f"t-refund:{i}", user_id=user, asset_id=BTC, amount=amount,
                                     reason="test"))
    for i in range(30):  # faults on every step, some before and some after Mixin acted
        kind = ("5xx", "5xx_after_accept", "drop_after_accept")[i % 3]
        path = ("/safe/transactions", "/safe/transaction/requests", "/safe/keys", "/safe/outputs")[i % 4]
        mixin.fault(kind, path=path, count=1)
    rng.shuffle(refunds)
    pending = [r.pk for r in refunds]
    for _ in range(5):
        retry = []
        for pk in pending:
            try:
                if refund_execute(refund_id=pk) == RefundStatus.PENDING:
                    retry.append(pk)
            except TransferUncertain:
                retry.append(pk)
        pending = retry
    assert pending == []
    assert set(Refund.objects.values_list("status", flat=True)) == {RefundStatus.SENT}
    # each user has one refund: one payment each in the stand-in's record, of the refund's amount
    by_user = {}
    for payment in mixin.payments():
        receiver = payment["receivers"][0]["members"][0] if payment["receivers"] else CLIENT_ID
        by_user.setdefault(receiver, []).append(payment)
    for refund in refunds:
        [payment] = by_user.pop(refund.user_id)
        assert Decimal(payment["amount"]) == refund.amount
        assert mixin.balance(BTC, refund.user_id) == refund.amount
    assert set(by_user) <= {CLIENT_ID}  # consolidations (the bot to itself), if any
    # the bot holds what the ledger owes its users, to the unit
    owed = sum((get_balance(user_id=r.user_id, asset_id=BTC).total for r in refunds), Decimal(0))
    assert mixin.balance(BTC) == owed
    from ledger.selectors import audit_ledger

    assert audit_ledger().ok


# --- the poll command ---------------------------------------------------------------------------------------
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


# --- the withdrawal stage through Safe, to the exchange simulator ---------------------------------------
@pytest.mark.slow
def test_transfer_mode_withdraws_through_safe_to_the_exchange_and_confirms(sim_pair, make_order, settings):
    from exchanges.models import SimDeposit
    from exchanges.simulator.services import simulator_receive_transfer
    from orders.models import ExchangeTransfer
    from orders.services import payment_check, withdrawal_monitor, withdrawal_start

    from .conftest import pay_in_full

    settings.MM_WITHDRAW_MODE = "transfer"
    order = make_order(sim_pair)
    pay_in_full(order)
    assert payment_check(order_id=order.order_id) == "complete"

    def to_simulator(withdrawal):  # the chain: the exchange sees the deposit under the Safe transaction's hash
        from django.db import connection

        try:
            simulator_receive_transfer(address=withdrawal["address"], amount=Decimal(withdrawal["amount"]),
                                       asset={BTC: "BTC", USDT: "USDT"}[withdrawal["asset_id"]],
                                       tx_id=withdrawal["transaction_hash"])
        finally:
            connection.close()  # the stand-in's server thread

    session = Ed25519PrivateKey.generate()
    spend = os.urandom(32).hex()
    with MixinSafeStandIn(client_id=CLIENT_ID, session_public_key=session.public_key(),
                          spend_public_key=safe.spend_public_key(spend), on_withdrawal=to_simulator) as mixin:
        mixin_settings(settings, mixin, session_seed=_seed(session), spend_seed=spend)
        mixin.fund(BTC, "0.5001")   # what the order paid (its BTC fee leg covers Mixin's fee)
        mixin.fund(USDT, "1001")    # its USDT, and the bot's own for Mixin's USDT fee
        mixin.set_fee(BTC, "0.00005")
        mixin.set_fee(USDT, "1")
        mixin.fault("drop_after_accept", method="POST", path="/safe/transactions")  # the first answer is lost
        with pytest.raises(TransferUncertain):
            withdrawal_start(order_id=order.order_id)
        assert withdrawal_start(order_id=order.order_id) == "sent"  # the retry reads it and sends the other
        assert withdrawal_monitor(order_id=order.order_id) == "confirmed"
    transfers = {t.exchange_asset: t for t in ExchangeTransfer.objects.filter(order=order)}
    assert {t.status for t in transfers.values()} == {"confirmed"}
    assert sorted((w["asset_id"], w["amount"]) for w in mixin.withdrawals) == [(USDT, "1000"), (BTC, "0.5")]
    assert sorted(SimDeposit.objects.values_list("tx_id", flat=True)) == sorted(t.tx_id for t in transfers.values())
    # what left the bot: the amount and Mixin's fee, the rest is the bot's change
    assert mixin.balance(BTC) == Decimal("0.00005") and mixin.balance(USDT) == 0
    assert mixin.balance(BTC, FEE_USER_ID) == Decimal("0.00005") and mixin.balance(USDT, FEE_USER_ID) == 1


@pytest.mark.slow
def test_a_process_killed_between_signing_and_submitting_is_resumed_and_pays_once(transactional_db, child_env,
                                                                                  settings):
    import signal
    import subprocess
    import sys
    import time

    session = Ed25519PrivateKey.generate()
    spend = os.urandom(32).hex()
    with MixinSafeStandIn(client_id=CLIENT_ID, session_public_key=session.public_key(),
                          spend_public_key=safe.spend_public_key(spend)) as mixin:
        mixin_settings(settings, mixin, session_seed=_seed(session), spend_seed=spend)
        mixin.fund(BTC, "1")
        user = mixin.add_user(str(uuid.uuid4()))
        credit_deposit(user_id=user, asset_id=BTC, amount=Decimal("0.4"), idempotency_key="t-kill-dep",
                       ref_type="test", ref_id="kill")
        refund = refund_create(key="t-kill-refund", user_id=user, asset_id=BTC, amount=Decimal("0.4"), reason="test")
        # the request is accepted and its views are on their way back when the process is SIGKILLed: it
        # never submits (signing is local, so Mixin's state is the same as for a kill after signing)
        mixin.fault("slow_after_accept", method="POST", path="/safe/transaction/requests", delay_s=30)
        env = dict(child_env, MM_PAYMENT_PROVIDER="mixin", MIXIN_API_BASE=mixin.base_url, MIXIN_CLIENT_ID=CLIENT_ID,
                   MIXIN_SESSION_ID=settings.MIXIN_SESSION_ID, MIXIN_SESSION_PRIVATE_KEY=_seed(session),
                   MIXIN_SPEND_PRIVATE_KEY=settings.MIXIN_SPEND_PRIVATE_KEY, MM_VAR_DIR=str(settings.VAR_DIR))
        child = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c",
             f"from orders.services.refunds import refund_execute; refund_execute(refund_id={refund.pk})"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while str(refund.request_id) not in mixin.transactions and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert mixin.transactions[str(refund.request_id)]["state"] == "unspent" and not mixin.payments()
        # the refund is still pending (nothing known); the resumed job submits the same transaction once
        assert Refund.objects.get(pk=refund.pk).status == RefundStatus.PENDING
        assert refund_execute(refund_id=refund.pk) == RefundStatus.SENT
        assert refund_execute(refund_id=refund.pk) == RefundStatus.SENT
        [payment] = mixin.payments()
        assert payment["request_id"] == str(refund.request_id)
        assert mixin.balance(BTC, user) == Decimal("0.4") and mixin.balance(BTC) == Decimal("0.6")


def test_an_exchange_withdrawal_to_the_bots_deposit_address_is_seen_once_confirmed(mixin):
    # the payout after stop: the exchange sends to the bot's Mixin deposit address (address + tag)
    mixin.chains[USDT] = "43d61dcd-e413-450d-80b8-101d5e903357"
    target = provider().deposit_target(asset_id=USDT, exchange_asset="USDT")
    assert target.address == mixin.deposit_entry("43d61dcd-e413-450d-80b8-101d5e903357")["destination"]
    mixin.deposit(asset_id=USDT, amount="250.5", destination=target.address, tag=target.tag,
                  transaction_hash="0xexchange-tx", confirmations=2)
    assert provider().deposit_received(asset_id=USDT, tx_id="0xexchange-tx") is None
    mixin.confirm(1)
    assert provider().deposit_received(asset_id=USDT, tx_id="0xexchange-tx") is None
    mixin.confirm(1)
    assert provider().deposit_received(asset_id=USDT, tx_id="0xexchange-tx") == Decimal("250.5")
    assert provider().deposit_received(asset_id=USDT, tx_id="0xother") is None
    assert mixin.balance(USDT) == Decimal("250.5")


@pytest.mark.slow
def test_a_payout_after_stop_goes_through_the_bots_safe_deposit_address_and_pays_once(sim_pair, settings,
                                                                                        monkeypatch):
    """The payout after stop with the Mixin provider: the exchange withdraws to the bot's Safe deposit
    address, the deposit is seen once confirmed, the user is paid once through Safe (an answer lost)."""
    from exchanges.models import SimWithdrawal
    from ledger.selectors import audit_ledger
    from mmproject.celery import app
    from orders.models import OrderState
    from orders.services.payout import payout_advance, payout_request
    from tests.orders.test_payout import HELD, stopped_order

    app.loader.import_default_modules()
    monkeypatch.setattr("mmproject.jobs._send_logged", lambda name, args, countdown: None)
    settings.MM_WITHDRAW_MODE = "transfer"
    settings.MM_PAYOUT_AFTER_STOP = "auto"
    settings.SIM_WITHDRAW_FEES = "BTC=0.0005,USDT=1"
    session = Ed25519PrivateKey.generate()
    spend = os.urandom(32).hex()
    with MixinSafeStandIn(client_id=CLIENT_ID, session_public_key=session.public_key(),
                          spend_public_key=safe.spend_public_key(spend)) as mixin:
        mixin_settings(settings, mixin, session_seed=_seed(session), spend_seed=spend)
        order = stopped_order(sim_pair)
        mixin.add_user(order.user_id)
        payout_request(order_id=order.order_id, by="test")
        assert payout_advance(order_id=order.order_id) == "pending"  # withdrawn from the exchange, on the chain
        withdrawals = list(SimWithdrawal.objects.all())
        assert {w.address for w in withdrawals} == {mixin.deposit_entry(BTC)["destination"],
                                                    mixin.deposit_entry(USDT)["destination"]}
        assert payout_advance(order_id=order.order_id) == "pending"  # nothing arrived yet
        for w in withdrawals:  # the chain delivers to the bot's address
            mixin.deposit(asset_id={"BTC": BTC, "USDT": USDT}[w.asset], amount=w.amount - w.fee, destination=w.address,
                          tag=w.tag, transaction_hash=w.tx_id, confirmations=2)
        mixin.confirm(1)
        assert payout_advance(order_id=order.order_id) == "pending"  # one confirmation of two
        mixin.confirm(1)
        mixin.fault("drop_after_accept", method="POST", path="/safe/transactions")
        with pytest.raises(TransferUncertain):
            payout_advance(order_id=order.order_id)
        assert payout_advance(order_id=order.order_id) == "complete"
        assert payout_advance(order_id=order.order_id) == "noop"
    order.refresh_from_db()
    assert order.state == OrderState.PAID_OUT
    paid_to_user = sorted((p["asset_id"], p["amount"]) for p in mixin.payments())
    assert paid_to_user == [(USDT, "1011.5"), (BTC, "0.4995")]
    assert mixin.balance(BTC, order.user_id) == HELD[BTC] - Decimal("0.0005")
    assert mixin.balance(USDT, order.user_id) == HELD[USDT] - 1
    assert mixin.balance(BTC) == 0 and mixin.balance(USDT) == 0  # the bot kept nothing: the ledger owes nothing
    assert all(get_balance(user_id=order.user_id, asset_id=a).total == 0 for a in HELD)
    assert audit_ledger().ok


@pytest.mark.slow
def test_the_stand_in_runs_as_a_process_and_takes_its_helpers_over_http(settings):
    import json
    import socket
    import subprocess
    import sys
    import urllib.request

    session = Ed25519PrivateKey.generate()
    spend = os.urandom(32).hex()
    public = session.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "orders.providers.mixin_standin", "--port", str(port),
                             "--client-id", CLIENT_ID, "--session-public-key", public,
                             "--spend-public-key", safe.spend_public_key(spend), "--fund", f"{BTC}=2"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith(f"mixin_standin: listening on http://127.0.0.1:{port}")
        base = f"http://127.0.0.1:{port}"

        def admin(path, body=None):
            data = json.dumps(body).encode() if body is not None else None
            with urllib.request.urlopen(urllib.request.Request(base + path, data=data)) as response:
                return json.loads(response.read())["data"]

        user = admin("/_standin/users", {"user_id": str(uuid.uuid4())})["user_id"]
        admin("/_standin/faults", {"kind": "drop_after_accept", "path": "/safe/transactions", "method": "POST"})
        settings.MIXIN_API_BASE = base
        settings.MIXIN_CLIENT_ID = CLIENT_ID
        settings.MIXIN_SESSION_ID = str(uuid.uuid4())
        settings.MIXIN_SESSION_PRIVATE_KEY = _seed(session)
        settings.MIXIN_SPEND_PRIVATE_KEY = encrypt_secret(spend)
        settings.MIXIN_HTTP_TIMEOUT_S = 5
        request_id = str(uuid.uuid4())
        with pytest.raises(TransferUncertain):
            provider().transfer(request_id=request_id, asset_id=BTC, amount=Decimal("0.5"), opponent_id=user)
        provider().transfer(request_id=request_id, asset_id=BTC, amount=Decimal("0.5"), opponent_id=user)
        state = admin("/_standin/state")
        assert state["balances"] == {BTC: "1.5"}
        assert [p["request_id"] for p in state["payments"]] == [request_id]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
