"""ccxt's own binance class against the simulator over loopback HTTP: the unified trading flow."""
import time
from decimal import Decimal

import ccxt
import pytest

from exchanges.models import SimBalance
from exchanges.simulator.services import simulator_advance, simulator_move_to

pytestmark = pytest.mark.embedded


def _balance(binance, asset):
    """Free and used of ``asset`` from the raw /account strings (never the unified floats)."""
    raw = binance.fetch_balance()["info"]["balances"]
    row = next(b for b in raw if b["asset"] == asset)
    return Decimal(row["free"]), Decimal(row["locked"])


def test_markets_load_from_exchange_info_with_its_filters(binance):
    market = binance.market("BTC/USDT")

    assert market["spot"] and market["id"] == "BTCUSDT"
    filters = {f["filterType"]: f for f in market["info"]["filters"]}
    assert Decimal(filters["PRICE_FILTER"]["tickSize"]) == Decimal("0.01")
    assert Decimal(filters["LOT_SIZE"]["stepSize"]) == Decimal("0.00001")
    assert Decimal(filters["NOTIONAL"]["minNotional"]) == Decimal("5")
    assert market["limits"]["cost"]["min"] == 5


def test_order_book_brackets_the_last_price(binance):
    book = binance.fetch_order_book("BTC/USDT", 5)
    ticker = binance.fetch_ticker("BTC/USDT")

    assert len(book["bids"]) == 5 and len(book["asks"]) == 5
    assert book["bids"][0][0] < Decimal(ticker["info"]["lastPrice"]) < book["asks"][0][0]
    assert binance.fetch_time() > 0


def test_limit_order_lifecycle_by_id_and_client_id(binance):
    created = binance.create_order("BTC/USDT", "limit", "buy", "0.01", "29000", {"newClientOrderId": "mm-test-1"})

    assert created["status"] == "open" and created["clientOrderId"] == "mm-test-1"
    by_id = binance.fetch_order(created["id"], "BTC/USDT")
    by_client_id = binance.fetch_order(None, "BTC/USDT", {"origClientOrderId": "mm-test-1"})
    assert by_id["id"] == by_client_id["id"] == created["id"]
    assert [o["id"] for o in binance.fetch_open_orders("BTC/USDT")] == [created["id"]]
    assert _balance(binance, "USDT") == (Decimal("99710"), Decimal("290"))

    canceled = binance.cancel_order(created["id"], "BTC/USDT")

    assert canceled["status"] == "canceled"
    assert binance.fetch_open_orders("BTC/USDT") == []
    assert _balance(binance, "USDT") == (Decimal("100000"), Decimal("0"))


def test_resting_buy_fills_when_the_price_walks_through_it_and_balances_move_exactly(binance):
    order = binance.create_order("BTC/USDT", "limit", "buy", "0.01234", "29876.54", {"newClientOrderId": "mm-fill-1"})

    simulator_move_to("BTC/USDT", "29800")

    assert binance.fetch_order(order["id"], "BTC/USDT")["status"] == "closed"
    trades = binance.fetch_my_trades("BTC/USDT")
    assert len(trades) == 1 and trades[0]["order"] == order["id"]
    info = trades[0]["info"]
    cost = Decimal("29876.54") * Decimal("0.01234")
    fee = Decimal(info["commission"])
    assert Decimal(info["quoteQty"]) == cost
    assert info["isMaker"] is True and info["commissionAsset"] == "BTC"
    assert fee == Decimal("0.00001234")  # 0.1% maker fee on the base received
    assert _balance(binance, "USDT") == (Decimal("100000") - cost, Decimal("0"))
    assert _balance(binance, "BTC") == (Decimal("10") + Decimal("0.01234") - fee, Decimal("0"))


def test_crossing_sell_takes_the_book_at_book_prices_with_the_taker_fee(binance):
    raw_book = binance.publicGetDepth({"symbol": "BTCUSDT", "limit": 1})
    best_bid = Decimal(raw_book["bids"][0][0])

    order = binance.create_order("BTC/USDT", "limit", "sell", "0.001", "20000", {"newClientOrderId": "mm-take-1"})

    assert order["status"] == "closed"
    fill = order["info"]["fills"][0]
    assert Decimal(fill["price"]) == best_bid
    proceeds = best_bid * Decimal("0.001")
    assert Decimal(fill["commission"]) == (proceeds * Decimal("0.001")).quantize(Decimal("0.00000001"), rounding="ROUND_UP")
    assert _balance(binance, "BTC") == (Decimal("9.999"), Decimal("0"))
    assert _balance(binance, "USDT") == (Decimal("100000") + proceeds - Decimal(fill["commission"]), Decimal("0"))


