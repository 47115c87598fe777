"""The order admin: what operators see (list with PnL, order page sections), who may act, what the actions do."""
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from intents.models import TrackedFill, TrackedOrder
from orders.admin import orders_pnl
from orders.models import MarketMakingOrder, OrderState, OrderTransition
from orders.services import snapshot_record
from strategy.models import MarketData
from tests.factories import ExchangeAccountFactory, IntentFactory, TrackedOrderFactory, UserFactory
from tests.runtime_fixtures import make_running_order

from .conftest import USDT, snapshot_payload

pytestmark = [pytest.mark.django_db]
embedded = pytest.mark.embedded

LIST = "/admin/orders/marketmakingorder/"
SECRET = "very-secret-exchange-key-9f3a"


def change_url(order):
    return f"{LIST}{order.pk}/change/"


@pytest.fixture
def account():
    return ExchangeAccountFactory(label="desk-1", api_key="key-1", api_secret=SECRET, base_url="http://127.0.0.1:9")


@pytest.fixture
def viewer(client):
    """Staff with view permissions only (orders and the apps the order page draws on)."""
    client.force_login(UserFactory(username="staff-viewer", staff=True,
                                   permissions=["view_marketmakingorder", "view_exchangeaccount"]))
    return client


@pytest.fixture
def operator(client):
    client.force_login(UserFactory(username="staff-operator", staff=True,
                                   permissions=["view_marketmakingorder", "operate_orders"]))
    return client


def trade(order, *, side, price, amount, fee="0", fee_currency="USDT", n=0):
    """A tracked order of ``order`` and one fill of it."""
    key = f"mm:{order.order_id}"
    tracked = TrackedOrderFactory(strategy_key=key, account=order.exchange_account, side=side, price=Decimal(price),
                                  amount=Decimal(amount), filled=Decimal(amount), status="filled")
    TrackedFill.objects.create(account=order.exchange_account, trade_id=f"t{uuid.uuid4().hex[:10]}", symbol="BTC/USDT",
                               tracked_order=tracked, strategy_key=key, side=side, price=Decimal(price),
                               amount=Decimal(amount), cost=Decimal(price) * Decimal(amount), fee=Decimal(fee),
                               fee_currency=fee_currency, traded_at_ms=1_700_000_000_000 + n)
    return tracked


def market(account, *, bid, ask):
    MarketData.objects.update_or_create(account=account, symbol="BTC/USDT", defaults=dict(
        best_bid=Decimal(bid), best_ask=Decimal(ask), price_tick=Decimal("0.01"), amount_step=Decimal("0.0001"),
        fetched_at=timezone.now()))


@embedded
def test_pnl_marks_fills_at_the_mid_with_fees_like_the_demo_view(account):
    # given a running order that bought 0.02 at 30000 (fee 0.6 USDT) and sold 0.01 at 30100, mid 30050
    order = make_running_order(account)
    trade(order, side="buy", price="30000", amount="0.02", fee="0.6", n=1)
    trade(order, side="sell", price="30100", amount="0.01", fee="0.00001", fee_currency="BTC", n=2)
    market(account, bid="30040", ask="30060")
    # then PnL = base delta x mid + quote delta = (0.02 - 0.01 - 0.00001) x 30050 + (-600 - 0.6 + 301)
    assert orders_pnl([order])[order.pk] == Decimal("0.00999") * Decimal("30050") + Decimal("-299.6")
    from demo.selectors import demo_view
    assert Decimal(demo_view(order)["pnl"]["quote"]) == orders_pnl([order])[order.pk]


@embedded
def test_pnl_is_unknown_without_market_data(account):
    order = make_running_order(account)
    assert orders_pnl([order]) == {order.pk: None}


