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
    simulator_market_ensure(symbol="BTC/USDT", start_price=Decimal("30000"), seed=7)
    exchange_clients_clear()
    with BackgroundSimulator() as server:
        account = SimulatedExchangeAccountFactory(
            label="binance-sim", base_url=server.base_url, api_key=SIM_KEY, api_secret=SIM_SECRET, sim_label=SIM_LABEL,
            sim_balances={"USDT": Decimal("100000"), "BTC": Decimal("10")})
        yield Sim(base_url=server.base_url, account=account, sim_label=SIM_LABEL)
    exchange_clients_clear()


@pytest.fixture
def binance(simulator):
    """A real ccxt binance instance pointed at the simulator, markets loaded."""
    return simulator.client()
