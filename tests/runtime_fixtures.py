"""Fixtures of the trading-runtime tests (a pytest plugin): a simulator over loopback HTTP, running orders."""
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exchanges.clients import build_exchange_client, exchange_clients_clear
from exchanges.models import ExchangeAccount
from exchanges.simulator.server import BackgroundSimulator
from exchanges.simulator.services import simulator_account_ensure, simulator_market_ensure
from ledger import services as ledger
from orders.models import MarketMakingOrder, MarketMakingPair, OrderState
from strategy.models import SessionStatus, StrategySession

BTC, USDT = "asset-btc", "asset-usdt"


@dataclass
class Sim:
    base_url: str
    accounts: list

    def client(self, account):
        return build_exchange_client(account)


def sim_account(base_url: str, n: int) -> ExchangeAccount:
    key, secret = f"rt-key-{n}", f"rt-secret-{n}"
    simulator_account_ensure(label=f"rt-sim-{n}", api_key=key, api_secret=secret,
                             balances={"USDT": Decimal("1000000"), "BTC": Decimal("100")})
    account = ExchangeAccount(exchange_id="binance", label=f"rt-{n}", api_key=key, base_url=base_url)
    account.api_secret = secret
    account.save()
    return account


@pytest.fixture(scope="session")
def sim_server(django_db_setup):
    """One simulator server for the session: it keeps no state of its own, only the database's."""
    with BackgroundSimulator(threads=8) as server:
        yield server


@pytest.fixture
def sim(transactional_db, sim_server):
    simulator_market_ensure(symbol="BTC/USDT", start_price=Decimal("30000"), seed=11)
    exchange_clients_clear()
    yield Sim(base_url=sim_server.base_url, accounts=[sim_account(sim_server.base_url, 0)])
    exchange_clients_clear()


def make_running_order(account, *, user_id=None, layers=2, base="1", quote="40000", order_amount="0.01",
                       spread="0.002", refresh=1, session=True) -> MarketMakingOrder:
    """A running order with its funds locked in the ledger and a due strategy session."""
    user_id = user_id or f"user-{uuid.uuid4().hex[:8]}"
    pair, _ = MarketMakingPair.objects.get_or_create(
        exchange_account=account, symbol="BTC/USDT",
        defaults=dict(exchange_id="binance", base_asset_id=BTC, quote_asset_id=USDT, base_exchange_asset="BTC",
                      quote_exchange_asset="USDT"),
    )
    order = MarketMakingOrder.objects.create(
        user_id=user_id, pair=pair, exchange_account=account, state=OrderState.RUNNING, memo="m",
        base_amount=Decimal(base), quote_amount=Decimal(quote), bid_spread=Decimal(spread),
        ask_spread=Decimal(spread), order_amount=Decimal(order_amount), order_refresh_time=refresh,
        number_of_layers=layers, expires_at=timezone.now() + timedelta(hours=1),
    )
    for asset, amount in ((BTC, base), (USDT, quote)):
        ledger.credit_deposit(user_id=user_id, asset_id=asset, amount=amount, idempotency_key=f"t-in:{order.pk}:{asset}")
        ledger.lock_funds(user_id=user_id, asset_id=asset, amount=amount, idempotency_key=f"t-lock:{order.pk}:{asset}",
                          ref_type="mm_order", ref_id=str(order.order_id))
    if session:
        now = timezone.now()
        StrategySession.objects.create(order=order, status=SessionStatus.RUNNING, cadence_s=refresh,
                                       next_run_at=now, started_at=now)
    return order
