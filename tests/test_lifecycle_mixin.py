"""The whole lifecycle with MM_PAYMENT_PROVIDER=mixin, on the Mixin Safe stand-in and the exchange simulator,
both over loopback HTTP (ccxt's own ``binance`` class for the exchange; signed session tokens and Safe
transactions for Mixin): the user pays the bot by transfers (snapshots), the beat's poller reads them, the
funds go to the exchange's deposit address (with its memo/tag) as Safe withdrawals, the order runs and fills,
stops, and is paid out through the bot's Safe deposit address back to the user; an overpayment and a payment
with a bad memo are refunded. Then every payment was made once (the stand-in's record), the stand-in's balances
and the ledger agree to the unit, and ledger_audit and reconciliation are clean.

The lifecycle jobs run in this process through their Celery task bodies (``Task.apply``), in the order they
are enqueued, one chain block (a confirmation of the stand-in's pending deposits) before each; the stand-in
credits the simulator's deposit addresses on withdrawal, and the simulator announces its withdrawals to the
stand-in (SIM_WITHDRAW_FORWARD_URL), as ``make run`` wires them.
"""
import os
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.core.management import call_command
from django.db import connection

from exchanges.clients import exchange_clients_clear
from exchanges.crypto import encrypt_secret
from exchanges.models import SimAccount, SimDeposit
from exchanges.services import exchange_account_create
from exchanges.simulator.services import (
    simulator_account_ensure,
    simulator_deposit_address,
    simulator_market_ensure,
    simulator_receive_transfer,
)
from ledger.models import Balance, LedgerEntry
from ledger.selectors import audit_ledger
from ledger.services import get_balance
from mmproject.celery import app
from orders.memo import encode_market_making_create_memo
from orders.models import OrderTransition, Refund, RefundStatus, Snapshot
from orders.providers import mixin_safe as safe
from orders.providers.mixin import MixinPaymentProvider
from orders.providers.mixin_standin import FEE_USER_ID, MixinSafeStandIn
from orders.services import order_create
from orders.services.intake import snapshots_poll
from orders.services.pairs import pair_create
from orders.services.withdrawal import withdrawal_request_id
from reconciliation.services import reconcile_run
from strategy.tick import tick_run
from tests.orders.conftest import BTC, USDT
from tests.runtime_fixtures import trade_through_both_sides

KEY, SECRET = "life-mixin-key", "life-mixin-secret"
CLIENT_ID = str(uuid.uuid4())
USDT_MEMO = "exchange-memo-7731"       # the exchange's deposit memo/tag of USDT, carried by the Safe withdrawal
MIXIN_FEES = {BTC: Decimal("0.0001"), USDT: Decimal("1")}   # Mixin's withdrawal fees (paid by the fee legs)
EXCHANGE_FEES = "BTC=0.0005,USDT=1"                         # the exchange's withdrawal fees (the payout's)
BOT_FLOAT = {BTC: Decimal("0.2"), USDT: Decimal("300")}     # the operator's own funds at the bot


