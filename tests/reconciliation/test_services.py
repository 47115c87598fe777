"""Reconciliation against the simulator over HTTP: each planted drift is found, a clean run finds none."""
import socket
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exchanges.clients import exchange_clients_clear
from exchanges.models import ExchangeAccount, SimTrade
from exchanges.clients import exchange_client
from exchanges.simulator.services import simulator_move_to, simulator_set_faults
from intents.models import IntentStatus, TrackedOrder, TrackedOrderStatus
from ledger import services as ledger
from ledger.models import Posting
from orders.models import MarketMakingPair
from orders.services import order_stop
from reconciliation import services
from reconciliation.models import BalanceBaseline, DriftKind
from reconciliation.services import STUCK_INTENT_GRACE_S, reconcile_run
from intents import ids
from strategy.models import SessionStatus, StrategySession
from strategy.trackers import track_exchange_orders
from tests.factories import ExchangeAccountFactory, IntentFactory, PairFactory, TrackedOrderFactory
from tests.reconciliation.conftest import cancel_behind_our_back, sim_shift_balance, sim_total
from tests.runtime_fixtures import BTC, USDT

pytestmark = [pytest.mark.embedded]


def drifts_of(run):
    return list(run.drifts.order_by("id"))


def locked_under_ref(order, asset_id) -> Decimal:
    postings = Posting.objects.filter(account="user_locked", asset_id=asset_id, entry__ref_type="mm_order",
                                      entry__ref_id=str(order.order_id))
    return sum((p.amount for p in postings), Decimal(0))


def test_clean_run_reports_nothing(quoting, django_assert_max_num_queries):
    # Given a session quoting 4 orders and the baselines stored by a first run
    account, order = quoting

    # When reconciling again (a constant number of queries: 25 with 4 or 100 open orders)
    with django_assert_max_num_queries(27):  # 27th: the payouts that withdrew released funds
        run = reconcile_run(trigger="test")

    # Then nothing is reported, and everything in scope was looked at
    assert run.ok is True and run.drift_count == 0 and drifts_of(run) == []
    assert (run.accounts_checked, run.orders_checked, run.balances_checked, run.baselines_set) == (1, 4, 2, 0)
    # and each baseline is the operator float: exchange total minus what the order holds under its ref
    baselines = {b.asset: b for b in BalanceBaseline.objects.filter(account=account)}
    for code, asset_id, at_least in (("USDT", USDT, Decimal("15000")), ("BTC", BTC, Decimal("0.5"))):
        held = locked_under_ref(order, asset_id)
        assert held >= at_least
        assert baselines[code].ledger_total == held
        assert baselines[code].difference == sim_total(code) - held


def test_order_cancelled_behind_our_back_is_tracked_not_open(quoting, sim, monkeypatch):
    # Given one of the ladder's orders cancelled on the exchange by someone else
    account, order = quoting
    victim = cancel_behind_our_back(sim, account, order)
    # and another one cancelled by our own cancel, its tracked row not updated yet (not a drift)
    ours = TrackedOrder.objects.exclude(pk=victim.pk).filter(strategy_key=victim.strategy_key).first()
    sim.client(account).cancel_order(ours.exchange_order_id, "BTC/USDT")
    TrackedOrder.objects.filter(pk=ours.pk).update(status=TrackedOrderStatus.PENDING_CANCEL)

    # When reconciling
    run = reconcile_run(trigger="test")

    # Then exactly that order is reported, with the exchange's word on it
    [drift] = drifts_of(run)
    assert drift.kind == DriftKind.TRACKED_NOT_OPEN and drift.client_order_id == victim.client_order_id
    assert (drift.expected, drift.actual, drift.difference) == (victim.amount, 0, -victim.amount)
    assert "exchange says: canceled" in drift.detail
    assert run.ok is False and run.drift_count == 1

    # and with the lookup budget spent, both are reported (ours cannot be told apart without a lookup)
    monkeypatch.setattr(services, "MAX_LOOKUPS_PER_RUN", 0)
    unlooked = drifts_of(reconcile_run(trigger="test"))
    assert {(d.kind, d.client_order_id) for d in unlooked} == {
        (DriftKind.TRACKED_NOT_OPEN, victim.client_order_id), (DriftKind.TRACKED_NOT_OPEN, ours.client_order_id)}
    assert all("not looked up (budget of 0 lookups per run spent)" in d.detail for d in unlooked)


