"""Quotes never take: every create is post-only where the exchange has it (ccxt's unified postOnly).
When the market moves through a quote between the strategy's read of the book and the create reaching
the exchange, the exchange refuses it instead of filling it at a stale price; the executor records that
without an error, and the session prices the slot again as soon as a newer book of its market is stored,
not at once from the same book (which would be refused, or on an exchange without post-only filled,
again)."""
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from exchanges.models import SimTrade
from exchanges.simulator.services import simulator_move_to
from intents import executor, ids
from intents.executor import intents_execute
from intents.gates import claim_intents, sync_slots
from intents.models import Intent, IntentKind, IntentStatus, TrackedOrder
from strategy import cycle
from strategy.models import RefillMark, StrategySession
from strategy.services import sessions_wake_on_market_data
from strategy.trackers import refresh_market_data
from tests.runtime_fixtures import make_running_order

pytestmark = pytest.mark.embedded


def _quote_then_market_moves_down(sim, settings):
    """One layer quoted at 30000 +- 0.2 % (a buy at 29940, a sell at 30060); then, before the creates
    leave, the market falls to 29800: the buy now sits above the best ask."""
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "worker"
    settings.STRATEGY_REFILL_AT_ONCE = True
    account = sim.accounts[0]
    order = make_running_order(account, layers=1, refresh=30)
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    assert cycle.strategies_run_due(now=timezone.now(), slot=1).intents_written == 2
    sync_slots([account.pk])
    simulator_move_to("BTC/USDT", "29800")
    best_ask = sim.client(account).fetch_order_book("BTC/USDT", limit=5)["asks"][0][0]
    buy = Intent.objects.get(kind=IntentKind.CREATE, side="buy")
    assert buy.price > best_ask  # the strategy's price is now through the market
    return account, order, buy


def _execute_all():
    results = {}
    for _ in range(3):
        claims = claim_intents(max_claims=8)
        if not claims:
            break
        results |= intents_execute(claims)
    return results


def _waits_for_a_newer_book(order, before, after):
    """The session waits for its market's next book: marked, its schedule untouched, no refill run asked for."""
    session = StrategySession.objects.get(order=order)
    assert before <= session.market_data_after <= after
    assert session.next_run_at > after + timedelta(seconds=20)  # its refresh (30 s), not now
    assert RefillMark.objects.get(pk=1).requested_at is None
    return session


def test_a_quote_the_market_moved_through_is_refused_not_filled_and_priced_again_next_tick(sim, settings, caplog):
    account, order, buy = _quote_then_market_moves_down(sim, settings)
    RefillMark.objects.update_or_create(pk=1, defaults={"requested_at": None})
    before = timezone.now()

    with caplog.at_level(logging.INFO, logger="intents.executor"):
        results = _execute_all()
    after = timezone.now()

    # The buy was refused by the exchange (post-only), recorded without an error; the sell rests
    buy.refresh_from_db()
    assert results[buy.pk] == IntentStatus.FAILED and "post-only" in buy.last_error
    assert TrackedOrder.objects.get(client_order_id=buy.client_order_id).status == "failed"
    sell = Intent.objects.get(kind=IntentKind.CREATE, side="sell")
    assert results[sell.pk] == IntentStatus.DONE
    open_ids = {o["clientOrderId"] for o in sim.client(account).fetch_open_orders("BTC/USDT")}
    assert open_ids == {sell.client_order_id}
    # Nothing traded: no fill at the stale price
    prefix = ids.client_order_prefix(order.order_id)
    assert not SimTrade.objects.filter(order__client_order_id__startswith=prefix).exists()
    assert not sim.client(account).fetch_my_trades("BTC/USDT")
    assert "event=create_would_take" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    # The session does not run again at once (it would read the same book) but once a newer one is stored
    _waits_for_a_newer_book(order, before, after)
    # A book whose read began before the refusal is not newer: it wakes nothing
    assert sessions_wake_on_market_data(account_id=account.pk, symbol="BTC/USDT", read_from=before) == 0
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    session = StrategySession.objects.get(order=order)
    assert session.market_data_after is None and session.next_run_at <= timezone.now()
    assert RefillMark.objects.get(pk=1).requested_at is not None  # a refill run is on its way


def test_the_newer_book_quotes_the_refused_level_again_through_the_moved_market(sim, settings):
    account, order, buy = _quote_then_market_moves_down(sim, settings)
    _execute_all()

    # The market data tracker reads the moved book; the woken session runs (the refill run's cycle)
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    assert cycle.strategies_run_due(now=timezone.now(), slot=2).intents_written == 1
    sync_slots([account.pk])
    _execute_all()

    again = Intent.objects.filter(kind=IntentKind.CREATE, side="buy").exclude(pk=buy.pk).get()
    assert again.status == IntentStatus.DONE and again.price < 29800
    book = sim.client(account).fetch_open_orders("BTC/USDT")
    assert {o["side"] for o in book} == {"buy", "sell"}
    assert not sim.client(account).fetch_my_trades("BTC/USDT")


def test_on_an_exchange_without_post_only_a_quote_filled_on_arrival_waits_for_a_newer_book(sim, settings,
                                                                                             monkeypatch):
    # An exchange whose ccxt lists no post-only time in force: the create is a plain limit order
    monkeypatch.setattr(executor, "post_only", lambda client: False)
    account, order, buy = _quote_then_market_moves_down(sim, settings)
    RefillMark.objects.update_or_create(pk=1, defaults={"requested_at": None})
    before = timezone.now()

    _execute_all()
    after = timezone.now()

    # It took: filled on arrival at the stale price (what post-only prevents where the exchange has it)
    assert TrackedOrder.objects.get(client_order_id=buy.client_order_id).status == "filled"
    # and its session is not woken at once, where it would price from the same book and take again
    _waits_for_a_newer_book(order, before, after)
