"""Fixtures of the exchanges tests: a simulator served over loopback HTTP, real ccxt clients."""
from dataclasses import dataclass
from decimal import Decimal

import pytest

from exchanges.clients import build_exchange_client, exchange_clients_clear
from exchanges.models import ExchangeAccount
from exchanges.simulator.server import BackgroundSimulator
from exchanges.simulator.services import simulator_market_ensure
from tests.factories import SimulatedExchangeAccountFactory

SIM_LABEL = "sim-test"
SIM_KEY = "test-api-key-0001"
SIM_SECRET = "test-api-secret-do-not-log-0001"


@dataclass
class Sim:
    base_url: str
    account: ExchangeAccount  # our side: the ExchangeAccount pointing at the simulator
    sim_label: str

    def client(self, **kwargs):
        return build_exchange_client(self.account, **kwargs)


@pytest.fixture
def simulator(transactional_db):
    """A running simulator with BTC/USDT at 30000 (seed 7) and an account holding 100000 USDT, 10 BTC."""
    simulator_market_ensure(symbol="BTC/USDT", start_price=Decimal(30000), seed=7)
    exchange_clients_clear()
    with BackgroundSimulator() as server:
        account = SimulatedExchangeAccountFactory(
            label="binance-sim", base_url=server.base_url, api_key=SIM_KEY, api_secret=SIM_SECRET, sim_label=SIM_LABEL,
            sim_balances={"USDT": Decimal(100000), "BTC": Decimal(10)})
        yield Sim(base_url=server.base_url, account=account, sim_label=SIM_LABEL)
    exchange_clients_clear()


@pytest.fixture
def binance(simulator):
    """A real ccxt binance instance pointed at the simulator, markets loaded."""
    return simulator.client()


def point_at(client, base_url: str):
    """Point every API URL of an unmodified ccxt client at the simulator, keeping each URL's path."""
    from urllib.parse import urlsplit

    def pointed(url):
        return base_url + urlsplit(url).path if isinstance(url, str) and "://" in url else url

    client.urls["api"] = {name: pointed(url) for name, url in client.urls["api"].items()}
    return client


@pytest.fixture
def ccxt_binance(simulator):
    """An unmodified ccxt binance (spot only) pointed at the simulator, markets loaded: our own
    exchange layer is not in the way."""
    import ccxt

    client = point_at(ccxt.binance({
        "apiKey": SIM_KEY, "secret": SIM_SECRET,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
    }), simulator.base_url)
    client.load_markets()
    return client


@pytest.fixture
def okx(simulator):
    """An unmodified ccxt okx pointed at the simulator's OKX dialect (only urls['api']['rest'] set, spot
    markets), the simulator account's credentials and SIM_API_PASSPHRASE's default; markets loaded."""
    import ccxt

    from exchanges.simulator.config import DEFAULT_API_PASSPHRASE

    client = ccxt.okx({"apiKey": SIM_KEY, "secret": SIM_SECRET, "password": DEFAULT_API_PASSPHRASE,
                       "options": {"fetchMarkets": {"types": ["spot"]}}})
    client.urls["api"]["rest"] = simulator.base_url
    client.load_markets()
    return client