@embedded
def test_order_list_shows_state_pair_exchange_user_age_and_pnl_in_constant_queries(
        admin_client, account, django_assert_max_num_queries):
    # given running orders with fills and a market
    orders = [make_running_order(account) for _ in range(3)]
    trade(orders[0], side="buy", price="30000", amount="0.01")
    market(account, bid="30100", ask="30100")
    # when the list is shown
    with django_assert_max_num_queries(12):
        page = admin_client.get(LIST).content.decode()
    # then each row carries its state, pair, exchange, user, age and PnL
    for order in orders:
        assert str(order.order_id) in page and order.user_id in page
    assert "desk-1" in page and "BTC/USDT" in page and "running" in page
    assert "1 USDT" in page  # 0.01 x 30100 - 300
    # and adding rows adds no queries
    for _ in range(10):
        make_running_order(account)
    with django_assert_max_num_queries(12):
        admin_client.get(LIST)


@embedded
def test_order_list_filters_by_state_and_searches_by_user(admin_client, account):
    running = make_running_order(account)
    stopped = make_running_order(account)
    MarketMakingOrder.objects.filter(pk=stopped.pk).update(state=OrderState.STOPPED)
    page = admin_client.get(LIST, {"state__exact": "running"}).content.decode()
    assert str(running.order_id) in page and str(stopped.order_id) not in page
    page = admin_client.get(LIST, {"q": stopped.user_id}).content.decode()
    assert str(stopped.order_id) in page and str(running.order_id) not in page


@embedded
def test_order_page_shows_legs_snapshots_ledger_history_session_intents_and_tracked_orders(viewer, account, order):
    # given a paid-in snapshot on a pending order, and a running order with an intent and a tracked order
    snapshot = snapshot_payload(order, asset_id=USDT, amount="1")
    snapshot_record(provider="local", data=snapshot)
    from orders.services import snapshot_process
    snapshot_process(snapshot_id=snapshot["snapshot_id"])
    page = viewer.get(change_url(order)).content.decode()
    assert 'id="payment-legs"' in page and "quote_fee" in page
    assert snapshot["snapshot_id"] in page and f"snapshot-credit:{snapshot['snapshot_id']}" in page
    assert "payment_pending" in page and "transition history" in page.lower()

    running = make_running_order(account)
    tracked = trade(running, side="buy", price="30000", amount="0.01")
    IntentFactory(intent_id=f"i-{running.pk}-1", strategy_key=f"mm:{running.order_id}", account=account,
                  client_order_id=tracked.client_order_id, status="done")
    page = viewer.get(change_url(running)).content.decode()
    assert f"i-{running.pk}-1" in page and tracked.client_order_id in page
    assert f"t-lock:{running.pk}:asset-btc" in page and "lock_funds" in page
    assert 'id="order-ledger-entries"' in page and "strategy session" in page.lower()
    # and the exchange secret appears nowhere, not on the account's page either
    assert SECRET not in page
    assert SECRET not in viewer.get(f"/admin/exchanges/exchangeaccount/{account.pk}/change/").content.decode()


STRATEGY_PARAMETERS = ("order_level_spread", "inventory_skew_enabled", "inventory_target_base_pct",
                       "inventory_range_multiplier", "hanging_orders_enabled", "order_refresh_tolerance_pct",
                       "max_order_age_s")


@embedded
def test_order_page_shows_every_strategy_parameter_read_only(viewer, account):
    order = make_running_order(account)
    MarketMakingOrder.objects.filter(pk=order.pk).update(
        order_level_spread=Decimal("0.00070000"), inventory_skew_enabled=True,
        inventory_target_base_pct=Decimal("0.35"), inventory_range_multiplier=Decimal("4.5"),
        hanging_orders_enabled=True, order_refresh_tolerance_pct=Decimal("0.00025"), max_order_age_s=4321)

    page = viewer.get(change_url(order)).content.decode()

    section = page[page.index("Strategy parameters"):page.index('id="payment-legs"')]
    for name in STRATEGY_PARAMETERS:
        assert f"field-{name}" in section, name
        assert f'name="{name}"' not in page, name
    for shown in ("0.00070000", "0.35", "4.5", "0.00025", "4321"):
        assert shown in section, shown


