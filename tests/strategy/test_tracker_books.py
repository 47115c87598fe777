"""The book of a traded market is read by its account's order tracker, after the orders and fills: a session
woken by a fill prices its refill from a book read after that fill was seen (in a fast market, a book read
beside the order tracker could predate the fill and price the refill through the market). Still one book
request per market per tick; a market no tracked account trades on (a price source) keeps its own task."""
import pytest
from django.utils import timezone

from exchanges.simulator.services import simulator_move_to
from intents.executor import intents_execute
from intents.gates import claim_intents, sync_slots
from intents.models import Intent, IntentKind, IntentStatus, TrackedOrder
from mmproject import jobs
from strategy import cycle
from strategy.models import MarketData, StrategySession
from strategy.tick import run_trackers
from strategy.trackers import refresh_market_data, track_exchange_orders
from tests.runtime_fixtures import make_running_order

pytestmark = pytest.mark.embedded


def _execute_all():
    for _ in range(4):
        claims = claim_intents(max_claims=8)
        if not claims:
            return
        intents_execute(claims)


def test_the_fan_out_hands_each_traded_market_to_its_accounts_order_tracker(monkeypatch, settings):
    sent = []
    monkeypatch.setattr(jobs, "send", lambda name, args=(), **kw: sent.append((name, list(args))))

    run_trackers([(1, "BTC/USDT"), (1, "ETH/USDT"), (2, "BTC/USDT")], [1], inline=False,
                 last_price={(1, "ETH/USDT")})

    # Account 1's two markets are read by its order tracker (ETH/USDT with its last price); account 2's market,
    # a price source no tracked account trades on, by a market data task of its own
    assert sorted(sent) == [("refresh_market_data", [2, "BTC/USDT", False]),
                            ("track_exchange_orders", [1, [["BTC/USDT", False], ["ETH/USDT", True]]])]


def test_a_fill_wakes_its_session_with_a_book_read_after_the_fill_was_seen(sim, settings):
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8
    account = sim.accounts[0]
    order = make_running_order(account, layers=1, refresh=30)
    type(order).objects.filter(pk=order.pk).update(filled_order_delay=0)  # refill at once after a fill
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    assert cycle.strategies_run_due(now=timezone.now(), slot=1).intents_written == 2
    sync_slots([account.pk])
    _execute_all()
    buy = TrackedOrder.objects.get(side="buy")
    assert buy.status == "open"

    # The market falls through the bid (29940); the account's tracker runs with the market's book
    simulator_move_to("BTC/USDT", "29800")
    counts = track_exchange_orders(account_id=account.pk, books=[("BTC/USDT", False)])

    buy.refresh_from_db()
    book = MarketData.objects.get(account_id=account.pk, symbol="BTC/USDT")
    assert counts["errors"] == 0 and buy.status == "filled"
    # The stored book is the fallen market's, read after the fill was recorded, and the session is due now
    assert book.fetched_at >= buy.last_fill_at and book.best_ask < buy.price
    session = StrategySession.objects.get(order=order)
    assert session.next_run_at <= timezone.now()
    # so the refill is priced below the market, and rests
    assert cycle.strategies_run_due(now=timezone.now(), slot=2).intents_written == 1
    sync_slots([account.pk])
    _execute_all()
    refill = TrackedOrder.objects.filter(side="buy").exclude(pk=buy.pk).get()
    assert refill.status == "open" and refill.price < book.best_ask


def test_the_tracker_task_refills_the_sessions_it_woke_on_its_own_process(sim, settings, monkeypatch):
    # The worker driver: a refill run asked for by message would queue behind the other accounts' trackers
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "worker"
    settings.STRATEGY_REFILL_AT_ONCE = True
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8
    account = sim.accounts[0]
    order = make_running_order(account, layers=1, refresh=30)
    type(order).objects.filter(pk=order.pk).update(filled_order_delay=0)
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    cycle.strategies_run_due(now=timezone.now(), slot=1)
    sync_slots([account.pk])
    _execute_all()
    simulator_move_to("BTC/USDT", "29800")
    sent = []
    monkeypatch.setattr(jobs, "send", lambda name, args=(), **kw: sent.append(name))

    from strategy.tasks import track_exchange_orders_task
    track_exchange_orders_task(account.pk, [["BTC/USDT", False]])

    # The filled buy's slot is planned again in the task itself, its intents dispatched
    assert TrackedOrder.objects.get(side="buy").status == "filled"
    buys = Intent.objects.filter(kind=IntentKind.CREATE, side="buy").order_by("pk")
    assert [b.status for b in buys] == [IntentStatus.DONE, IntentStatus.NEW]
    assert "dispatch_intents" in sent
