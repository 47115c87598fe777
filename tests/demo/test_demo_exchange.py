"""MM_DEMO_EXCHANGE: the demo's exchange account trades through the ccxt class it names (binance by default,
okx with the simulator's passphrase), made through exchanges.services.exchange_account_create, by
demo_setup (what `make run` calls) and by ``exchange_simulator --exchange-account``."""
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from demo.errors import DemoError
from demo.services import DEMO_ACCOUNT_LABEL, DEMO_USER_ID, demo_setup
from exchanges.clients import exchange_client, exchange_clients_clear
from exchanges.errors import MissingCapabilities
from exchanges.models import ExchangeAccount
from exchanges.simulator.config import DEFAULT_API_PASSPHRASE
from exchanges.simulator.services import simulator_account_ensure
from orders.models import MarketMakingOrder, MarketMakingPair

pytestmark = pytest.mark.embedded

KEY, SECRET = "demo-x-key", "demo-x-secret"


@pytest.fixture
def sim_account(db):
    simulator_account_ensure(label="demo-x", api_key=KEY, api_secret=SECRET,
                             balances={"USDT": Decimal("100"), "BTC": Decimal("0")})


def test_without_mm_demo_exchange_the_demo_account_is_binance_with_no_passphrase(sim_account, monkeypatch):
    monkeypatch.delenv("MM_DEMO_EXCHANGE", raising=False)

    result = demo_setup(exchange_url="http://127.0.0.1:9", api_key=KEY, api_secret=SECRET)

    account = ExchangeAccount.objects.get(label=DEMO_ACCOUNT_LABEL)
    assert (result.exchange_id, account.exchange_id, account.api_passphrase) == ("binance", "binance", "")
    assert MarketMakingPair.objects.get(pair_id=result.pair_id).exchange_id == "binance"


def test_mm_demo_exchange_okx_makes_an_okx_account_with_the_simulators_passphrase(sim_account, monkeypatch):
    # Given MM_DEMO_EXCHANGE=okx, as `MM_DEMO_EXCHANGE=okx make run` passes it
    monkeypatch.setenv("MM_DEMO_EXCHANGE", "okx")
    created = []
    import exchanges.management.commands.exchange_simulator as command

    real_create = command.exchange_account_create
    monkeypatch.setattr(command, "exchange_account_create", lambda **kw: created.append(kw) or real_create(**kw))

    # When the demo is set up
    result = demo_setup(exchange_url="http://127.0.0.1:9/", api_key=KEY, api_secret=SECRET)

    # Then its account was made through the capability-checking service, on okx, with the passphrase
    assert [kw["exchange_id"] for kw in created] == ["okx"]
    account = ExchangeAccount.objects.get(label=DEMO_ACCOUNT_LABEL)
    assert (account.exchange_id, account.api_passphrase, account.api_secret) == ("okx", DEFAULT_API_PASSPHRASE, SECRET)
    assert account.base_url == "http://127.0.0.1:9" and result.exchange_id == "okx"
    # and the pair and the demo order are on it, the order paid as before
    pair = MarketMakingPair.objects.get(pair_id=result.pair_id)
    assert (pair.exchange_id, pair.exchange_account_id) == ("okx", account.pk)
    assert result.order_created and result.snapshots == "snapshots: 2 new, 0 already known, 0 malformed"


def test_the_okx_demo_account_signs_its_requests_to_the_live_simulator(sim, monkeypatch):
    # Given the demo set up for okx against the simulator over HTTP (the account rt-key-0 holds 1000000 USDT)
    monkeypatch.setenv("MM_DEMO_EXCHANGE", "okx")
    exchange_clients_clear()
    demo_setup(exchange_url=sim.base_url, api_key="rt-key-0", api_secret="rt-secret-0")

    # Then our client of it is ccxt's okx, and its signed requests (passphrase included) are accepted
    client = exchange_client(account_id=ExchangeAccount.objects.get(label=DEMO_ACCOUNT_LABEL).pk)
    assert client.id == "okx" and "BTC/USDT" in client.markets
    assert client.fetch_balance()["USDT"]["free"] == 1000000
    exchange_clients_clear()


