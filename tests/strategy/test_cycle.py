"""The trading runtime against the simulator: ticks quote ladders that never stack."""
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exchanges.simulator.services import simulator_advance, simulator_move_to
from intents.models import Intent, IntentStatus, TrackedOrder, TrackedOrderStatus
from intents import ids
from orders.models import MarketMakingOrder
from strategy import cycle
from strategy.models import StrategySession, TickLease
from strategy.tick import refill_run, tick_run
from strategy.trackers import refresh_market_data, track_exchange_orders

from tests.runtime_fixtures import make_running_order


def open_orders_of(client, order):
    prefix = ids.client_order_prefix(order.order_id)
    return [o for o in client.fetch_open_orders("BTC/USDT") if (o.get("clientOrderId") or "").startswith(prefix)]


def make_due():
    StrategySession.objects.update(next_run_at=timezone.now())


@pytest.fixture
def sync_driver(settings):
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "sync"
    settings.STRATEGY_TICK_SIZE_MS = 10
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 4


@pytest.mark.embedded
def test_sync_tick_quotes_a_two_layer_ladder(sim, sync_driver):
    account = sim.accounts[0]
    order = make_running_order(account, layers=2)

    outcome = tick_run()

    assert outcome.ran and outcome.sessions_run == 1
    orders = open_orders_of(sim.client(account), order)
    assert sorted(o["side"] for o in orders) == ["buy", "buy", "sell", "sell"]
    tracked = TrackedOrder.objects.filter(strategy_key=ids.strategy_key(order.order_id))
    assert sorted(t.status for t in tracked) == [TrackedOrderStatus.OPEN] * 4
    assert {t.client_order_id for t in tracked} == {o["clientOrderId"] for o in orders}
    assert Intent.objects.filter(status=IntentStatus.DONE).count() == 4


# PostgreSQL only: 40 ticks over HTTP (~40 s on SQLite) repeat the cycle's SQLite paths that the tests around
# it and test_cycle_order_params.py run there.
# Every tick is a refresh run (refreshed_at cleared), so each one replaces the ladder at the moved price: 40
# replacements whatever the machine's speed. (It was 100 ticks with a refresh every 1 s: on an idle machine a
# replacement every second or third tick, the others refill runs with no free slot, for 60-170 s of the pass.)
def test_ladders_never_stack_while_the_price_moves(sim, sync_driver):
    account = sim.accounts[0]
    order = make_running_order(account, layers=2, spread="0.0005")
    client = sim.client(account)
    peak = 0
    for step in range(40):
        StrategySession.objects.update(next_run_at=timezone.now(), refreshed_at=None)
        tick_run()
        peak = max(peak, len(open_orders_of(client, order)))
        simulator_advance("BTC/USDT", 3)
        time.sleep(0.011)
    # two layers a side were quoted; replacements may overlap the orders they replace for a moment (at
    # most the leaving order and its replacement per slot), and the sync tick confirms its cancels inline
    assert 4 <= peak <= 8
    assert len(open_orders_of(client, order)) <= 4
    # the ladder really was replaced as the price moved
    assert Intent.objects.filter(kind="cancel", status=IntentStatus.DONE).count() > 0


@pytest.mark.embedded
def test_execute_intents_false_processes_without_exchange_calls(sim, sync_driver, settings):
    settings.STRATEGY_EXECUTE_INTENTS = False
    account = sim.accounts[0]
    order = make_running_order(account, layers=1)

    tick_run()

    assert open_orders_of(sim.client(account), order) == []
    intents = list(Intent.objects.all())
    assert len(intents) == 2 and all(i.status == IntentStatus.DONE for i in intents)
    assert all("STRATEGY_EXECUTE_INTENTS=false" in i.last_error for i in intents)


@pytest.mark.embedded
def test_second_tick_in_the_same_period_is_skipped_and_counted(sim, settings):
    settings.STRATEGY_TICK_SIZE_MS = 60_000
    first = tick_run()
    second = tick_run()
    assert first.ran and not second.ran
    assert TickLease.objects.get().ticks_skipped == 1


@pytest.mark.embedded
def test_stale_market_data_skips_quoting(sim, sync_driver):
    account = sim.accounts[0]
    make_running_order(account, layers=1)
    cycle.strategies_run_due(now=timezone.now())  # no market data stored yet
    assert Intent.objects.count() == 0