@embedded
def test_the_state_is_never_editable(admin_client, account):
    order = make_running_order(account)
    page = admin_client.get(change_url(order)).content.decode()
    assert 'name="state"' not in page
    response = admin_client.post(change_url(order), {"state": "stopped"})
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.state == OrderState.RUNNING


@embedded
def test_staff_with_view_rights_gets_no_action_and_cannot_post_one(viewer, account):
    order = make_running_order(account)
    page = viewer.get(LIST).content.decode()
    assert str(order.order_id) in page
    assert "Stop market making" not in page and "Retry payment check" not in page
    viewer.post(LIST, {"action": "stop_orders", "_selected_action": [order.pk]})
    order.refresh_from_db()
    assert order.state == OrderState.RUNNING


@embedded
def test_an_operator_stops_market_making_through_the_service(operator, account):
    order = make_running_order(account, session=False)
    MarketMakingOrder.objects.filter(pk=order.pk).update(exchange_account=None)
    page = operator.get(LIST).content.decode()
    assert "Stop market making" in page and "Retry payment check" in page
    response = operator.post(LIST, {"action": "stop_orders", "_selected_action": [order.pk]}, follow=True)
    assert f"Order {order.order_id}: stopped" in response.content.decode()  # the admin capitalises messages
    order.refresh_from_db()
    assert order.state == OrderState.STOPPED
    assert OrderTransition.objects.filter(order=order).last().by.startswith("admin:staff-")


@embedded
def test_stopping_an_order_that_cannot_stop_says_why(admin_client, order):
    response = admin_client.post(LIST, {"action": "stop_orders", "_selected_action": [order.pk]}, follow=True)
    assert "is payment_pending; &#x27;stop&#x27; is not allowed" in response.content.decode()
    order.refresh_from_db()
    assert order.state == OrderState.PAYMENT_PENDING


@embedded
def test_retry_payment_check_queues_the_check_for_pending_orders_only(
        admin_client, order, account, django_capture_on_commit_callbacks):
    running = make_running_order(account)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = admin_client.post(LIST, {"action": "retry_payment_check",
                                            "_selected_action": [order.pk, running.pk]}, follow=True)
    assert [(cb.args[0], cb.args[1]) for cb in queued] == [("check_payment_complete", (str(order.order_id),))]
    page = response.content.decode()
    assert "Payment check queued for 1 order(s)" in page and "not waiting for payment" in page


@pytest.mark.slow
def test_a_stop_the_exchange_does_not_confirm_in_time_is_left_to_the_stop_mm_job(sim, settings, monkeypatch, caplog):
    # given a running order with orders open on the simulator, and an exchange failing every request for now
    from exchanges.simulator.services import simulator_set_faults
    from strategy.tick import tick_run

    settings.STRATEGY_INTENT_EXECUTION_DRIVER, settings.STRATEGY_TICK_SIZE_MS = "sync", 10
    order = make_running_order(sim.accounts[0], layers=1)
    tick_run()
    assert TrackedOrder.objects.filter(strategy_key=f"mm:{order.order_id}", status="open").count() == 2
    simulator_set_faults(account_label="rt-sim-0", http_5xx=100)
    monkeypatch.setattr("orders.admin.ADMIN_STOP_WAIT_S", 0)
    admin = UserFactory(username="ops", superuser=True)
    from django.test import Client
    client = Client()
    client.force_login(admin)
    # when an operator stops it
    with caplog.at_level("INFO", logger="mmproject.jobs"):
        response = client.post(LIST, {"action": "stop_orders", "_selected_action": [order.pk]}, follow=True)
    # then the admin says it is stopping, the stop_mm job is queued, and the order is not stopped yet
    assert "stopping; cancels are being confirmed in the background" in response.content.decode()
    assert any("event=job_enqueued job=stop_mm" in r.getMessage() and str(order.order_id) in r.getMessage()
               for r in caplog.records)
    order.refresh_from_db()
    assert order.state == OrderState.RUNNING
