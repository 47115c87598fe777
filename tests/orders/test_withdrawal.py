"""Withdrawal stage against the exchange simulator (real ccxt over loopback HTTP), each mode."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exchanges.models import SimBalance, SimDeposit
from ledger.services import get_balance
from orders.errors import IllegalTransition
from orders.models import (
    CampaignParticipation, ExchangeTransfer, MarketMakingOrder, OrderTransition, Refund, RefundStatus,
)
from orders.services import (
    campaign_join, order_start, order_stop, payment_check, withdrawal_monitor, withdrawal_start,
)
from strategy.models import StrategySession

from .conftest import BTC, ETH, USDT, pay_in_full

pytestmark = pytest.mark.slow


def paid(order):
    pay_in_full(order)
    assert payment_check(order_id=order.order_id) == "complete"
    return order


def state(order):
    return MarketMakingOrder.objects.get(pk=order.pk).state


def test_disabled_mode_leaves_the_order_at_payment_complete(sim_pair, make_order, settings):
    settings.MM_WITHDRAW_MODE = "disabled"
    order = paid(make_order(sim_pair))
    assert withdrawal_start(order_id=order.order_id) == "disabled"
    assert state(order) == "payment_complete"


def test_validation_mode_resolves_addresses_then_refunds(sim_pair, make_order, settings):
    settings.MM_WITHDRAW_MODE = "validation"
    order = paid(make_order(sim_pair))
    assert withdrawal_start(order_id=order.order_id) == "validated"
    order.refresh_from_db()
    assert order.state == "refunded" and "validation mode" in order.reason
    transfers = {t.exchange_asset: t for t in ExchangeTransfer.objects.filter(order=order)}
    assert set(transfers) == {"BTC", "USDT"}
    assert all(t.address.startswith("sim") and t.status == "resolved" for t in transfers.values())
    assert not SimDeposit.objects.exists()
    refunds = {r.asset_id: r.amount for r in Refund.objects.filter(order=order, status=RefundStatus.SENT)}
    assert refunds == {BTC: Decimal("0.5001"), USDT: Decimal("1000"), ETH: Decimal("0.002")}
    for asset in (BTC, USDT, ETH):
        assert get_balance(user_id=order.user_id, asset_id=asset).total == 0


def test_transfer_mode_runs_to_running_and_stop_unlocks(sim_pair, make_order, settings):
    settings.MM_WITHDRAW_MODE = "transfer"
    order = paid(make_order(sim_pair))
    # when the withdrawal starts: funds locked, sent to the simulator's deposit addresses
    assert withdrawal_start(order_id=order.order_id) == "sent"
    assert state(order) == "withdrawing"
    assert get_balance(user_id=order.user_id, asset_id=BTC).locked == Decimal("0.5")
    assert get_balance(user_id=order.user_id, asset_id=USDT).locked == Decimal("1000")
    deposits = {d.asset: d.amount for d in SimDeposit.objects.all()}
    assert deposits == {"BTC": Decimal("0.5"), "USDT": Decimal("1000")}
    # a redelivered job sends nothing twice
    assert withdrawal_start(order_id=order.order_id) == "sent"
    assert SimDeposit.objects.count() == 2
    # the monitor sees both confirmed; fees are charged then
    assert withdrawal_monitor(order_id=order.order_id) == "confirmed"
    assert state(order) == "withdrawal_confirmed"
    assert get_balance(user_id=order.user_id, asset_id=BTC).available == 0
    assert get_balance(user_id=order.user_id, asset_id=ETH).available == 0
    sim_btc = SimBalance.objects.get(account__label="orders-sim", asset="BTC").free
    assert sim_btc == Decimal("0.5")
    # campaign, then start: a running strategy session with the order's cadence
    assert campaign_join(order_id=order.order_id) == "joined"
    assert campaign_join(order_id=order.order_id) == "noop"
    assert CampaignParticipation.objects.filter(order=order).count() == 1
    assert order_start(order_id=order.order_id) == "running"
    session = StrategySession.objects.get(order=order)
    assert (session.status, session.cadence_s) == ("running", 10)
    # stop: session stopped, funds unlocked, state stopped
    assert order_stop(order_id=order.order_id, by="test") == "stopped"
    assert order_stop(order_id=order.order_id, by="test") == "noop"
    assert StrategySession.objects.get(order=order).status == "stopped"
    assert get_balance(user_id=order.user_id, asset_id=BTC) .locked == 0
    assert get_balance(user_id=order.user_id, asset_id=BTC).available == Decimal("0.5")
    history = list(OrderTransition.objects.filter(order=order).values_list("to_state", flat=True))
    # (and the payout after stop begins: tests/orders/test_payout.py)
    assert history == ["payment_pending", "payment_complete", "withdrawing", "withdrawal_confirmed",
                       "campaign_joined", "running", "stopped", "paying_out"]


def test_unconfirmed_deposits_fail_the_order_at_the_monitor_deadline(sim_pair, make_order, settings):
    settings.MM_WITHDRAW_MODE = "transfer"
    settings.SIM_DEPOSIT_CONFIRM_S = 3600
    order = paid(make_order(sim_pair))
    withdrawal_start(order_id=order.order_id)
    assert withdrawal_monitor(order_id=order.order_id) == "pending"
    MarketMakingOrder.objects.filter(pk=order.pk).update(
        withdrawal_started_at=timezone.now() - timedelta(seconds=settings.MM_WITHDRAWAL_MONITOR_TIMEOUT_S + 1))
    assert withdrawal_monitor(order_id=order.order_id) == "timeout"
    order.refresh_from_db()
    assert order.state == "failed" and "operator review" in order.reason
    # the money may be on the exchange: it stays locked, nothing is refunded
    assert get_balance(user_id=order.user_id, asset_id=BTC).locked == Decimal("0.5")
    assert not Refund.objects.filter(order=order).exists()


def test_transfer_mode_without_an_exchange_account_fails_and_refunds(pair, make_order, settings, transactional_db):
    settings.MM_WITHDRAW_MODE = "transfer"
    order = paid(make_order(pair))
    assert withdrawal_start(order_id=order.order_id) == "failed"
    order.refresh_from_db()
    assert order.state == "failed" and "no exchange account" in order.reason
    assert Refund.objects.filter(order=order, status=RefundStatus.SENT).count() == 3
    assert get_balance(user_id=order.user_id, asset_id=BTC).total == 0


def test_stop_of_an_order_still_awaiting_payment_is_refused(order):
    with pytest.raises(IllegalTransition):
        order_stop(order_id=order.order_id, by="test")
    assert state(order) == "payment_pending"


def test_exchange_outage_while_resolving_addresses_leaves_the_order_for_a_retry(sim_pair, make_order, settings):
    from exchanges.simulator.services import simulator_set_faults
    from orders.errors import ExchangeUnavailable

    settings.MM_WITHDRAW_MODE = "transfer"
    order = paid(make_order(sim_pair))
    simulator_set_faults(account_label="orders-sim", http_5xx=1)
    with pytest.raises(ExchangeUnavailable):
        withdrawal_start(order_id=order.order_id)
    # nothing locked, nothing sent, the state unchanged: the job's retry starts clean
    assert state(order) == "payment_complete"
    assert get_balance(user_id=order.user_id, asset_id=BTC).locked == 0
    assert not ExchangeTransfer.objects.exists()
    assert withdrawal_start(order_id=order.order_id) == "sent"


def test_disabled_exchange_account_fails_the_order_and_refunds(sim_pair, make_order, settings):
    settings.MM_WITHDRAW_MODE = "transfer"
    order = paid(make_order(sim_pair))
    sim_pair.exchange_account.enabled = False
    sim_pair.exchange_account.save()
    assert withdrawal_start(order_id=order.order_id) == "failed"
    order.refresh_from_db()
    assert order.state == "failed" and "disabled" in order.reason
    assert Refund.objects.filter(order=order, status=RefundStatus.SENT).count() == 3


def test_local_provider_refuses_an_address_it_cannot_reach(transactional_db):
    from orders.errors import TransferRejected
    from orders.models import OutgoingTransfer
    from orders.providers.local import LocalPaymentProvider

    with pytest.raises(TransferRejected, match="not a deposit address"):
        LocalPaymentProvider().withdraw(request_id="0b4a3d1e-0000-4000-8000-000000000001", asset_id=BTC,
                                        exchange_asset="BTC", amount=Decimal("1"), address="bc1-nowhere")
    assert not OutgoingTransfer.objects.exists()


def test_transfer_the_provider_refuses_fails_the_order_unlocks_and_refunds(sim_pair, make_order, settings):
    import os
    import uuid as uuid_mod

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from exchanges.crypto import encrypt_secret
    from orders.providers.mixin_safe import spend_public_key
    from orders.providers.mixin_standin import MixinSafeStandIn

    # given a paid order and the Mixin provider, whose withdrawal fees are charged in another asset
    # (which it refuses: nothing is sent)
    settings.MM_WITHDRAW_MODE = "transfer"
    order = paid(make_order(sim_pair))
    key = Ed25519PrivateKey.generate()
    spend = os.urandom(32).hex()
    client_id = str(uuid_mod.uuid4())
    with MixinSafeStandIn(client_id=client_id, session_public_key=key.public_key(),
                          spend_public_key=spend_public_key(spend)) as mixin:
        for asset, amount in ((BTC, "1"), (USDT, "5000"), (ETH, "1")):
            mixin.fund(asset, amount)
            mixin.set_fee(asset, "0.0001", fee_asset_id=ETH if asset != ETH else BTC)
        mixin.add_user(order.user_id)
        settings.MM_PAYMENT_PROVIDER = "mixin"
        settings.MIXIN_API_BASE = mixin.base_url
        settings.MIXIN_CLIENT_ID = client_id
        settings.MIXIN_SESSION_ID = str(uuid_mod.uuid4())
        settings.MIXIN_SESSION_PRIVATE_KEY = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
        settings.MIXIN_SPEND_PRIVATE_KEY = encrypt_secret(spend)
        # when the withdrawal starts
        assert withdrawal_start(order_id=order.order_id) == "failed"
    # then nothing reached the exchange, the locks are released and every asset is refunded once
    order.refresh_from_db()
    assert order.state == "failed" and "rejected" in order.reason and "only in another asset" in order.reason
    assert not SimDeposit.objects.exists() and not mixin.withdrawals
    assert set(ExchangeTransfer.objects.filter(order=order).values_list("status", flat=True)) <= {"failed", "pending"}
    for asset in (BTC, USDT, ETH):
        assert get_balance(user_id=order.user_id, asset_id=asset).total == 0
    assert Refund.objects.filter(order=order, status=RefundStatus.SENT).count() == 3
    assert len(mixin.payments()) == 3
