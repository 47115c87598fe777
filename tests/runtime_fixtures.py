"""Fixtures of the trading-runtime tests (a pytest plugin): a simulator over loopback HTTP, running orders."""
from dataclasses import dataclass
from decimal import Decimal

import pytest

from exchanges.clients import build_exchange_client, exchange_clients_clear
from exchanges.models import ExchangeAccount
from exchanges.simulator.server import BackgroundSimulator
from exchanges.simulator.services import simulator_market_ensure
from ledger import services as ledger
from orders.models import MarketMakingOrder, MarketMakingPair, OrderState
from tests.factories import BTC, USDT, OrderFactory, PairFactory, SimulatedExchangeAccountFactory


@dataclass
class Sim:
    base_url: str
    accounts: list

    def client(self, account):
        return build_exchange_client(account)


def sim_account(base_url: str, n: int) -> ExchangeAccount:
    return SimulatedExchangeAccountFactory(
        label=f"rt-{n}", base_url=base_url, api_key=f"rt-key-{n}", api_secret=f"rt-secret-{n}", sim_label=f"rt-sim-{n}",
        sim_balances={"USDT": Decimal("1000000"), "BTC": Decimal("100")})


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
    """A running order with its funds locked in the ledger and (``session=True``) a due strategy session."""
    pair = MarketMakingPair.objects.filter(exchange_account=account, symbol="BTC/USDT").first() \
        or PairFactory(exchange_account=account)
    given = {"user_id": user_id} if user_id else {}
    if not session:
        given["strategy_session"] = None
    order = OrderFactory(
        pair=pair, state=OrderState.RUNNING, base_amount=Decimal(base), quote_amount=Decimal(quote),
        bid_spread=Decimal(spread), ask_spread=Decimal(spread), order_amount=Decimal(order_amount),
        order_refresh_time=refresh, number_of_layers=layers, **given,
    )
    user_id = order.user_id
    for asset, amount in ((BTC, base), (USDT, quote)):
        ledger.credit_deposit(user_id=user_id, asset_id=asset, amount=amount, idempotency_key=f"t-in:{order.pk}:{asset}")
        ledger.lock_funds(user_id=user_id, asset_id=asset, amount=amount, idempotency_key=f"t-lock:{order.pk}:{asset}",
                          ref_type="mm_order", ref_id=str(order.order_id))
    return order


def trade_through_both_sides(account, order):
    """The market trades through a quoting order's bids (29900), then, after refreshes, through its asks (30150),
    the trackers reading each; asserts both sides filled and each exchange trade settled into the ledger once.
    Returns the trades (the lifecycle tests on each dialect and on the Mixin stand-in)."""
    from exchanges.models import SimTrade
    from exchanges.simulator.services import simulator_move_to
    from intents import ids
    from ledger.models import LedgerEntry
    from strategy.models import StrategySession
    from strategy.tick import tick_run
    from strategy.trackers import track_exchange_orders

    simulator_move_to("BTC/USDT", "29900")
    track_exchange_orders(account_id=account.pk)
    for _ in range(3):
        StrategySession.objects.update(next_run_at=None, refreshed_at=None)
        tick_run()
    simulator_move_to("BTC/USDT", "30150")
    track_exchange_orders(account_id=account.pk)
    trades = SimTrade.objects.filter(order__client_order_id__startswith=ids.client_order_prefix(order.order_id))
    assert {t.order.side for t in trades} == {"BUY", "SELL"}
    assert LedgerEntry.objects.filter(operation="settle_fill", ref_id=str(order.order_id)).count() == trades.count()
    return trades