def test_cancel_behind_our_back_already_seen_by_the_tracker_is_reported_once(quoting, sim):
    account, order = quoting
    key = ids.strategy_key(order.order_id)
    # Given one order cancelled on the exchange by someone else, and one cancelled by a cancel intent of ours
    victim = cancel_behind_our_back(sim, account, order)
    ours = TrackedOrder.objects.filter(strategy_key=key).exclude(pk=victim.pk).first()
    IntentFactory(cancel=True, intent_id=f"{key}:1:cancel:{ours.client_order_id}", strategy_key=key, account=account,
                  client_order_id=ours.client_order_id, status=IntentStatus.DONE)
    sim.client(account).cancel_order(ours.exchange_order_id, "BTC/USDT")
    # and the tracker marking both cancelled before reconciliation looks
    track_exchange_orders(account_id=account.pk)
    assert set(TrackedOrder.objects.filter(pk__in=[victim.pk, ours.pk]).values_list("status", flat=True)) == {
        TrackedOrderStatus.CANCELLED}

    # When reconciling: only the one we did not cancel is reported, with what was left of it
    [drift] = drifts_of(reconcile_run(trigger="test"))
    assert (drift.kind, drift.client_order_id) == (DriftKind.CANCELLED_EXTERNALLY, victim.client_order_id)
    assert (drift.expected, drift.actual, drift.difference) == (victim.amount, 0, -victim.amount)
    assert "without a cancel of ours" in drift.detail

    # and the next run does not report it again
    assert reconcile_run(trigger="test").ok


def test_balance_changed_on_the_exchange_is_reported_until_accepted(quoting):
    # Given 125.5 USDT gone from the exchange account, nothing in the ledger explaining it
    before = sim_total("USDT")
    sim_shift_balance("USDT", Decimal("-125.5"))

    # When reconciling
    run = reconcile_run(trigger="test")

    # Then the change is reported: expected what the exchange held, actual what it holds now
    [drift] = drifts_of(run)
    assert (drift.kind, drift.asset) == (DriftKind.BALANCE_CHANGED, "USDT")
    assert (drift.expected, drift.actual, drift.difference) == (before, before - Decimal("125.5"), Decimal("-125.5"))
    # and again on the next run, until someone accepts the new difference
    assert reconcile_run(trigger="test").drift_count == 1
    accepted = reconcile_run(trigger="test", set_baseline=True)
    assert accepted.ok and accepted.baselines_set == 2
    assert reconcile_run(trigger="test").ok


def test_balance_rule_follows_the_ledger_positions_of_the_account(quoting):
    _, order = quoting
    # Given a fill seen on both sides: the exchange account bought 0.01 BTC for 300 USDT + 0.3 fee,
    # and the ledger settled it under the order's ref
    sim_shift_balance("BTC", Decimal("0.01"))
    sim_shift_balance("USDT", Decimal("-300.3"))
    ledger.settle_fill(user_id=order.user_id, exchange="binance", trade_id="rec-t1", side="buy",
                       base_asset_id=BTC, quote_asset_id=USDT, base_amount="0.01", quote_amount="300",
                       fee_amount="0.3", ref_type="mm_order", ref_id=str(order.order_id))
    # Then the difference did not change: no drift
    settled = reconcile_run(trigger="test")
    assert settled.ok, [d.detail for d in drifts_of(settled)]

    # Given the ledger releasing 0.1 BTC of the order while the exchange still holds it all
    ledger.unlock_funds(user_id=order.user_id, asset_id=BTC, amount="0.1", idempotency_key="rec-unlock",
                        ref_type="mm_order", ref_id=str(order.order_id))
    # Then that is a drift: the exchange holds 0.1 more than the ledger and the float explain
    [drift] = drifts_of(reconcile_run(trigger="test"))
    assert (drift.kind, drift.asset, drift.difference) == (DriftKind.BALANCE_CHANGED, "BTC", Decimal("0.1"))
    assert drift.actual == sim_total("BTC") and drift.expected == drift.actual - Decimal("0.1")


def test_real_fills_settled_by_the_tracker_and_a_stop_leave_no_drift(quoting, sim):
    account, order = quoting
    # Given the market trading through the bids, then through the asks, the tracker settling each fill
    for price in ("29800", "30240"):
        simulator_move_to("BTC/USDT", price)
        track_exchange_orders(account_id=account.pk)
    assert SimTrade.objects.filter(order__client_order_id__startswith=ids.client_order_prefix(
        order.order_id)).values("order__side").distinct().count() == 2  # both sides traded
    # Then exchange totals and ledger positions moved together, fees included
    filled = reconcile_run(trigger="test")
    assert filled.ok, [d.detail for d in drifts_of(filled)]

    # and after a stop (orders cancelled, funds released to the user in the ledger) nothing drifts either
    assert order_stop(order_id=order.order_id, by="test", wait_s=30) == "stopped"
    stopped = reconcile_run(trigger="test")
    assert stopped.ok, [d.detail for d in drifts_of(stopped)]


def place_with_prefix(account, order, suffix):
    client_order_id = ids.client_order_prefix(order.order_id) + suffix
    exchange_client(account_id=account.pk).create_order("BTC/USDT", "limit", "buy", "0.002", "25000",
                                                        {"newClientOrderId": client_order_id})
    return client_order_id


