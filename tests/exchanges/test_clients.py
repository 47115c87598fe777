"""The ccxt client factory: one instance per account per process, markets loaded once, loopback only."""
import pytest

from exchanges.clients import exchange_client, point_urls
from exchanges.errors import AccountDisabled
from exchanges.models import ExchangeAccount, SimMarket
from tests.factories import ExchangeAccountFactory

pytestmark = pytest.mark.embedded


def _all_urls(urls):
    if isinstance(urls, dict):
        return [u for value in urls.values() for u in _all_urls(value)]
    return [urls] if isinstance(urls, str) else []


def test_every_api_url_points_at_the_base_url():
    import ccxt

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
