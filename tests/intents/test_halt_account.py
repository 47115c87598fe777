"""A ``halt`` error from the exchange (a revoked API key) halts its exchange account: nothing new is planned
or sent there, its open orders are left (or stopped, as configured), an operator sees it and resumes it
(intents.halt.account_halt, exchanges.halts); against the simulator over HTTP."""
import json
import logging
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from exchanges.models import ExchangeAccount, SimOrder
from exchanges.simulator.services import simulator_account_ensure
from intents import halt
from intents.executor import intents_execute
from intents.gates import claim_intents, sync_slots
from intents.hooks import accepting
from intents.ids import strategy_key
from intents.models import Intent, IntentStatus, TrackedOrder, TrackedOrderStatus
from strategy import cycle
from strategy.trackers import refresh_market_data
from strategy.models import SessionStatus, StrategySession
from tests.runtime_fixtures import make_running_order

pytestmark = pytest.mark.embedded

ROTATED = "rt-key-0-rotated"


def plan(account, *, after_s: float = 0):
    """A strategy cycle on fresh market data; its summary."""
    refresh_market_data(account_id=account.pk, symbol="BTC/USDT")
    summary = cycle.strategies_run_due(now=timezone.now() + timedelta(seconds=after_s), slot=int(after_s * 1000) + 1)
    sync_slots([account.pk])
    return summary


@pytest.fixture(autouse=True)
def eight_in_flight(settings):
    """Room for every session's create at once (slots are made by ``plan``'s sync_slots)."""
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8
    # The request budget takes a 401 for a rate limit and pauses the account's calls for seconds: not
    # what these tests are about (the halt reads the answer itself).
    settings.EXCHANGE_BUDGET_ENABLED = False


def run_claims():
    claims = claim_intents(max_claims=8)
    return claims, intents_execute(claims)


def open_on_exchange(account_label="rt-sim-0") -> int:
    return SimOrder.objects.filter(account__label=account_label, status__in=["NEW", "PARTIALLY_FILLED"]).count()


def revoke_key():
    """The exchange forgets the account's key (answers -2015 "Invalid API-key, IP, or permissions for
    action." with 401, as Binance does) and issues another one to its owner."""
    simulator_account_ensure(label="rt-sim-0", api_key=ROTATED, api_secret="rt-secret-0")


def test_a_revoked_key_halts_the_account_until_an_operator_resumes_it(sim, settings, caplog, capsys):
    # Given two running sessions on one account whose cycle wrote their creates, and the key revoked
    account = sim.accounts[0]
    orders = [make_running_order(account, layers=1) for _ in range(2)]
    keys = [strategy_key(o.order_id) for o in orders]
    assert plan(account).intents_written == 4
    revoke_key()

    # When their claimed creates run (one per session)
    with caplog.at_level(logging.INFO):
        claims, results = run_claims()

    # Then the first answer halted the account, with the exchange's reason, and raised the alert
    account.refresh_from_db()
    assert account.halted_at is not None
    assert "AuthenticationError" in account.halt_reason and "Invalid API-key" in account.halt_reason
    assert any(r.levelno == logging.CRITICAL and "event=account_halted" in r.getMessage() for r in caplog.records)
    # the create that met it failed; the other claimed create was checked again and never sent; the
    # creates not claimed yet are superseded: nothing of the account is left to send
    first, second = (Intent.objects.get(pk=c.intent_pk) for c in claims)
    assert (results[first.pk], results[second.pk]) == (IntentStatus.FAILED, IntentStatus.SUPERSEDED)
    assert "exchange account halted" in first.last_error and second.sent_at is None
    assert not Intent.objects.filter(account=account, status=IntentStatus.NEW).exists()
    assert open_on_exchange() == 0

    # And nothing new is planned, claimed or let through for its sessions
    assert plan(account, after_s=2).sessions_due == 0
    assert claim_intents(max_claims=8) == []
    assert accepting(keys) == set()
    # visible to the operator
    call_command("mm_status", "--json")
    status = json.loads(capsys.readouterr().out)
    assert [(a["label"], "Invalid API-key" in a["reason"]) for a in status["halted_accounts"]] == [("rt-0", True)]

    # When the operator saves the new key and resumes the account
    account.api_key = ROTATED
    account.save()
    call_command("mm_account", "resume", "rt-0")
    assert "rt-0: resumed" in capsys.readouterr().out

    # Then its sessions quote again
    account.refresh_from_db()
    assert account.halted_at is None and account.halt_reason == ""
    assert accepting(keys) == set(keys)
    summary = plan(account, after_s=3)
    assert (summary.sessions_due, summary.intents_written) == (2, 4)
    _, results = run_claims()
    assert set(results.values()) == {IntentStatus.DONE}
    assert open_on_exchange() == 2