def test_an_exchange_the_simulator_does_not_speak_is_one_clear_error_and_nothing_is_made(sim_account):
    with pytest.raises(DemoError, match="speaks binance and okx, not 'kraken'"):
        demo_setup(exchange_url="http://127.0.0.1:9", api_key=KEY, api_secret=SECRET, exchange_id="kraken")

    assert not ExchangeAccount.objects.exists() and not MarketMakingOrder.objects.exists()


def test_switching_exchange_while_the_demo_order_is_running_is_refused(sim_account):
    # Given a demo order running on binance
    first = demo_setup(exchange_url="http://127.0.0.1:9", api_key=KEY, api_secret=SECRET, exchange_id="binance")
    MarketMakingOrder.objects.filter(order_id=first.order_id).update(state="running")

    # When the demo is set up for okx, then it refuses, naming the order and what to do
    with pytest.raises(DemoError, match=f"demo order {first.order_id} is running on binance: stop it first"):
        demo_setup(exchange_url="http://127.0.0.1:9", api_key=KEY, api_secret=SECRET, exchange_id="okx")
    assert ExchangeAccount.objects.get(label=DEMO_ACCOUNT_LABEL).exchange_id == "binance"

    # and once that order is stopped, the same account moves to okx with a new order
    MarketMakingOrder.objects.filter(order_id=first.order_id).update(state="stopped")
    second = demo_setup(exchange_url="http://127.0.0.1:9", api_key=KEY, api_secret=SECRET, exchange_id="okx")
    assert second.order_created and second.exchange_id == "okx"
    assert MarketMakingOrder.objects.filter(user_id=DEMO_USER_ID).count() == 2


def test_exchange_simulator_makes_the_account_for_mm_demo_exchange(db, monkeypatch):
    monkeypatch.setenv("SIM_API_KEY", "cmd-key")
    monkeypatch.setenv("SIM_API_SECRET", "cmd-secret")
    monkeypatch.setenv("MM_DEMO_EXCHANGE", "okx")

    call_command("exchange_simulator", "--port", "8000", "--setup-only", "--exchange-account", "web-sim",
                 stdout=StringIO())
    okx = ExchangeAccount.objects.get(label="web-sim")
    assert (okx.exchange_id, okx.api_passphrase, okx.base_url) == ("okx", DEFAULT_API_PASSPHRASE, "http://127.0.0.1:8000")

    # --exchange-id wins over the environment; the same row is updated (the passphrase dropped)
    call_command("exchange_simulator", "--port", "8001", "--setup-only", "--exchange-account", "web-sim",
                 "--exchange-id", "binance", stdout=StringIO())
    binance = ExchangeAccount.objects.get(label="web-sim")
    assert (binance.pk, binance.exchange_id, binance.api_passphrase) == (okx.pk, "binance", "")
    assert binance.base_url == "http://127.0.0.1:8001" and binance.api_secret == "cmd-secret"


def test_exchange_simulator_refuses_an_mm_demo_exchange_it_does_not_speak(db, monkeypatch):
    monkeypatch.setenv("MM_DEMO_EXCHANGE", "bybit")

    with pytest.raises(CommandError, match="speaks binance and okx, not 'bybit'"):
        call_command("exchange_simulator", "--port", "8000", "--setup-only", "--exchange-account", "web-sim",
                     stdout=StringIO())
    assert not ExchangeAccount.objects.exists()


def test_an_account_update_still_checks_the_exchanges_capabilities(db, monkeypatch):
    from exchanges.management.commands import exchange_simulator as command

    command.simulator_exchange_account_ensure(label="cap", exchange_id="okx", api_key="k", api_secret="s",
                                              base_url="http://127.0.0.1:9")
    monkeypatch.setattr("exchanges.services.capabilities_missing", lambda client: ["fetchMyTrades"])

    with pytest.raises(MissingCapabilities, match="fetchMyTrades"):
        command.simulator_exchange_account_ensure(label="cap", exchange_id="binance", api_key="k", api_secret="s",
                                                  base_url="http://127.0.0.1:9")
    assert ExchangeAccount.objects.get(label="cap").exchange_id == "okx"
