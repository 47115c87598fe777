"""Payout after stop (orders.services.payout, job withdraw_to_user) against the exchange simulator over HTTP
(real ccxt) and the local payment provider: each asset withdrawn once, received, paid to the user once; the
exchange's fee charged to the user; a refused withdrawal or transfer leaves the money where it can be seen;
the operator may keep the funds on the exchange. The whole lifecycle with its payout runs in
tests/test_lifecycle_dialects.py on both dialects."""
from decimal import Decimal

import pytest
from django.core.management import call_command

from exchanges.clients import exchange_clients_clear
from exchanges.models import SimBalance, SimWithdrawal
from exchanges.simulator.services import simulator_set_balance, simulator_set_faults
from ledger.selectors import audit_ledger
from ledger.services import credit_deposit, get_balance, lock_funds, unlock_funds
from mmproject.celery import app
from mmproject.cli import UsageError
from orders.errors import PayoutNotPossible
from orders.models import ORDER_REF, OrderState, OutgoingTransfer, Payout, Refund
from orders.outcomes import Outcome
from orders.services.payout import payout_advance, payout_keep, payout_request
from orders.services.resume import lifecycle_resume
from tests.factories import OrderFactory
from tests.orders.conftest import BTC, USDT

pytestmark = pytest.mark.embedded

HELD = {BTC: Decimal("0.5"), USDT: Decimal("1012.5")}


@pytest.fixture
def payout_settings(settings):
    settings.MM_WITHDRAW_MODE = "transfer"
    settings.MM_PAYMENT_PROVIDER = "local"
    settings.MM_PAYOUT_AFTER_STOP = "auto"
    return settings


def stopped_order(pair, **kwargs):
    """A stopped order whose stop released HELD to its user in the ledger, with HELD on the simulator account."""
    order = OrderFactory(pair=pair, state=OrderState.STOPPED, **kwargs)
    for asset_id, amount in HELD.items():
        credit_deposit(user_id=order.user_id, asset_id=asset_id, amount=amount, idempotency_key=f"in:{order.pk}:{asset_id}")
        lock_funds(user_id=order.user_id, asset_id=asset_id, amount=amount, idempotency_key=f"lock:{order.pk}:{asset_id}",
                   ref_type=ORDER_REF, ref_id=str(order.order_id))
        unlock_funds(user_id=order.user_id, asset_id=asset_id, amount=amount,
                     idempotency_key=f"mm-unlock:{order.order_id}:{asset_id}", ref_type=ORDER_REF,
                     ref_id=str(order.order_id))
    for code, amount in (("BTC", HELD[BTC]), ("USDT", HELD[USDT])):
        simulator_set_balance(account_label=sim_label(pair), asset=code, free=amount)
    return order


def sim_label(pair) -> str:
    return "orders-sim"  # the simulator account of tests.orders.conftest.sim_pair


def exchange_free(pair, code):
    return SimBalance.objects.get(account__label=sim_label(pair), asset=code).free


def test_a_requested_payout_withdraws_each_asset_once_charges_the_fee_and_pays_the_user(
        sim_pair, payout_settings, jobs):
    payout_settings.SIM_WITHDRAW_FEES = "BTC=0.0005,USDT=1"
    order = stopped_order(sim_pair)

    payout_request(order_id=order.order_id, by="test")
    assert jobs() == ["withdraw_to_user"]

    order.refresh_from_db()
    assert order.state == OrderState.PAID_OUT
    paid = {t.asset_id: t.amount for t in OutgoingTransfer.objects.filter(opponent_id=order.user_id)}
    assert paid == {BTC: Decimal("0.4995"), USDT: Decimal("1011.5")}
    rows = {p.asset_id: p for p in order.payouts.all()}
    assert {a: (p.status, p.amount, p.fee, p.received) for a, p in rows.items()} == {
        BTC: ("paid", HELD[BTC], Decimal("0.0005"), Decimal("0.4995")),
        USDT: ("paid", HELD[USDT], Decimal("1"), Decimal("1011.5"))}
    assert exchange_free(sim_pair, "BTC") == 0 and exchange_free(sim_pair, "USDT") == 0
    assert all(get_balance(user_id=order.user_id, asset_id=a).total == 0 for a in HELD)
    assert audit_ledger().ok

    # Asked again, by the job, the command or the sweeper: nothing moves twice
    app.tasks["withdraw_to_user"].apply(args=[str(order.order_id)])
    assert lifecycle_resume().get("withdraw_to_user") is None
    assert SimWithdrawal.objects.count() == 2 and OutgoingTransfer.objects.count() == 2


def test_a_withdrawal_cut_off_after_the_exchange_took_it_is_found_not_sent_again(sim_pair, payout_settings, jobs):
    order = stopped_order(sim_pair)
    # the first withdraw request times out on our side after the simulator accepted it
    simulator_set_faults(account_label=sim_label(sim_pair), timeout_after_accept_s=3)
    payout_settings.EXCHANGE_TIMEOUT_MS = 1000
    exchange_clients_clear()

    payout_request(order_id=order.order_id, by="test")
    name, args = jobs.sent.pop(0)
    first = app.tasks[name].apply(args=list(args))
    simulator_set_faults(account_label=sim_label(sim_pair), timeout_after_accept_s=0)
    # whatever the first run saw, running the job to the end withdraws each asset once
    for _ in range(5):
        app.tasks["withdraw_to_user"].apply(args=[str(order.order_id)])
        order.refresh_from_db()
        if order.state == OrderState.PAID_OUT:
            break
    assert order.state == OrderState.PAID_OUT, (first.traceback, list(order.payouts.values("status", "error")))
    assert SimWithdrawal.objects.filter(account__label=sim_label(sim_pair)).count() == 2
    assert OutgoingTransfer.objects.filter(opponent_id=order.user_id).count() == 2


