"""The executor checks a create against the market's rules (exchanges.precision) before it leaves: an
order below the market's minimum or on a symbol the exchange does not list is one clear error,
recorded on the intent, and nothing is sent."""
from decimal import Decimal

import pytest
from django.utils import timezone

from intents.executor import intents_execute
from intents.gates import claim_intents, sync_slots
from intents.models import Intent, IntentKind, IntentStatus, TrackedOrder
from strategy import cycle
from strategy.trackers import refresh_market_data
from tests.runtime_fixtures import make_running_order

pytestmark = pytest.mark.embedded


def _claimed_creates(sim, settings):
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8
    account = sim.accounts[0]
    make_running_order(account, layers=1)
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    assert cycle.strategies_run_due(now=timezone.now(), slot=1).intents_written == 2
    sync_slots([account.pk])
    return account


def _open_client_ids(sim, account):
    return {o["clientOrderId"] for o in sim.client(account).fetch_open_orders("BTC/USDT")}


def test_a_create_below_the_markets_minimum_fails_with_a_clear_error_and_is_never_sent(sim, settings):
    # Given two creates of a session, one of them shrunk below the market's minimum amount (0.00001 BTC)
    account = _claimed_creates(sim, settings)
    small = Intent.objects.filter(kind=IntentKind.CREATE).order_by("pk").first()
    Intent.objects.filter(pk=small.pk).update(amount=Decimal("0.000001"))

    # When the executor runs them (one in flight per session: the small one first)
    results = intents_execute(claim_intents(max_claims=8))
    results |= intents_execute(claim_intents(max_claims=8))

    # Then the small one failed, saying why, and only the other reached the exchange
    small.refresh_from_db()
    assert results[small.pk] == IntentStatus.FAILED and small.status == IntentStatus.FAILED
    assert "OrderRefused" in small.last_error and "below the minimum" in small.last_error
    other = Intent.objects.exclude(pk=small.pk).get(kind=IntentKind.CREATE)
    assert results[other.pk] == IntentStatus.DONE
    assert _open_client_ids(sim, account) == {other.client_order_id}
    assert TrackedOrder.objects.get(client_order_id=small.client_order_id).status == "failed"


def test_a_create_on_a_symbol_the_exchange_does_not_list_fails_and_is_never_sent(sim, settings):
    account = _claimed_creates(sim, settings)
    unlisted = Intent.objects.filter(kind=IntentKind.CREATE).order_by("pk").first()
    Intent.objects.filter(pk=unlisted.pk).update(symbol="DOGE/USDT")

    results = intents_execute(claim_intents(max_claims=8))

    unlisted.refresh_from_db()
    assert results[unlisted.pk] == IntentStatus.FAILED
    assert "UnknownMarket" in unlisted.last_error and "DOGE/USDT" in unlisted.last_error
    assert unlisted.client_order_id not in _open_client_ids(sim, account)
