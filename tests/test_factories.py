"""The test factories: each builds a valid row on either database, and an order has what its state implies."""
from decimal import Decimal

import pytest

from exchanges.models import SimAccount
from orders.models import OrderState, PaymentState
from strategy.models import SessionStatus, StrategySession

from . import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

# full_clean assigns every cleaned value back; the protected FSM field refuses any assignment once loaded.
ORDER_CLEAN_EXCLUDE = ["state"]


@pytest.mark.parametrize("factory", [
    f.UserFactory, f.AssetFactory, f.ExchangeAccountFactory, f.PairFactory, f.IntentFactory, f.TrackedOrderFactory,
    f.StrategySessionFactory, f.PaymentStateFactory,
])
def test_each_factory_builds_a_valid_row(factory):
    row = factory()
    row.full_clean()
    assert type(row).objects.filter(pk=row.pk).exists()


def test_user_traits_and_permissions_reach_the_admin():
    staff = f.UserFactory(staff=True, permissions=["view_marketmakingorder"])
    admin = f.UserFactory(superuser=True)
    assert staff.is_staff and not staff.is_superuser and staff.check_password("pw")
    assert staff.has_perm("orders.view_marketmakingorder") and not staff.has_perm("orders.operate_orders")
    assert admin.is_superuser and admin.has_perm("orders.operate_orders")
    assert f.UserFactory(password="chosen").check_password("chosen")  # a given password is hashed too


def test_exchange_account_stores_its_secret_encrypted():
    account = f.ExchangeAccountFactory(api_secret="s3cret")
    account.refresh_from_db()
    assert account.api_secret == "s3cret" and "s3cret" not in account.api_secret_encrypted


def test_simulated_account_has_its_simulator_twin_with_the_same_credentials():
    account = f.SimulatedExchangeAccountFactory(base_url="http://127.0.0.1:9", sim_balances={"BTC": Decimal("2")})
    twin = SimAccount.objects.get(label=f"sim-{account.label}")
    assert (twin.api_key, twin.api_secret) == (account.api_key, account.api_secret)
    assert {b.asset: b.free for b in twin.balances.all()} == {"BTC": Decimal("2")}


def test_pair_with_fees_charges_the_base_asset_and_another():
    pair = f.PairFactory(with_fees=True)
    pair.full_clean()
    assert (pair.base_fee_asset_id, pair.base_fee_amount) == (pair.base_asset_id, Decimal("0.0001"))
    assert pair.quote_fee_asset_id not in ("", pair.base_asset_id, pair.quote_asset_id)


@pytest.mark.parametrize("state", OrderState.values)
def test_an_order_is_built_in_the_state_asked_with_what_it_implies(state):
    order = f.OrderFactory(state=state, pair=f.PairFactory(with_fees=True))
    order.refresh_from_db()
    order.full_clean(exclude=ORDER_CLEAN_EXCLUDE)
    assert order.state == state
    payment = PaymentState.objects.get(order=order)
    assert len(payment.legs()) == 4
    paid = state not in (OrderState.PAYMENT_PENDING, OrderState.FAILED)
    assert payment.is_complete() is paid
    assert (order.withdrawal_started_at is not None) is (state in (
        "withdrawing", "withdrawal_confirmed", "campaign_joined", "running", "stopped", "paying_out", "paid_out"))
    # (the stop's reason stays through the payout)
    assert bool(order.reason) is (state in ("stopped", "paying_out", "paid_out", "refunded", "failed"))
    assert StrategySession.objects.filter(order=order).exists() is (state == OrderState.RUNNING)


def test_a_running_order_has_its_due_session_at_its_cadence():
    order = f.OrderFactory(state=OrderState.RUNNING, order_refresh_time=3)
    session = order.strategy_session
    assert (session.status, session.cadence_s, session.stopped_at) == (SessionStatus.RUNNING, 3, None)
    assert session.next_run_at is not None


def test_a_session_alone_brings_its_running_order_and_only_one_session():
    session = f.StrategySessionFactory(status=SessionStatus.STOPPED)
    assert session.order.state == OrderState.RUNNING and session.stopped_at is not None
    assert StrategySession.objects.filter(order=session.order).count() == 1


def test_related_rows_can_be_left_out():
    order = f.OrderFactory(state=OrderState.RUNNING, payment=None, strategy_session=None)
    assert not PaymentState.objects.filter(order=order).exists()
    assert not StrategySession.objects.filter(order=order).exists()


def test_a_cancel_intent_names_no_price_or_amount():
    intent = f.IntentFactory(cancel=True)
    intent.full_clean()
    assert (intent.kind, intent.side, intent.price, intent.amount) == ("cancel", "", None, None)
