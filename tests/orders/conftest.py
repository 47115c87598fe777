"""Order-lifecycle fixtures: a pair, an order, snapshot payloads addressed to it."""
import uuid
from decimal import Decimal

import pytest

from orders.memo import encode_snapshot_memo
from tests.factories import PairFactory, SimulatedExchangeAccountFactory

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
ETH = "43d61dcd-e413-450d-80b8-101d5e903357"


@pytest.fixture
def pair(db):
    """BTC/USDT; the base fee is paid in BTC itself, the quote fee in ETH."""
    return PairFactory(base_asset_id=BTC, quote_asset_id=USDT, with_fees=True, quote_fee_asset_id=ETH)


@pytest.fixture
def user_id():
    return str(uuid.uuid4())


@pytest.fixture
def make_order(user_id):
    from orders.services import order_create

    def make(pair, **overrides):
        params = dict(
            user_id=user_id, pair_id=pair.pair_id, base_amount="0.5", quote_amount="1000",
            bid_spread="0.001", ask_spread="0.001", order_amount="0.01", order_refresh_time=10, by="test",
        )
        params.update(overrides)
        return order_create(**params)

    return make


@pytest.fixture
def order(pair, make_order):
    return make_order(pair)


def snapshot_payload(order=None, *, asset_id=BTC, amount="0.5", opponent_id=None, memo_hex=None,
                     snapshot_id=None) -> dict:
    """A Mixin-shaped snapshot paying ``order`` (by default from its user, with its memo)."""
    if memo_hex is None:
        memo_hex = encode_snapshot_memo(order.pair.pair_id, order.order_id) if order else ""
    return {
        "snapshot_id": snapshot_id or str(uuid.uuid4()),
        "asset_id": asset_id,
        "amount": amount,
        "opponent_id": opponent_id if opponent_id is not None else (order.user_id if order else str(uuid.uuid4())),
        "memo": memo_hex,
        "created_at": "2026-11-24T10:00:00Z",
    }


SIM_KEY = "orders-test-api-key"
SIM_SECRET = "orders-test-api-secret"


@pytest.fixture
def sim_pair(transactional_db):
    """BTC/USDT on an exchange account served by the simulator over loopback HTTP (fees as ``pair``)."""
    from exchanges.clients import exchange_clients_clear
    from exchanges.simulator.server import BackgroundSimulator
    from exchanges.simulator.services import simulator_market_ensure

    simulator_market_ensure(symbol="BTC/USDT", start_price=Decimal("30000"), seed=7)
    exchange_clients_clear()
    with BackgroundSimulator() as server:
        account = SimulatedExchangeAccountFactory(
            label="orders-binance-sim", base_url=server.base_url, api_key=SIM_KEY, api_secret=SIM_SECRET,
            sim_label="orders-sim", sim_balances={"USDT": Decimal("0"), "BTC": Decimal("0")})
        yield PairFactory(exchange_account=account, base_asset_id=BTC, quote_asset_id=USDT, with_fees=True,
                          quote_fee_asset_id=ETH)
    exchange_clients_clear()


def pay_in_full(order):
    """Pay every leg of the order through intake; returns the snapshot payloads."""
    from orders.services import snapshot_intake, snapshot_record

    payloads = [snapshot_payload(order, asset_id=BTC, amount="0.5001"),
                snapshot_payload(order, asset_id=USDT, amount="1000"),
                snapshot_payload(order, asset_id=ETH, amount="0.002")]
    for payload in payloads:
        snapshot_record(provider="local", data=payload)
        assert snapshot_intake(snapshot_id=payload["snapshot_id"]) == "credited"
    return payloads