def test_untracked_open_order_with_a_session_prefix_is_an_orphan(quoting):
    account, order = quoting
    # Given an order on the exchange carrying the session's prefix that no tracked order knows
    orphan = place_with_prefix(account, order, "f" * 16)
    # and one whose create intent is still in flight (tracked as pending_create): not an orphan
    pending = place_with_prefix(account, order, "e" * 16)
    TrackedOrderFactory(client_order_id=pending, strategy_key=ids.strategy_key(order.order_id), account=account,
                        side="buy", price=Decimal("25000"), amount=Decimal("0.002"),
                        status=TrackedOrderStatus.PENDING_CREATE)

    # When reconciling
    run = reconcile_run(trigger="test")

    # Then only the orphan is reported, with its remaining amount and its owner
    [drift] = drifts_of(run)
    assert (drift.kind, drift.client_order_id, drift.symbol) == (DriftKind.UNTRACKED_OPEN, orphan, "BTC/USDT")
    assert (drift.expected, drift.actual, drift.difference) == (0, Decimal("0.002"), Decimal("0.002"))
    assert f"of order {order.order_id}" in drift.detail and "not tracked at all" in drift.detail


def test_orders_a_stopped_session_left_on_the_book_are_orphans(quoting):
    # Given a session marked stopped, its tracked orders cancelled in our books, all 4 still on the exchange
    account, order = quoting
    StrategySession.objects.filter(order=order).update(status=SessionStatus.STOPPED)
    key = ids.strategy_key(order.order_id)
    TrackedOrder.objects.filter(strategy_key=key).update(status=TrackedOrderStatus.CANCELLED)

    # When reconciling
    run = reconcile_run(trigger="test")

    # Then each is reported as an orphan of that order
    drifts = drifts_of(run)
    assert {d.kind for d in drifts} == {DriftKind.UNTRACKED_OPEN}
    assert {d.client_order_id for d in drifts} == set(
        TrackedOrder.objects.filter(strategy_key=key).values_list("client_order_id", flat=True))
    assert all("tracked as cancelled" in d.detail and str(order.order_id) in d.detail for d in drifts)


def test_exchange_errors_are_unreachable_never_orphans_or_missing_orders(quoting, sim):
    # Given a cancelled-behind-our-back order and an orphan, and the exchange answering 503 once
    account, order = quoting
    cancel_behind_our_back(sim, account, order)
    place_with_prefix(account, order, "f" * 16)
    simulator_set_faults(account_label="rt-sim-0", http_5xx=1)
    # and a second account misconfigured with an exchange ccxt does not know
    broken = ExchangeAccountFactory(exchange_id="no-such-exchange", label="rec-broken")
    PairFactory(exchange_account=broken)

    # When the open-orders read fails
    run = reconcile_run(trigger="test")

    # Then the market is reported unreachable and nothing is claimed about its orders,
    # the broken account is reported once, and the balances of the first are still checked
    market, connecting = drifts_of(run)
    assert (market.kind, market.account_id, market.symbol) == (DriftKind.UNREACHABLE, account.pk, "BTC/USDT")
    assert "ExchangeNotAvailable" in market.detail
    assert (connecting.kind, connecting.account_id) == (DriftKind.UNREACHABLE, broken.pk)
    assert "ccxt has no exchange 'no-such-exchange'" in connecting.detail
    assert run.balances_checked == 2
    MarketMakingPair.objects.filter(exchange_account=broken).delete()

    # Given the account pointing at a port nobody listens on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    ExchangeAccount.objects.filter(pk=account.pk).update(base_url=f"http://127.0.0.1:{closed_port}")
    exchange_clients_clear()
    # Then the account is reported once, unreachable, and its baselines stay as they were
    before = dict(BalanceBaseline.objects.values_list("asset", "difference"))
    [drift] = drifts_of(reconcile_run(trigger="test", set_baseline=True))
    assert drift.kind == DriftKind.UNREACHABLE and drift.account_id == account.pk and not drift.symbol
    assert dict(BalanceBaseline.objects.values_list("asset", "difference")) == before


@pytest.mark.django_db
def test_stuck_intent_is_reported_with_how_long():
    # Given three in-flight intents: lease ended 90 s ago, just now (within the grace), and still running
    account = ExchangeAccountFactory(label="rec-stuck")
    now = timezone.now()
    for n, lease_offset in enumerate((-90, -1, 30)):
        IntentFactory(cancel=True, intent_id=f"mm:x:stuck:{n}", strategy_key=f"mm:x{n}", account=account,
                      client_order_id=f"coid-{n}", status=IntentStatus.IN_FLIGHT,
                      lease_until=now + timedelta(seconds=lease_offset))

    # When reconciling
    run = reconcile_run(trigger="test")

    # Then only the first is stuck, reported with how long past its lease
    [drift] = drifts_of(run)
    assert (drift.kind, drift.intent_id, drift.client_order_id) == (DriftKind.STUCK_INTENT, "mm:x:stuck:0", "coid-0")
    assert drift.account_id == account.pk and drift.symbol == "BTC/USDT"
    assert Decimal(90) <= drift.difference < Decimal(90 + 30)
    assert f"grace {STUCK_INTENT_GRACE_S}s" in drift.detail
    assert run.intents_checked == 3 and run.accounts_checked == 0
