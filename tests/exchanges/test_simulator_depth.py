"""Fills consume displayed depth: a synthetic level taken by one order is not there for the next until
the market steps, and a step's traded volume fills each resting order once."""
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import ccxt
import pytest

from exchanges.clients import build_exchange_client
from exchanges.models import SimMarket, SimOrder, SimTrade
from exchanges.simulator import config, engine
from exchanges.simulator.services import (
    _market_depth,
    simulator_account_ensure,
    simulator_advance,
    simulator_market_ensure,
    simulator_move_to,
    simulator_place_order,
)
from tests.factories import SimulatedExchangeAccountFactory

pytestmark = pytest.mark.embedded


def _fresh_depth(market: SimMarket):
    """The synthetic book of the market's current step as drawn, before any taker fill."""
    return _market_depth(market, {})


def _market(symbol="BTC/USDT") -> SimMarket:
    return SimMarket.objects.get(symbol=symbol)


def _accounts(n=2, usdt="1000000", btc="100"):
    return [simulator_account_ensure(label=f"depth-{i}", api_key=f"dk-{i}", api_secret=f"ds-{i}",
                                     balances={"USDT": usdt, "BTC": btc}) for i in range(n)]


def _place(account, side, price, qty, cid, tif="GTC"):
    return simulator_place_order(account_id=account.pk, exchange_symbol="BTCUSDT", side=side, order_type="LIMIT",
                                 price=price, qty=qty, client_order_id=cid, time_in_force=tif)


@pytest.mark.django_db
def test_a_level_one_order_took_is_not_taken_again_in_the_same_step():
    simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=7)
    first, second = _accounts()
    bids, asks = _fresh_depth(_market())
    best, next_level = asks[0], asks[1]

    _, taken = _place(first, "BUY", best.price, best.qty, "take-all")
    again, nothing = _place(second, "BUY", best.price, best.qty, "take-again", tif="IOC")
    deeper, next_fills = _place(second, "BUY", next_level.price, best.qty + next_level.qty, "take-deeper")

    assert [(t.price, t.qty) for t in taken] == [(best.price, best.qty)]
    assert nothing == [] and again.status == "EXPIRED"
    assert [(t.price, t.qty) for t in next_fills] == [(next_level.price, next_level.qty)]  # not best.price again
    assert deeper.status == "PARTIALLY_FILLED" and deeper.executed_qty == next_level.qty
    assert _market_depth(_market())[1][:2] != asks[:2]
    assert _market_depth(_market())[1][0] == asks[2]  # both levels gone until the market steps
    assert _market_depth(_market())[0] == bids  # the other side is untouched

    simulator_advance("BTC/USDT", 1)

    assert _market_depth(_market()) == _fresh_depth(_market())  # a new step: the book is drawn again, whole


@pytest.mark.django_db
def test_a_post_only_order_may_rest_where_the_level_was_taken():
    simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=7)
    first, second = _accounts()
    best = _fresh_depth(_market())[1][0]
    _place(first, "BUY", best.price, best.qty, "take-all")

    order, fills = simulator_place_order(account_id=second.pk, exchange_symbol="BTCUSDT", side="BUY",
                                         order_type="LIMIT_MAKER", price=best.price, qty=Decimal("0.01"),
                                         client_order_id="post-only")

    assert fills == [] and order.status == "NEW"


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(6))
def test_taker_fills_of_a_step_never_exceed_the_displayed_depth_and_depth_shows_what_is_left(seed):
    """A random session of crossing orders and steps: at every level, what takers got in one step is
    at most what the book showed at its start, and the book shows exactly the rest."""
    simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=100 + seed)
    accounts = _accounts(3)
    rng = random.Random(seed)
    shown = _fresh_depth(_market())
    took = defaultdict(Decimal)
    for i in range(40):
        if rng.random() < 0.15:
            simulator_advance("BTC/USDT", 1)
            shown, took = _fresh_depth(_market()), defaultdict(Decimal)
            continue
        side = rng.choice(["BUY", "SELL"])
        book = shown[1] if side == "BUY" else shown[0]
        limit = book[min(rng.randint(0, 3), len(book) - 1)].price
        qty = Decimal(rng.randint(1000, 40000)) / 100000
        order, fills = _place(rng.choice(accounts), side, limit, qty, f"p-{i}", tif=rng.choice(["GTC", "IOC"]))
        for fill in fills:
            took[side, fill.price] += fill.qty
            assert (side == "BUY" and fill.price <= limit) or (side == "SELL" and fill.price >= limit)
        assert order.executed_qty == sum((f.qty for f in fills), Decimal(0)) <= order.orig_qty

        bids, asks = _market_depth(_market())
        for book_side, levels, now in (("SELL", shown[0], bids), ("BUY", shown[1], asks)):
            left = {lvl.price: lvl.qty for lvl in now}
            for level in levels:
                assert took[book_side, level.price] <= level.qty
                expected = level.qty - took[book_side, level.price]
                assert left.get(level.price, Decimal(0)) == expected  # gone when nothing is left