def _seed(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()


def _to_simulator(withdrawal: dict) -> None:
    """The chain, Mixin -> exchange: a Safe withdrawal to a simulator deposit address arrives there under the
    Safe transaction's hash (in the stand-in's request thread, whose database connection is closed after)."""
    try:
        simulator_receive_transfer(address=withdrawal["address"], amount=Decimal(withdrawal["amount"]),
                                   asset={BTC: "BTC", USDT: "USDT"}[withdrawal["asset_id"]],
                                   tx_id=withdrawal["transaction_hash"])
    finally:
        connection.close()


@pytest.fixture
def mixin(settings):
    session = Ed25519PrivateKey.generate()
    spend = os.urandom(32).hex()
    with MixinSafeStandIn(client_id=CLIENT_ID, session_public_key=session.public_key(),
                          spend_public_key=safe.spend_public_key(spend), on_withdrawal=_to_simulator,
                          asset_codes={"BTC": BTC, "USDT": USDT}) as standin:
        settings.MM_PAYMENT_PROVIDER = "mixin"
        settings.MIXIN_API_BASE = standin.base_url
        settings.MIXIN_CLIENT_ID = CLIENT_ID
        settings.MIXIN_SESSION_ID = str(uuid.uuid4())
        settings.MIXIN_SESSION_PRIVATE_KEY = _seed(session)
        settings.MIXIN_SPEND_PRIVATE_KEY = encrypt_secret(spend)
        settings.MIXIN_PIN = ""
        settings.MIXIN_MAX_INPUTS = 255
        settings.MIXIN_POLL_LIMIT = 100
        settings.MIXIN_HTTP_TIMEOUT_S = 5
        # the exchange announces its withdrawals to addresses it does not own (the bot's) to the stand-in
        settings.SIM_WITHDRAW_FORWARD_URL = f"{standin.base_url}/_standin/deposit"
        settings.SIM_WITHDRAW_FEES = EXCHANGE_FEES
        for asset_id, fee in MIXIN_FEES.items():
            standin.set_fee(asset_id, fee)
        yield standin


@pytest.fixture
def jobs(jobs, mixin):
    """The lifecycle jobs (tests/conftest.py), with one block of the chain (a confirmation of the stand-in's
    pending deposits) before each."""
    return lambda limit=40: jobs(limit=limit, before_each=lambda: mixin.confirm(1))


def poll():
    """The beat's poller, as beat runs it (the task, under its lease)."""
    result = app.tasks["poll_mixin_snapshots"].apply()
    assert result.successful(), result.traceback


@pytest.fixture
def lifecycle_settings(settings):
    settings.MM_WITHDRAW_MODE = "transfer"
    settings.MM_PAYOUT_AFTER_STOP = "auto"
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "sync"
    settings.STRATEGY_TICK_SIZE_MS = 10
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8
    return settings


@pytest.mark.slow
@pytest.mark.embedded
def test_mixin_order_paid_by_snapshots_runs_stops_is_paid_out_and_refunds_each_paid_once(
        transactional_db, sim_server, lifecycle_settings, mixin, jobs, caplog):
    # Given an exchange account on the simulator that holds nothing yet, whose USDT deposit address has a
    # memo, and a BTC/USDT pair whose fee legs pay Mixin's withdrawal fees
    simulator_market_ensure(symbol="BTC/USDT", start_price=Decimal("30000"), seed=11, reset=True)
    simulator_account_ensure(label="life-mixin", api_key=KEY, api_secret=SECRET,
                             balances={"USDT": Decimal("0"), "BTC": Decimal("0")})
    sim_account = SimAccount.objects.get(label="life-mixin")
    usdt_address = simulator_deposit_address(account_id=sim_account.pk, asset="USDT")
    usdt_address.tag = USDT_MEMO
    usdt_address.save(update_fields=["tag"])
    exchange_clients_clear()
    account = exchange_account_create(label="life-mixin", exchange_id="binance", api_key=KEY, api_secret=SECRET,
                                      base_url=sim_server.base_url)
    pair = pair_create(symbol="BTC/USDT", base_asset_id=BTC, quote_asset_id=USDT, exchange_account_id=account.pk,
                       base_fee_asset_id=BTC, base_fee_amount=str(MIXIN_FEES[BTC]), quote_fee_asset_id=USDT,
                       quote_fee_amount=str(MIXIN_FEES[USDT]))
    user = str(uuid.uuid4())
    order = order_create(user_id=user, pair_id=pair.pair_id, base_amount="0.5", quote_amount="1000",
                         bid_spread="0.001", ask_spread="0.001", order_amount="0.013", order_refresh_time=10,
                         number_of_layers=2, filled_order_delay="0", by="test")
    memo = encode_market_making_create_memo(order.pair.pair_id, order.order_id)

    # and the operator's float at the bot, deposited from a chain (in the feed as deposits, not payments)
    for asset_id, amount in BOT_FLOAT.items():
        mixin.deposit(asset_id=asset_id, amount=amount, destination=mixin.deposit_entry(asset_id)["destination"],
                      transaction_hash=f"float-{asset_id}")
    assert mixin.confirm(1) == 2

    # When the user pays every leg by transfers to the bot, the beat's poller reads them and the jobs run
    mixin.pay(user_id=user, asset_id=BTC, amount="0.5001", memo=memo)
    mixin.pay(user_id=user, asset_id=USDT, amount="1001", memo=memo)
    poll()
    assert jobs()[:2] == ["process_market_making_snapshots"] * 2

    # Then the order runs with its funds on the exchange: two Safe withdrawals to its deposit addresses, the
    # USDT one with the exchange's memo, each with Mixin's fee output
    order.refresh_from_db()
    assert order.state == "running", order.reason
    assert sorted((w["asset_id"], w["amount"], w["tag"]) for w in mixin.withdrawals) == [
        (USDT, "1000", USDT_MEMO), (BTC, "0.5", "")]
    assert {d.asset: (d.amount, d.tx_id) for d in SimDeposit.objects.all()} == {
        {BTC: "BTC", USDT: "USDT"}[w["asset_id"]]: (Decimal(w["amount"]), w["transaction_hash"])
        for w in mixin.withdrawals}
    assert all(mixin.balance(a, FEE_USER_ID) == fee for a, fee in MIXIN_FEES.items())

    # When it quotes and the market trades through its bids, then through its asks
    tick_run()
    trade_through_both_sides(account, order)

    # And the user pays once more (an overpayment: the order no longer awaits payment) and someone pays with a
    # memo that is no order's; the first answer of each refund's submission is lost
    stranger = str(uuid.uuid4())
    mixin.pay(user_id=user, asset_id=BTC, amount="0.1", memo=memo)
    mixin.pay(user_id=stranger, asset_id=USDT, amount="5", memo="not an order memo")
    mixin.fault("drop_after_accept", method="POST", path="/safe/transactions", count=2)
    poll()
    assert jobs() == ["process_market_making_snapshots"] * 2
    refunds = {r.user_id: r for r in Refund.objects.filter(key__startswith="snapshot-refund:")}
    assert {u: (r.asset_id, r.amount, r.status) for u, r in refunds.items()} == {
        user: (BTC, Decimal("0.1"), RefundStatus.SENT), stranger: (USDT, Decimal("5"), RefundStatus.SENT)}
    assert "not awaiting payment" in refunds[user].reason and "bad memo" in refunds[stranger].reason

    # When the operator stops it (the payout starts with the stop) and the payout job runs
    call_command("stop_mm", str(order.order_id), "--wait", "30")
    order.refresh_from_db()
    assert order.state == "paying_out"
    held = {a: get_balance(user_id=user, asset_id=a).available for a in (BTC, USDT)}
    mixin.fault("drop_after_accept", method="POST", path="/safe/transactions")  # a payout's answer lost
    ran = jobs()
    assert set(ran) == {"withdraw_to_user"} and len(ran) >= 2  # withdrawn, then arrived (confirmed) and paid

    # Then the order is paid out: each asset withdrawn from the exchange to the bot's Safe deposit address,
    # credited there once confirmed, and transferred to the user less the exchange's fee
    order.refresh_from_db()
    assert order.state == "paid_out", (order.reason, list(order.payouts.values("asset_id", "status", "error")))
    assert list(OrderTransition.objects.filter(order=order).values_list("to_state", flat=True)) == [
        "payment_pending", "payment_complete", "withdrawing", "withdrawal_confirmed", "campaign_joined",
        "running", "stopped", "paying_out", "paid_out"]
    exchange_fee = {BTC: Decimal("0.0005"), USDT: Decimal("1")}
    payouts = {p.asset_id: p for p in order.payouts.all()}
    assert {a: (p.amount, p.received, p.fee) for a, p in payouts.items()} == {
        a: (held[a], held[a] - exchange_fee[a], exchange_fee[a]) for a in (BTC, USDT)}
    deposits = {d["transaction_hash"]: (d["destination"], d["asset_id"], d["state"]) for d in mixin.deposits}
    assert all(deposits[p.tx_id] == (p.address, a, "completed") for a, p in payouts.items())
    # the deposits appeared in the bot's snapshot feed; the poller skips them: they are not payments
    before = Snapshot.objects.count()
    poll()
    assert Snapshot.objects.count() == before and not Snapshot.objects.filter(outcome="held").exists()
    assert caplog.text.count("event=mixin_deposit_skipped") == 4  # the float's two, the payout's two
    assert jobs() == []
    # a second run of the job pays nothing twice
    app.tasks["withdraw_to_user"].apply(args=[str(order.order_id)])

    # Then every payment was made exactly once, per the stand-in's record: two withdrawals to the exchange, two
    # refunds and two payouts, each under its own request id, and nothing else left the bot
    expected = {str(withdrawal_request_id(order.order_id, a)) for a in (BTC, USDT)} | {
        str(r.request_id) for r in Refund.objects.all()}
    assert len(expected) == 6 and Refund.objects.filter(status=RefundStatus.SENT).count() == 4
    assert Counter(p["request_id"] for p in mixin.payments()) == {request_id: 1 for request_id in expected}
    assert [f.count for f in mixin.faults] == [0, 0]  # every lost answer happened, and was resolved
    assert mixin.balance(BTC, user) == Decimal("0.1") + held[BTC] - exchange_fee[BTC]
    assert mixin.balance(USDT, user) == held[USDT] - exchange_fee[USDT]
    assert mixin.balance(USDT, stranger) == Decimal("5") and mixin.balance(BTC, stranger) == 0
    # and the bot's holdings agree with the ledger to the unit: its own float, plus what the ledger owes every
    # user (nothing now), plus the fee legs it was paid, less what Mixin charged for the withdrawals
    for asset_id in (BTC, USDT):  # summed in Python: exact Decimals on every database
        owed = sum((b.total for b in Balance.objects.filter(asset_id=asset_id)), Decimal(0))
        fee_legs = sum(LedgerEntry.objects.filter(idempotency_key__startswith=f"mm-fee:{order.order_id}:",
                                                  asset_id=asset_id).values_list("amount", flat=True), Decimal(0))
        assert owed == 0
        assert mixin.balance(asset_id) == BOT_FLOAT[asset_id] + fee_legs - mixin.balance(asset_id, FEE_USER_ID)
        assert fee_legs == MIXIN_FEES[asset_id]
    report = audit_ledger()
    assert report.ok, report.drifts
    after = reconcile_run(trigger="test")
    assert after.ok, list(after.drifts.values_list("detail", flat=True))


@pytest.mark.embedded
def test_a_chain_deposit_to_the_bot_in_the_feed_is_skipped_not_held(db, mixin, caplog,
                                                                     django_capture_on_commit_callbacks):
    # given an exchange's withdrawal arriving at the bot's Safe deposit address (announced as the simulator
    # does), credited once confirmed: a snapshot with a deposit object and no payer; and a user's transfer
    entry = mixin.deposit_entry(BTC)
    mixin.deposit_announced({"address": entry["destination"], "tag": "", "asset": "BTC", "network": "BTC",
                             "amount": "0.25", "tx_id": "simwd-feed-test"})
    assert mixin.confirm(1) == 1
    payer = str(uuid.uuid4())
    mixin.pay(user_id=payer, asset_id=BTC, amount="0.01", memo="no order")
    mixin.fund(USDT, "50")  # the operator's float (make run's --fund): a chain deposit too
    deposit = next(s for s in mixin.snapshots if s.get("deposit"))
    assert deposit["opponent_id"] == "" and deposit["deposit"]["deposit_hash"] == "simwd-feed-test"

    # when the poller reads the feed
    with django_capture_on_commit_callbacks(execute=False):
        result = snapshots_poll(provider=MixinPaymentProvider.from_settings())

    # then the deposit is skipped and logged, not recorded as a held payment; the transfer is recorded
    assert (result.received, result.new, result.deposits, result.malformed) == (
        len(mixin.snapshots), 1, 2, 0)
    assert list(Snapshot.objects.values_list("opponent_id", flat=True)) == [payer]
    assert f"event=mixin_deposit_skipped snapshot_id={deposit['snapshot_id']}" in caplog.text
    assert "deposit_hash=simwd-feed-test" in caplog.text
    # and an address that is not the bot's is refused by the stand-in (the simulator announces it again later)
    with pytest.raises(ValueError, match="not a deposit address of the bot"):
        mixin.deposit_announced({"address": "elsewhere", "asset": "BTC", "amount": "1", "tx_id": "x"})


@pytest.mark.embedded
def test_a_payment_whose_snapshot_names_a_deposit_but_has_a_payer_is_still_a_payment(
        db, mixin, django_capture_on_commit_callbacks):
    # a transfer from a user is never skipped as a deposit, whatever else its record carries
    payer = str(uuid.uuid4())
    snapshot = mixin.pay(user_id=payer, asset_id=BTC, amount="0.02", memo="no order")
    snapshot["deposit"] = {"deposit_hash": "ab" * 32}
    with django_capture_on_commit_callbacks(execute=False):
        result = snapshots_poll(provider=MixinPaymentProvider.from_settings())
    assert (result.new, result.deposits) == (1, 0)
    assert Snapshot.objects.get().opponent_id == payer