def _many_running_orders(account, n):
    from datetime import timedelta

    from ledger.models import LedgerEntry, Posting
    from orders.models import MarketMakingOrder, MarketMakingPair, OrderState
    from strategy.models import MarketData, SessionStatus

    from tests.runtime_fixtures import BTC, USDT

    pair = MarketMakingPair.objects.create(exchange_account=account, symbol="BTC/USDT", exchange_id="binance",
                                           base_asset_id=BTC, quote_asset_id=USDT, base_exchange_asset="BTC",
                                           quote_exchange_asset="USDT")
    now = timezone.now()
    orders = MarketMakingOrder.objects.bulk_create([
        MarketMakingOrder(user_id=f"qc-user-{i}", pair=pair, exchange_account=account, state=OrderState.RUNNING,
                          memo="m", base_amount=Decimal("1"), quote_amount=Decimal("40000"),
                          bid_spread=Decimal("0.002"), ask_spread=Decimal("0.002"), order_amount=Decimal("0.01"),
                          order_refresh_time=5, number_of_layers=2, expires_at=now + timedelta(hours=1))
        for i in range(n)
    ])
    StrategySession.objects.bulk_create([
        StrategySession(order=o, status=SessionStatus.RUNNING, cadence_s=5, next_run_at=now, started_at=now)
        for o in orders
    ])
    # Each order's locked position, written as the ledger would (one entry, two postings per asset).
    entries = LedgerEntry.objects.bulk_create([
        LedgerEntry(idempotency_key=f"qc-lock:{o.order_id}:{a}", operation="lock_funds", user_id=o.user_id,
                    asset_id=a, amount=amount, ref_type="mm_order", ref_id=str(o.order_id), payload_hash="-",
                    available_after=0, locked_after=amount)
        for o in orders for a, amount in ((BTC, Decimal("1")), (USDT, Decimal("40000")))])
    Posting.objects.bulk_create([
        Posting(entry=e, account=account, user_id=e.user_id, asset_id=e.asset_id, amount=sign * e.amount)
        for e in entries for account, sign in (("user_available", -1), ("user_locked", 1))])
    MarketData.objects.update_or_create(account=account, symbol="BTC/USDT", defaults=dict(
        best_bid=Decimal("29990"), best_ask=Decimal("30010"), price_tick=Decimal("0.01"),
        amount_step=Decimal("0.00001"), min_amount=Decimal("0.00001"), min_notional=Decimal("5"), fetched_at=timezone.now()))


@pytest.mark.embedded
@pytest.mark.parametrize("sessions", [10, 1000])
def test_strategy_cycle_query_count_does_not_grow_with_sessions(db, sessions, django_assert_max_num_queries):
    from exchanges.models import ExchangeAccount

    account = ExchangeAccount.objects.create(exchange_id="binance", label="qc")
    _many_running_orders(account, sessions)

    with django_assert_max_num_queries(12):
        summary = cycle.strategies_run_due(now=timezone.now(), slot=1)

    assert summary.sessions_run == sessions
    assert Intent.objects.count() == sessions * 4


@pytest.mark.embedded
def test_create_cancelled_by_a_later_cycle_before_it_was_sent_is_never_sent(sim, sync_driver):
    from intents.executor import intent_execute
    from intents.gates import claim_intents, sync_slots

    # Given a create intent already claimed (in flight) when the next cycle decides to cancel its order
    account = sim.accounts[0]
    order = make_running_order(account, layers=1)
    from strategy.trackers import refresh_market_data

    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    cycle.strategies_run_due(now=timezone.now(), slot=1)
    sync_slots([account.pk])
    claims = claim_intents(max_claims=1)
    [claim] = claims
    intent = Intent.objects.get(pk=claim.intent_pk)
    TrackedOrder.objects.filter(client_order_id=intent.client_order_id).update(status=TrackedOrderStatus.PENDING_CANCEL)

    # When the create is executed
    outcome = intent_execute(intent_pk=claim.intent_pk, token=claim.token)

    # Then it is superseded, its order cancelled (not lost), and nothing reached the exchange
    assert outcome == IntentStatus.SUPERSEDED
    assert TrackedOrder.objects.get(client_order_id=intent.client_order_id).status == TrackedOrderStatus.CANCELLED
    assert open_orders_of(sim.client(account), order) == []


@pytest.mark.embedded
def test_ticks_keep_running_after_the_tick_period_grows(db, settings):
    # Given ticks that ran with a 500 ms period
    settings.STRATEGY_TICK_SIZE_MS = 500
    start = timezone.now()
    assert tick_run(now=start).ran

    # When the period becomes 60 s, the next period's tick still runs (a period number would have fallen)
    settings.STRATEGY_TICK_SIZE_MS = 60_000
    from datetime import timedelta

    later = start + timedelta(seconds=61)
    assert tick_run(now=later).ran
    assert not tick_run(now=later).ran


