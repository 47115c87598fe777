"""The simulated market's arithmetic, and balance conservation over a random session of orders and steps."""
import random
from decimal import Decimal

import pytest

from exchanges.models import SimBalance, SimOrder, SimTrade
from exchanges.simulator import engine
from exchanges.simulator.errors import SimulatorApiError
from exchanges.simulator.services import (
    simulator_account_ensure,
    simulator_advance,
    simulator_cancel_order,
    simulator_market_ensure,
    simulator_place_order,
)

pytestmark = pytest.mark.embedded


def test_a_step_is_a_pure_function_of_seed_symbol_and_number():
    args = dict(seed=5, symbol="BTC/USDT", number=12, price=Decimal("30000"), start_price=Decimal("30000"),
                volatility=Decimal("0.002"), tick=Decimal("0.01"), step_volume=Decimal("0.3"), lot=Decimal("0.00001"))

    step = engine.next_step(**args)

    assert step == engine.next_step(**args)
    assert step != engine.next_step(**{**args, "seed": 6})
    assert step.low < min(step.open, step.close) and step.high > max(step.open, step.close)
    # volatility 0.002 a second, one-second steps: uniform within +-0.002*sqrt(3) (0.346 %)
    assert abs(step.close - step.open) <= step.open * Decimal("0.00347")
    assert step.close % Decimal("0.01") == 0 and step.volume % Decimal("0.00001") == 0


def test_synthetic_depth_brackets_the_price_on_ticks_and_lots():
    bids, asks = engine.synthetic_depth(seed=1, symbol="ETH/USDT", step=3, price=Decimal("2000.005"),
                                        tick=Decimal("0.01"), lot=Decimal("0.0001"), spread_ticks=2, levels=5,
                                        depth_quantity=Decimal("2"))

    assert bids[0].price < Decimal("2000.005") < asks[0].price
    assert asks[0].price - bids[0].price == Decimal("0.02")
    assert [b.price for b in bids] == sorted((b.price for b in bids), reverse=True)
    assert all(lvl.qty > 0 and lvl.qty % Decimal("0.0001") == 0 for lvl in bids + asks)


def test_commission_rounds_up_to_the_satoshi():
    assert engine.commission(Decimal("0.01234"), Decimal("0.001")) == Decimal("0.00001234")
    assert engine.commission(Decimal("57.9998"), Decimal("0.001")) == Decimal("0.05799980")
    assert engine.commission(Decimal("0.000001"), Decimal("0.001")) == Decimal("0.00000001")


@pytest.mark.django_db
def test_random_session_conserves_every_balance_against_its_trades():
    market = simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=99, step_volume="0.02")
    accounts = [
        simulator_account_ensure(label=f"acc-{n}", api_key=f"k{n}", api_secret=f"s{n}",
                                 balances={"USDT": "20000", "BTC": "1"})
        for n in range(3)
    ]
    rng = random.Random(1234)
    placed, refused = 0, 0
    for i in range(120):
        action = rng.random()
        account = rng.choice(accounts)
        if action < 0.55:
            side = rng.choice(["BUY", "SELL"])
            offset = Decimal(rng.randint(-60, 60)) / 1000  # within +-6 % of 30000: some cross, most rest
            price = engine.round_to_step(market.start_price * (1 + offset / 10), market.tick_size)
            qty = Decimal(rng.randint(20, 3000)) / 100000
            try:
                simulator_place_order(account_id=account.pk, exchange_symbol="BTCUSDT", side=side,
                                      order_type="LIMIT", price=price, qty=qty, client_order_id=f"r-{i}")
                placed += 1
            except SimulatorApiError:
                refused += 1
        elif action < 0.7:
            open_order = SimOrder.objects.filter(account=account, status__in=["NEW", "PARTIALLY_FILLED"]).first()
            if open_order:
                simulator_cancel_order(account_id=account.pk, exchange_symbol="BTCUSDT", order_id=open_order.pk)
        else:
            simulator_advance("BTC/USDT", rng.randint(1, 5))

    assert placed > 30 and SimTrade.objects.filter(is_maker=True).exists() and SimTrade.objects.filter(is_maker=False).exists()
    for account in accounts:
        balances = {b.asset: b for b in SimBalance.objects.filter(account=account)}
        trades = list(SimTrade.objects.filter(account=account))
        bought = sum((t.qty for t in trades if t.is_buyer), Decimal(0))
        sold = sum((t.qty for t in trades if not t.is_buyer), Decimal(0))
        spent = sum((t.quote_qty for t in trades if t.is_buyer), Decimal(0))
        received = sum((t.quote_qty for t in trades if not t.is_buyer), Decimal(0))
        base_fees = sum((t.commission for t in trades if t.commission_asset == "BTC"), Decimal(0))
        quote_fees = sum((t.commission for t in trades if t.commission_asset == "USDT"), Decimal(0))
        btc, usdt = balances["BTC"], balances["USDT"]
        assert btc.free + btc.locked == Decimal("1") + bought - sold - base_fees
        assert usdt.free + usdt.locked == Decimal("20000") - spent + received - quote_fees
        open_orders = SimOrder.objects.filter(account=account, status__in=["NEW", "PARTIALLY_FILLED"])
        assert btc.locked == sum((o.locked_remaining for o in open_orders if o.side == "SELL"), Decimal(0))
        assert usdt.locked == sum((o.locked_remaining for o in open_orders if o.side == "BUY"), Decimal(0))
        assert min(btc.free, btc.locked, usdt.free, usdt.locked) >= 0


@pytest.mark.django_db
def test_fills_compare_prices_as_numbers_across_a_change_of_digit_count():
    from exchanges.simulator.services import simulator_move_to

    simulator_market_ensure(symbol="ETH/USDT", start_price="10050", seed=3)
    account = simulator_account_ensure(label="digits", api_key="dk", api_secret="ds",
                                       balances={"USDT": "100000", "ETH": "10"})
    below, _ = simulator_place_order(account_id=account.pk, exchange_symbol="ETHUSDT", side="BUY", order_type="LIMIT",
                                     price=Decimal("9990"), qty=Decimal("0.1"), client_order_id="below")

    assert simulator_move_to("ETH/USDT", "10020") == []  # "9990" > "10009" as text, not as numbers

    assert simulator_move_to("ETH/USDT", "9980")[0].order_id == below.pk