def test_a_refused_withdrawal_fails_the_order_with_the_money_still_on_the_exchange(sim_pair, payout_settings, jobs):
    order = stopped_order(sim_pair)
    simulator_set_balance(account_label=sim_label(sim_pair), asset="USDT", free=Decimal("10"))  # short

    payout_request(order_id=order.order_id, by="test")
    jobs()

    order.refresh_from_db()
    assert order.state == OrderState.FAILED
    assert "USDT" in order.reason or USDT in order.reason
    assert "insufficient balance" in order.reason and "stay on the exchange" in order.reason
    usdt = Payout.objects.get(order=order, asset_id=USDT)
    assert usdt.status == "failed" and not usdt.withdrawal_id
    # the user's USDT balance is untouched; BTC was paid
    assert get_balance(user_id=order.user_id, asset_id=USDT).available == HELD[USDT]
    assert get_balance(user_id=order.user_id, asset_id=BTC).total == 0
    assert audit_ledger().ok


def test_a_transfer_the_provider_refuses_is_credited_back_and_said(sim_pair, payout_settings, jobs):
    order = stopped_order(sim_pair, user_id="not-a-mixin-user")  # the local provider refuses such a recipient

    payout_request(order_id=order.order_id, by="test")
    jobs()

    order.refresh_from_db()
    assert order.state == OrderState.FAILED
    assert "credited back" in order.reason.lower() or "back on the user's balance" in order.reason
    assert set(Refund.objects.filter(order=order).values_list("status", flat=True)) == {"compensated"}
    # withdrawn from the exchange (it is in the bot's wallet), and the user's balance says what they are owed
    assert exchange_free(sim_pair, "BTC") == 0
    assert get_balance(user_id=order.user_id, asset_id=BTC).available == HELD[BTC]
    assert not OutgoingTransfer.objects.filter(opponent_id=order.user_id).exists()
    assert audit_ledger().ok


def test_the_stop_starts_the_payout_unless_the_operator_keeps_the_funds(sim_pair, payout_settings, jobs):
    order = OrderFactory(pair=sim_pair, state=OrderState.RUNNING)
    payout_keep(order_id=order.order_id, by="test")
    order.refresh_from_db()
    assert order.keep_on_exchange

    # a kept order is not paid out by the job, the sweeper or a stray message
    kept = stopped_order(sim_pair, keep_on_exchange=True)
    with pytest.raises(PayoutNotPossible, match="keeps its funds on the exchange"):
        from orders.services.payout import _begin
        _begin(kept, by="test")
    assert lifecycle_resume().get("withdraw_to_user") is None
    assert payout_advance(order_id=kept.order_id) == Outcome.NOOP

    # until the operator asks (the command clears the hold)
    call_command("mm_payout", str(kept.order_id))
    jobs()
    kept.refresh_from_db()
    assert kept.state == OrderState.PAID_OUT and not kept.keep_on_exchange


def test_the_command_refuses_an_order_that_is_not_stopped(sim_pair, payout_settings):
    # (the exit status 2 and one line of OperatorCommand errors: tests/test_commands.py)
    order = OrderFactory(pair=sim_pair, state=OrderState.PAYMENT_PENDING)
    with pytest.raises(UsageError, match="is payment_pending; only a stopped order is paid out"):
        call_command("mm_payout", str(order.order_id))
    assert not Payout.objects.exists()


def test_an_arrival_the_provider_cannot_read_stays_on_its_way_and_is_paid_once_readable(
        sim_pair, payout_settings, jobs, monkeypatch):
    from orders.providers.local import LocalPaymentProvider

    order = stopped_order(sim_pair)
    real = LocalPaymentProvider.deposit_received

    def refused(self, **kwargs):
        raise PayoutNotPossible("the provider refuses to list the bot's deposits")

    monkeypatch.setattr(LocalPaymentProvider, "deposit_received", refused)
    payout_request(order_id=order.order_id, by="test")
    jobs.sent.clear()  # the job's first message: run by hand below

    # While the arrival cannot be read, the withdrawn rows wait (nothing debited, nothing paid)
    assert payout_advance(order_id=order.order_id) == Outcome.PENDING
    assert set(order.payouts.values_list("status", flat=True)) == {"withdrawing"}
    assert not OutgoingTransfer.objects.filter(opponent_id=order.user_id).exists()
    assert get_balance(user_id=order.user_id, asset_id=BTC).available == HELD[BTC]

    # and once it can, they arrive and are paid, each withdrawal sent once
    monkeypatch.setattr(LocalPaymentProvider, "deposit_received", real)
    assert payout_advance(order_id=order.order_id) == Outcome.COMPLETE
    assert SimWithdrawal.objects.count() == 2 and OutgoingTransfer.objects.filter(opponent_id=order.user_id).count() == 2