@pytest.mark.django_db
def test_resting_orders_at_one_level_share_the_steps_volume_in_time_priority():
    simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=7, step_volume="0.05")
    first, second = _accounts()
    early, _ = _place(first, "BUY", Decimal("29900"), Decimal("0.02"), "early")
    late, _ = _place(second, "BUY", Decimal("29900"), Decimal("0.02"), "late")
    lower, _ = _place(first, "BUY", Decimal("29890"), Decimal("0.02"), "lower")
    market = _market()
    step = engine.next_step(seed=market.seed, symbol=market.symbol, number=market.step + 1, price=market.price,
                            start_price=market.start_price, volatility=market.volatility, tick=market.tick_size,
                            step_volume=market.step_volume, lot=market.step_size,
                            step_seconds=config.step_seconds(), close=Decimal("29800"))
    buy_volume, sell_volume = engine.leg_volumes(step, market.step_size)

    fills = simulator_move_to("BTC/USDT", "29800")

    assert buy_volume + sell_volume == step.volume and Decimal("0.02") < buy_volume < Decimal("0.06")
    by_order = defaultdict(Decimal)
    for fill in fills:
        by_order[fill.order_id] += fill.qty
    assert by_order[early.pk] == Decimal("0.02")
    assert by_order[late.pk] == min(Decimal("0.02"), buy_volume - Decimal("0.02"))
    assert by_order[lower.pk] == max(buy_volume - Decimal("0.04"), Decimal(0))
    assert sum(by_order.values()) == buy_volume  # not 0.02 to each order: what one took, the next did not get


@pytest.mark.django_db
def test_the_maker_fills_of_a_step_never_add_up_to_more_than_its_volume():
    """Before, each side of a step was filled against the step's whole volume: a step that traded
    through a buy and a sell could fill twice what it reported."""
    simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=11, step_volume="0.05",
                            volatility="0.0005")
    maker, = _accounts(1)
    both_sides = 0
    for n in range(40):
        market = _market()
        best_bid, best_ask = engine.synthetic_touch(price=market.price, tick=market.tick_size,
                                                    spread_ticks=market.spread_ticks)
        _place(maker, "BUY", best_bid, Decimal("0.2"), f"b-{n}")
        _place(maker, "SELL", best_ask, Decimal("0.2"), f"s-{n}")
        volume_before = market.day_volume

        fills = simulator_advance("BTC/USDT", 1)

        step_volume = _market().day_volume - volume_before
        assert sum((f.qty for f in fills), Decimal(0)) <= step_volume
        both_sides += {f.is_buyer for f in fills} == {True, False}
    assert both_sides >= 5
    for order in SimOrder.objects.all():
        assert sum((t.qty for t in SimTrade.objects.filter(order=order)), Decimal(0)) == order.executed_qty <= order.orig_qty


# --- What a client sees, through ccxt over HTTP ------------------------------------------------


def _asks(client):
    book = client.publicGetDepth({"symbol": "BTCUSDT", "limit": 20})
    return [(Decimal(price), Decimal(qty)) for price, qty in book["asks"]]


@pytest.fixture
def second_client(simulator):
    account = SimulatedExchangeAccountFactory(label="binance-sim-2", base_url=simulator.base_url,
                                              sim_label="sim-test-2",
                                              sim_balances={"USDT": Decimal("100000"), "BTC": Decimal("10")})
    return build_exchange_client(account)


def test_depth_shows_less_after_a_fill_and_the_rest_once_only_until_the_next_step(binance, second_client):
    asks = _asks(binance)
    (best_price, best_qty), (next_price, next_qty) = asks[0], asks[1]
    part = (best_qty / 3).quantize(Decimal("0.00001"))

    first = binance.create_order("BTC/USDT", "limit", "buy", str(part), str(best_price), {"newClientOrderId": "d-1"})

    assert first["status"] == "closed"
    assert _asks(second_client)[0] == (best_price, best_qty - part)
    second = second_client.create_order("BTC/USDT", "limit", "buy", str(best_qty), str(best_price),
                                        {"newClientOrderId": "d-2", "timeInForce": "IOC"})
    assert Decimal(second["info"]["executedQty"]) == best_qty - part  # only what was left
    assert second["info"]["status"] == "EXPIRED"
    assert _asks(binance)[0] == (next_price, next_qty)  # the level is gone
    assert second_client.fetch_ticker("BTC/USDT")["ask"] == float(next_price)

    simulator_advance("BTC/USDT", 1)

    market = _market()
    drawn = _fresh_depth(market)[1]
    assert _asks(binance)[:5] == [(lvl.price, lvl.qty) for lvl in drawn[:5]]


def test_clients_racing_for_one_level_get_its_quantity_once(simulator, binance, second_client):
    best_price, best_qty = _asks(binance)[0]
    clients = [simulator.client() for _ in range(3)] + [second_client] + [
        build_exchange_client(SimulatedExchangeAccountFactory(
            label=f"binance-race-{i}", base_url=simulator.base_url, sim_label=f"sim-race-{i}",
            sim_balances={"USDT": Decimal("100000")})) for i in range(2)]

    def take(index):
        order = clients[index].create_order("BTC/USDT", "limit", "buy", str(best_qty), str(best_price),
                                            {"newClientOrderId": f"race-{index}", "timeInForce": "IOC"})
        return Decimal(order["info"]["executedQty"])

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        executed = list(pool.map(take, range(len(clients))))

    assert sum(executed) == best_qty
    # amounts are compared in Python: they are text on SQLite
    takers = [t for t in SimTrade.objects.filter(is_maker=False) if t.price == best_price]
    assert sum(t.qty for t in takers) == best_qty and len(takers) == sum(1 for q in executed if q)
    with pytest.raises(ccxt.OrderImmediatelyFillable):  # the next level is still there to take
        binance.create_order("BTC/USDT", "limit", "buy", "0.001", str(_asks(binance)[0][0]),
                             {"newClientOrderId": "post", "postOnly": True})