@pytest.mark.parametrize("open_orders", ["leave", "cancel"])
def test_open_orders_are_left_or_stopped_as_configured(sim, settings, monkeypatch, open_orders):
    # Given a session quoting on the exchange (two orders open), and the setting
    settings.STRATEGY_HALT_OPEN_ORDERS = open_orders
    account = sim.accounts[0]
    quoting = make_running_order(account, layers=1)
    plan(account)
    run_claims()
    run_claims()
    assert open_on_exchange() == 2
    stops = []
    monkeypatch.setattr(halt, "enqueue_after_commit", lambda job, *args: stops.append((job, *args)))

    # When another session's create meets the revoked key (a client that authenticated before: ccxt
    # raises DDoSProtection for Binance's -2015 then, the 401 says what it is)
    make_running_order(account, layers=1)
    revoke_key()
    plan(account, after_s=0.5)
    run_claims()

    # Then the account is halted and the quoting session's orders are still open on the exchange and
    # tracked open; with "cancel" that order is stopped through the stop path (stop_mm), the other
    # (nothing open) is not
    account.refresh_from_db()
    assert account.halted_at is not None
    assert open_on_exchange() == 2
    assert set(TrackedOrder.objects.filter(strategy_key=strategy_key(quoting.order_id)).values_list(
        "status", flat=True)) == {TrackedOrderStatus.OPEN}
    if open_orders == "leave":
        assert stops == []
    else:
        assert [(job, order_id) for job, order_id, _ in stops] == [("stop_mm", str(quoting.order_id))]
        assert "exchange account halted" in stops[0][2]
        # recorded before it is queued: the session is stopping, so the sweeper finishes a lost stop_mm
        assert StrategySession.objects.get(order=quoting).status == SessionStatus.STOPPING
    # and the next cycles plan nothing for either session: no cancel of the orders left
    assert plan(account, after_s=3).sessions_due == 0


def test_the_send_check_still_costs_one_statement_with_a_halted_account(db, django_assert_num_queries):
    from tests.factories import ExchangeAccountFactory

    halted_account, other = ExchangeAccountFactory(label="halt-a"), ExchangeAccountFactory(label="halt-b")
    on_halted, on_other = make_running_order(halted_account), make_running_order(other)
    keys = [strategy_key(on_halted.order_id), strategy_key(on_other.order_id)]
    assert halt.account_halt(account_id=halted_account.pk, reason="test")
    assert not halt.account_halt(account_id=halted_account.pk, reason="again")  # the first reason is kept

    from strategy.selectors import sessions_accepting_orders
    with django_assert_num_queries(1):
        assert sessions_accepting_orders(keys) == {keys[1]}
    assert ExchangeAccount.objects.get(pk=halted_account.pk).halt_reason == "test"


def test_the_admin_action_resumes_a_halted_account(db, admin_client):
    from tests.factories import ExchangeAccountFactory

    account = ExchangeAccountFactory(label="halt-admin")
    halt.account_halt(account_id=account.pk, reason="AuthenticationError: revoked")
    page = admin_client.get("/admin/exchanges/exchangeaccount/?halted=yes")
    assert b"halt-admin" in page.content and b"AuthenticationError: revoked" in page.content

    response = admin_client.post("/admin/exchanges/exchangeaccount/",
                                 {"action": "resume_trading", "_selected_action": [account.pk]}, follow=True)

    assert b"Resumed: halt-admin" in response.content
    account.refresh_from_db()
    assert account.halted_at is None


def test_mm_account_refuses_an_unknown_label_or_none(db):
    with pytest.raises(CommandError, match="no exchange account labelled 'nope'") as refused:
        call_command("mm_account", "resume", "nope")
    assert refused.value.returncode == 2
    with pytest.raises(CommandError, match="needs the exchange account's LABEL"):
        call_command("mm_account", "resume")


def test_a_revoked_key_halts_an_okx_account_too(sim, settings):
    # Given a session on an account of the simulator's OKX dialect (ccxt's okx class) and its key revoked
    from exchanges.simulator.config import DEFAULT_API_PASSPHRASE
    from tests.factories import SimulatedExchangeAccountFactory

    account = SimulatedExchangeAccountFactory(label="okx-halt", exchange_id="okx", base_url=sim.base_url,
                                              api_passphrase=DEFAULT_API_PASSPHRASE)
    make_running_order(account, layers=1)
    assert plan(account).intents_written == 2
    simulator_account_ensure(label="sim-okx-halt", api_key="okx-rotated", api_secret="okx-secret")

    # When its create runs
    run_claims()

    # Then OKX's answer (50111 "Invalid OK-ACCESS-KEY", HTTP 401) halted it, and nothing of it is left to send
    account.refresh_from_db()
    assert account.halted_at is not None and "50111" in account.halt_reason
    assert not Intent.objects.filter(account=account, status=IntentStatus.NEW).exists()
    assert open_on_exchange("sim-okx-halt") == 0
