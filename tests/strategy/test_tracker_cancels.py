"""An order that left the book while our cancel of it is on its way is left to that cancel's answer: the order
tracker does not look it up (a request each; a refresh cancels every drifted order of every session). Without a
cancel on its way it is looked up as before."""
import pytest
from django.utils import timezone

from intents import tracked_orders
from intents.executor import intents_execute
from intents.gates import claim_intents, sync_slots
from intents.models import Intent, IntentKind, IntentStatus, TrackedOrder
from strategy import cycle, trackers
from strategy.trackers import refresh_market_data, track_exchange_orders
from tests.runtime_fixtures import make_running_order

pytestmark = pytest.mark.embedded


def _execute_all():
    for _ in range(4):
        claims = claim_intents(max_claims=8)
        if not claims:
            return
        intents_execute(claims)


def _quoted_then_refreshing(sim, settings):
    """One layer on the book; then a refresh cancels both orders (their cancel intents written, not sent),
    and the buy's cancel reaches the exchange while its answer is not recorded yet (here: cancelled by hand)."""
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8
    account = sim.accounts[0]
    make_running_order(account, layers=1, refresh=30)
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    cycle.strategies_run_due(now=timezone.now(), slot=1)
    sync_slots([account.pk])
    _execute_all()
    buy = TrackedOrder.objects.get(side="buy")
    assert buy.status == "open"
    tracked_orders.cancel_requested([buy.client_order_id])
    Intent.objects.create(intent_id=f"test:cancel:{buy.client_order_id}", strategy_key=buy.strategy_key,
                          kind=IntentKind.CANCEL, symbol=buy.symbol, side=buy.side, client_order_id=buy.client_order_id,
                          account_id=account.pk, layer=buy.layer)
    sim.client(account).cancel_order(buy.exchange_order_id, "BTC/USDT")
    return account, buy


@pytest.fixture
def lookups(monkeypatch):
    seen = []
    real = trackers.fetch_by_client_id
    monkeypatch.setattr(trackers, "fetch_by_client_id",
                        lambda client, symbol, client_order_id: seen.append(client_order_id) or real(
                            client, symbol, client_order_id))
    return seen


def test_an_order_gone_while_our_cancel_is_on_its_way_is_not_looked_up(sim, settings, lookups):
    account, buy = _quoted_then_refreshing(sim, settings)

    counts = track_exchange_orders(account_id=account.pk)

    # No lookup; the row waits for the cancel's answer, which the executor records
    assert lookups == [] and counts["errors"] == 0
    buy.refresh_from_db()
    assert buy.status == "pending_cancel"
    _execute_all()
    buy.refresh_from_db()
    assert buy.status == "cancelled"
    assert Intent.objects.get(kind=IntentKind.CANCEL).status == IntentStatus.DONE


def test_without_a_cancel_on_its_way_a_gone_order_is_looked_up(sim, settings, lookups):
    account, buy = _quoted_then_refreshing(sim, settings)
    Intent.objects.filter(kind=IntentKind.CANCEL).update(status=IntentStatus.FAILED)  # its cancel gave up

    track_exchange_orders(account_id=account.pk)

    assert lookups == [buy.client_order_id]
    buy.refresh_from_db()
    assert buy.status == "cancelled"