@pytest.mark.embedded
def test_a_filled_level_is_refilled_on_the_next_tick_not_at_the_next_refresh(sim, sync_driver):
    # given a one-layer ladder on the book whose refresh is an hour away and no wait after a fill
    account = sim.accounts[0]
    order = make_running_order(account, layers=1, refresh=3600)
    MarketMakingOrder.objects.filter(pk=order.pk).update(filled_order_delay=0)
    start = timezone.now()
    tick_run(now=start)
    client = sim.client(account)
    buy = next(o for o in open_orders_of(client, order) if o["side"] == "buy")

    # when the market trades down through our buy
    fills = simulator_move_to("BTC/USDT", Decimal(str(buy["price"])) - Decimal("5"))
    assert any(f.order.client_order_id == buy["clientOrderId"] for f in fills if f.order_id)

    # then the tick that sees the fill wakes the session, and the next one quotes a new buy
    tick_run(now=start + timedelta(seconds=1))
    assert TrackedOrder.objects.get(client_order_id=buy["clientOrderId"]).status == TrackedOrderStatus.FILLED
    tick_run(now=start + timedelta(seconds=2))
    sides = sorted(o["side"] for o in open_orders_of(client, order))
    assert sides == ["buy", "sell"]
    # and the order tracker's next sample sees both sides quoted
    tick_run(now=start + timedelta(seconds=3))
    assert StrategySession.objects.get(order=order).two_sided_samples >= 1


@pytest.mark.embedded
def test_a_refill_run_between_ticks_quotes_a_filled_level_at_once(sim, sync_driver):
    # given a one-layer ladder on the book, no wait after a fill, and the order tracker (a worker's task,
    # between ticks) that saw its buy fill
    account = sim.accounts[0]
    order = make_running_order(account, layers=1, refresh=3600)
    MarketMakingOrder.objects.filter(pk=order.pk).update(filled_order_delay=0)
    tick_run(now=timezone.now())
    client = sim.client(account)
    buy = next(o for o in open_orders_of(client, order) if o["side"] == "buy")
    simulator_move_to("BTC/USDT", Decimal(str(buy["price"])) - Decimal("5"))
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    track_exchange_orders(account_id=account.pk)
    assert TrackedOrder.objects.get(client_order_id=buy["clientOrderId"]).status == TrackedOrderStatus.FILLED

    # when a refill run comes before the next tick (a worker sends one when a session is woken)
    outcome = refill_run()

    # then the buy is quoted again at once, under an id no tick's intent can have
    assert outcome.ran and outcome.intents_written == 1
    assert outcome.slot % 10 != 0
    assert sorted(o["side"] for o in open_orders_of(client, order)) == ["buy", "sell"]


@pytest.mark.embedded
def test_a_refill_run_is_skipped_while_another_cycle_runs(sim, sync_driver):
    import threading

    from django.db import connection

    from strategy.tick import cycle_lock

    held, release = threading.Event(), threading.Event()

    def another_cycle():
        try:
            with cycle_lock(wait=True):
                held.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=another_cycle)
    thread.start()
    try:
        assert held.wait(10)
        assert not refill_run().ran
    finally:
        release.set()
        thread.join()
    assert refill_run().ran


@pytest.mark.embedded
def test_a_session_on_the_last_trade_price_quotes_around_it(sim, sync_driver):
    # given an order priced on the last trade (the market data tracker then reads the ticker too)
    account = sim.accounts[0]
    order = make_running_order(account, layers=1, spread="0.001")
    MarketMakingOrder.objects.filter(pk=order.pk).update(price_source_type="last_price")

    tick_run()

    # then the stored market has the exchange's last price and the ladder is around it
    from strategy.models import MarketData

    last = Decimal(str(sim.client(account).fetch_ticker("BTC/USDT")["last"]))
    assert MarketData.objects.get(account=account, symbol="BTC/USDT").last_price == last
    prices = {o["side"]: Decimal(str(o["price"])) for o in open_orders_of(sim.client(account), order)}
    assert set(prices) == {"buy", "sell"}
    assert abs(prices["buy"] - last * Decimal("0.999")) < Decimal("0.02")
    assert abs(prices["sell"] - last * Decimal("1.001")) < Decimal("0.02")


@pytest.mark.embedded
def test_an_order_whose_trades_add_up_to_its_amount_is_filled_without_a_lookup(sim, sync_driver):
    from exchanges.simulator.services import simulator_set_faults

    # given a one-layer ladder on the book, then the market trading down through the whole buy
    account = sim.accounts[0]
    order = make_running_order(account, layers=1, refresh=3600)
    tick_run()
    buy = next(o for o in open_orders_of(sim.client(account), order) if o["side"] == "buy")
    simulator_move_to("BTC/USDT", Decimal(str(buy["price"])) - Decimal("5"))
    # and the exchange answering the next order lookup "unknown order" (a lookup would make it lost)
    simulator_set_faults(account_label="rt-sim-0", unknown_order=1)
    try:
        # when the order tracker runs
        counts = track_exchange_orders(account_id=account.pk)
    finally:
        simulator_set_faults(account_label="rt-sim-0")

    # then its recorded trades say it filled: no lookup was made
    tracked = TrackedOrder.objects.get(client_order_id=buy["clientOrderId"])
    assert (tracked.status, tracked.filled) == (TrackedOrderStatus.FILLED, tracked.amount)
    assert counts["lost"] == 0 and counts["fills"] >= 1