def test_partial_fill_when_the_step_volume_is_smaller_than_the_order(binance, simulator):
    from exchanges.models import SimMarket

    SimMarket.objects.filter(symbol="BTC/USDT").update(step_volume=Decimal("0.004"))
    order = binance.create_order("BTC/USDT", "limit", "sell", "0.01", "30500", {"newClientOrderId": "mm-part-1"})

    simulator_move_to("BTC/USDT", "30600")

    fetched = binance.fetch_order(order["id"], "BTC/USDT")
    executed = Decimal(fetched["info"]["executedQty"])
    assert fetched["info"]["status"] == "PARTIALLY_FILLED" and 0 < executed < Decimal("0.01")
    assert _balance(binance, "BTC") == (Decimal("9.99"), Decimal("0.01") - executed)


def test_insufficient_balance_duplicate_client_id_and_unknown_order_use_binance_errors(binance):
    with pytest.raises(ccxt.InsufficientFunds):
        binance.create_order("BTC/USDT", "limit", "buy", "10", "29000", {"newClientOrderId": "mm-big"})
    binance.create_order("BTC/USDT", "limit", "buy", "0.001", "29000", {"newClientOrderId": "mm-dup"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        binance.create_order("BTC/USDT", "limit", "buy", "0.001", "29001", {"newClientOrderId": "mm-dup"})
    with pytest.raises(ccxt.OrderNotFound):
        binance.fetch_order("999999", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        binance.cancel_order("999999", "BTC/USDT")
    with pytest.raises(ccxt.BadSymbol):
        binance.publicGetDepth({"symbol": "NOPEUSDT"})


def test_bad_signature_unknown_key_and_stale_timestamp_are_refused(simulator):
    wrong_secret = simulator.client()
    wrong_secret.secret = "not-the-secret"
    with pytest.raises(ccxt.AuthenticationError):
        wrong_secret.fetch_balance()

    wrong_key = simulator.client()
    wrong_key.apiKey = "unknown-key"
    with pytest.raises(ccxt.AuthenticationError):
        wrong_key.fetch_balance()

    stale = simulator.client()
    stale.nonce = lambda: stale.milliseconds() - 120_000
    with pytest.raises(ccxt.InvalidNonce):
        stale.fetch_balance()


def test_price_path_is_deterministic_for_a_seed(simulator):
    from exchanges.simulator.services import simulator_market_ensure

    first = _walk(20)
    simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=7, reset=True)
    second = _walk(20)
    simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=8, reset=True)
    other_seed = _walk(20)

    assert first == second
    assert first != other_seed
    assert len(set(first)) > 5


def _walk(steps):
    from exchanges.models import SimMarket

    prices = []
    for _ in range(steps):
        simulator_advance("BTC/USDT", 1)
        prices.append(SimMarket.objects.get(symbol="BTC/USDT").price)
    return prices


def test_balances_never_go_negative_in_the_database(binance):
    binance.create_order("BTC/USDT", "limit", "sell", "10", "31000", {"newClientOrderId": "mm-all"})
    simulator_advance("BTC/USDT", 50)

    assert all(b.free >= 0 and b.locked >= 0 for b in SimBalance.objects.all())


def test_cancel_all_orders_of_a_symbol_releases_every_lock(binance):
    for i in range(3):
        binance.create_order("BTC/USDT", "limit", "sell", "0.01", str(31000 + i), {"newClientOrderId": f"mm-all-{i}"})

    binance.cancel_all_orders("BTC/USDT")

    assert binance.fetch_open_orders("BTC/USDT") == []
    assert _balance(binance, "BTC") == (Decimal("10"), Decimal("0"))


def test_markets_advance_with_wall_time_when_a_step_interval_is_set(binance, settings):
    from exchanges.models import SimMarket

    settings.SIM_STEP_MS = 50
    binance.fetch_ticker("BTC/USDT")  # the first request starts the clock
    time.sleep(0.3)

    binance.fetch_ticker("BTC/USDT")

    assert 3 <= SimMarket.objects.get(symbol="BTC/USDT").step <= 100
