"""Stop leaves nothing open, settles fills into the ledger exactly, and the kill switch holds."""
import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from exchanges.models import SimTrade
from exchanges.simulator.services import simulator_move_to, simulator_set_faults
from intents.models import Intent, IntentKind, TrackedOrder, TrackedOrderStatus
from ledger.models import LedgerEntry
from ledger.selectors import audit_ledger, ref_positions
from ledger.services import get_balance
from orders.models import MarketMakingOrder, OrderState
from orders.services import order_stop
from intents import ids
from intents.dispatcher import intents_dispatch
from orders.services.kill_switch import kill_switch_engage
from strategy.models import SessionStatus, StrategySession
from strategy.tick import tick_run
from strategy.trackers import track_exchange_orders
from tests.runtime_fixtures import BTC, USDT, make_running_order

pytestmark = [pytest.mark.slow, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def sync_driver(settings):
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "sync"
    settings.STRATEGY_TICK_SIZE_MS = 10
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8


def ours_open(client, order):
    prefix = ids.client_order_prefix(order.order_id)
    return [o for o in client.fetch_open_orders("BTC/USDT") if o["clientOrderId"].startswith(prefix)]


def unlocks_of(order):
    return Counter(LedgerEntry.objects.filter(ref_id=str(order.order_id), operation="unlock_funds")
                   .values_list("asset_id", flat=True))


def assert_fully_unlocked(order):
    positions = ref_positions(ref_type="mm_order", ref_ids=[order.order_id])
    assert all(amount == 0 for amount in positions.values()), positions
    assert unlocks_of(order) == {BTC: 1, USDT: 1}
    report = audit_ledger()
    assert report.ok, report.drifts


def test_stop_with_twenty_open_orders_and_failing_cancels_leaves_nothing_open(sim):
    # Given 20 open orders on the exchange (10 layers a side)
    account = sim.accounts[0]
    order = make_running_order(account, layers=10, spread="0.002")
    tick_run()
    client = sim.client(account)
    assert len(ours_open(client, order)) == 20
    # and an exchange that fails 2 of the next requests with a 5xx (10% of the cancels)
    simulator_set_faults(account_label="rt-sim-0", http_5xx=2)

    # When the order is stopped
    outcome = order_stop(order_id=order.order_id, by="test", wait_s=30)

    # Then nothing of it is left open, it is stopped, and its funds were unlocked exactly once
    assert outcome == "stopped"
    assert ours_open(client, order) == []
    assert not TrackedOrder.objects.filter(strategy_key=ids.strategy_key(order.order_id),
                                           status__in=["open", "partially_filled", "pending_cancel"]).exists()
    order.refresh_from_db()
    assert order.state == OrderState.STOPPED
    assert StrategySession.objects.get(order=order).status == SessionStatus.STOPPED
    assert_fully_unlocked(order)
    assert get_balance(user_id=order.user_id, asset_id=BTC).available == Decimal("1")
    assert get_balance(user_id=order.user_id, asset_id=USDT).available == Decimal("40000")


def test_stop_cancels_an_untracked_order_carrying_the_session_prefix(sim):
    account = sim.accounts[0]
    order = make_running_order(account, layers=1)
    tick_run()
    client = sim.client(account)
    stray = ids.client_order_prefix(order.order_id) + "strayorder000001"
    client.create_order("BTC/USDT", "limit", "buy", "0.001", "25000", {"newClientOrderId": stray})
    assert len(ours_open(client, order)) == 3

    assert order_stop(order_id=order.order_id, by="test", wait_s=20) == "stopped"

    assert ours_open(client, order) == []


def test_stop_racing_a_tick_and_a_second_stop_do_nothing_twice(sim):
    account = sim.accounts[0]
    order = make_running_order(account, layers=2)
    tick_run()
    client = sim.client(account)
    StrategySession.objects.update(next_run_at=timezone.now())
    simulator_move_to("BTC/USDT", "30300")  # the next tick wants to requote everything

    outcomes = []
    racer = threading.Thread(target=lambda: [tick_run() for _ in range(5)])
    racer.start()
    outcomes.append(order_stop(order_id=order.order_id, by="first", wait_s=30))
    racer.join(timeout=60)
    outcomes.append(order_stop(order_id=order.order_id, by="second", wait_s=30))

    assert sorted(outcomes) == ["noop", "stopped"]
    assert ours_open(client, order) == []
    assert_fully_unlocked(order)
    stop_began = MarketMakingOrder.objects.get(pk=order.pk).transitions.get(to_state="stopped").at
    late = Intent.objects.filter(strategy_key=ids.strategy_key(order.order_id), kind=IntentKind.CREATE,
                                 sent_at__gt=stop_began)
    assert not late.exists()


def test_fills_settle_into_the_ledger_to_the_last_unit(sim):
    # Given a two-layer ladder, and a market that trades through the bids, then through the asks
    account = sim.accounts[0]
    order = make_running_order(account, layers=2, spread="0.001", order_amount="0.013")
    MarketMakingOrder.objects.filter(pk=order.pk).update(filled_order_delay=0)  # refill at once after the fills
    tick_run()
    simulator_move_to("BTC/USDT", "29800")
    track_exchange_orders(account_id=account.pk)
    client = sim.client(account)
    for _ in range(3):  # refresh: cancel the old asks, then quote a full ladder around the new price
        StrategySession.objects.update(next_run_at=timezone.now(), refreshed_at=None)
        tick_run()
    assert len(ours_open(client, order)) == 4
    simulator_move_to("BTC/USDT", "30240")
    track_exchange_orders(account_id=account.pk)
    track_exchange_orders(account_id=account.pk)  # seeing the same trades again changes nothing

    # Then the order's ledger position is its funds plus every exchange trade minus fees, exactly
    trades = list(SimTrade.objects.filter(order__client_order_id__startswith=ids.client_order_prefix(order.order_id)))
    assert {t.order.side for t in trades} == {"BUY", "SELL"}
    base, quote = Decimal("1"), Decimal("40000")
    for t in trades:
        if t.order.side == "BUY":
            base += t.qty - t.commission
            quote -= t.quote_qty
        else:
            base -= t.qty
            quote += t.quote_qty - t.commission
    positions = ref_positions(ref_type="mm_order", ref_ids=[order.order_id])
    assert positions[(str(order.order_id), BTC)] == base
    assert positions[(str(order.order_id), USDT)] == quote
    assert LedgerEntry.objects.filter(operation="settle_fill", ref_id=str(order.order_id)).count() == len(trades)

    # and a stop unlocks exactly that
    assert order_stop(order_id=order.order_id, by="test", wait_s=30) == "stopped"
    assert get_balance(user_id=order.user_id, asset_id=BTC) .available == base
    assert get_balance(user_id=order.user_id, asset_id=USDT).available == quote
    assert audit_ledger().ok


def test_kill_switch_blocks_new_orders_and_stops_every_session(sim):
    account = sim.accounts[0]
    orders = [make_running_order(account, layers=1) for _ in range(3)]
    tick_run()
    client = sim.client(account)

    report = kill_switch_engage(reason="test", by="test", wait_s=20)

    assert set(report.outcomes.values()) == {"stopped"}
    for order in orders:
        order.refresh_from_db()
        assert order.state == OrderState.STOPPED
        assert ours_open(client, order) == []
    # no order is created while it is engaged, even for a fresh running order
    late = make_running_order(account, layers=1)
    tick_run()
    assert ours_open(client, late) == []
    assert not Intent.objects.filter(strategy_key=ids.strategy_key(late.order_id)).exists()
    call_command("kill_switch", "release")


def test_kill_switch_setting_blocks_claims_of_creates_but_not_cancels(sim, settings):
    account = sim.accounts[0]
    order = make_running_order(account, layers=1)
    tick_run()
    key = ids.strategy_key(order.order_id)
    settings.STRATEGY_KILL_SWITCH = True
    rows = list(TrackedOrder.objects.filter(strategy_key=key))
    Intent.objects.bulk_create([
        Intent(intent_id=f"{key}:x:{t.client_order_id}", strategy_key=key, account=account, kind=IntentKind.CANCEL,
               symbol="BTC/USDT", client_order_id=t.client_order_id) for t in rows])
    TrackedOrder.objects.filter(strategy_key=key).update(status=TrackedOrderStatus.PENDING_CANCEL)

    intents_dispatch(inline=True)

    assert ours_open(sim.client(account), order) == []


def test_resume_finishes_a_stop_left_stopping(sim):
    from orders.services.resume import lifecycle_resume

    account = sim.accounts[0]
    order = make_running_order(account, layers=1)
    StrategySession.objects.filter(order=order).update(status=SessionStatus.STOPPING)

    counts = lifecycle_resume()

    assert counts.get("stop_mm") == 1
