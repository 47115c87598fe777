"""The ccxt client factory: one instance per account per process, markets loaded once, loopback only;
credentials, sandbox and options from the one table of exchange-specific options."""
import ccxt
import pytest

from exchanges.clients import build_exchange_client, exchange_client, point_urls
from exchanges.dialects import (
    EXCHANGE_OPTIONS,
    LOOKUP_FETCH_ORDER,
    LOOKUP_ORDER_LISTS,
    client_id_lookup,
    receive_window_s,
    trades_page,
)
from exchanges.errors import AccountDisabled, ExchangeSetupError
from exchanges.models import ExchangeAccount, SimMarket
from tests.factories import ExchangeAccountFactory

pytestmark = pytest.mark.embedded


def _all_urls(urls):
    if isinstance(urls, dict):
        return [u for value in urls.values() for u in _all_urls(value)]
    return [urls] if isinstance(urls, str) else []


def test_every_api_url_points_at_the_base_url():
    urls = point_urls(ccxt.binance().urls["api"], "http://127.0.0.1:8765")

    assert urls["public"] == "http://127.0.0.1:8765/api/v3" and urls["sapi"] == "http://127.0.0.1:8765/sapi/v1"
    assert all(url.startswith("http://127.0.0.1:8765/") for url in _all_urls(urls))


def test_one_client_per_account_rate_limited_and_rebuilt_when_the_account_changes(simulator):
    first = exchange_client(account_id=simulator.account.pk)

    assert exchange_client(account_id=simulator.account.pk) is first
    assert first.enableRateLimit is True and "BTC/USDT" in first.markets

    simulator.account.api_secret = "rotated-secret"
    simulator.account.save()
    assert exchange_client(account_id=simulator.account.pk) is not first


def test_markets_are_loaded_once_and_shared_by_accounts_on_one_endpoint(simulator):
    other = ExchangeAccountFactory(api_key="k2", api_secret="s2", base_url=simulator.base_url)
    first = exchange_client(account_id=simulator.account.pk)
    SimMarket.objects.all().delete()  # from now on exchangeInfo lists no market at all

    second = exchange_client(account_id=other.pk)

    assert second is not first and second.markets["BTC/USDT"]["id"] == "BTCUSDT"


def test_a_disabled_account_gets_no_client(simulator):
    ExchangeAccount.objects.filter(pk=simulator.account.pk).update(enabled=False)

    with pytest.raises(AccountDisabled):
        exchange_client(account_id=simulator.account.pk)


def test_passphrase_and_uid_reach_ccxt_under_its_own_names():
    account = ExchangeAccount(exchange_id="okx", label="okx-main", api_key="k", uid="u-17")
    account.api_secret, account.api_passphrase = "s", "p4ss"

    client = build_exchange_client(account, load_markets=False)

    assert (client.apiKey, client.secret, client.password, client.uid) == ("k", "s", "p4ss", "u-17")
    assert client.options["fetchMarkets"]["types"] == ["spot"]


def test_a_sandbox_account_talks_to_the_exchanges_test_urls_and_base_url_still_wins():
    account = ExchangeAccount(exchange_id="binance", label="testnet", sandbox=True)
    sandboxed = build_exchange_client(account, load_markets=False)
    account.base_url = "http://127.0.0.1:8765"
    pointed = build_exchange_client(account, load_markets=False)

    assert sandboxed.isSandboxModeEnabled and sandboxed.urls["api"]["public"] == ccxt.binance().urls["test"]["public"]
    assert all(url.startswith("http://127.0.0.1:8765/") for url in _all_urls(pointed.urls["api"]))


def test_a_sandbox_account_on_an_exchange_without_one_is_refused():
    account = ExchangeAccount(exchange_id="bitfinex", label="bfx", sandbox=True)

    with pytest.raises(ExchangeSetupError, match="no sandbox"):
        build_exchange_client(account, load_markets=False)


def test_options_come_from_the_one_table_and_are_never_shared_between_clients():
    first = build_exchange_client(ExchangeAccount(exchange_id="binance", label="a"), load_markets=False)
    first.options["fetchMarkets"]["types"].append("linear")
    second = build_exchange_client(ExchangeAccount(exchange_id="binance", label="b"), load_markets=False)

    assert second.options["fetchMarkets"]["types"] == EXCHANGE_OPTIONS["binance"].options["fetchMarkets"]["types"]
    assert second.options["fetchCurrencies"] is False


@pytest.mark.parametrize(("exchange_id", "page"), [("binance", 1000), ("okx", 100), ("bybit", 100), ("kraken", 100)])
def test_trade_pages_are_sized_from_the_exchange(exchange_id, page):
    assert trades_page(getattr(ccxt, exchange_id)()) == page


@pytest.mark.parametrize(("exchange_id", "lookup"), [("binance", LOOKUP_FETCH_ORDER), ("okx", LOOKUP_FETCH_ORDER),
                                                     ("kraken", LOOKUP_ORDER_LISTS)])
def test_lookup_by_client_id_is_chosen_per_exchange(exchange_id, lookup):
    assert client_id_lookup(getattr(ccxt, exchange_id)()) == lookup


def test_the_receive_window_is_read_only_where_the_table_names_its_option():
    assert receive_window_s(ccxt.binance({"options": {"recvWindow": 5000}})) == 5.0
    assert receive_window_s(ccxt.okx()) is None
