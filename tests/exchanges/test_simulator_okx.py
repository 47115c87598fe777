"""ccxt's own okx class against the simulator's OKX v5 dialect over loopback HTTP: the unified trading
flow, OKX's signing and error codes, one engine shared with the Binance dialect, and ccxt's own
structure checks (ccxt/test/exchange/base) on what both dialects return."""
import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import ccxt
import pytest
import requests
from ccxt.test.exchange.base.test_balance import test_balance as check_balance
from ccxt.test.exchange.base.test_currency import test_currency as check_currency
from ccxt.test.exchange.base.test_deposit_withdrawal import (
    test_deposit_withdrawal as check_deposit_withdrawal,
)
from ccxt.test.exchange.base.test_market import test_market as check_market
from ccxt.test.exchange.base.test_order import test_order as check_order
from ccxt.test.exchange.base.test_order_book import test_order_book as check_order_book
from ccxt.test.exchange.base.test_ticker import test_ticker as check_ticker
from ccxt.test.exchange.base.test_trade import test_trade as check_trade

from exchanges.simulator.config import DEFAULT_API_PASSPHRASE
from exchanges.simulator.services import (
    simulator_max_concurrency,
    simulator_move_to,
    simulator_receive_transfer,
    simulator_reset_concurrency,
    simulator_set_faults,
)

from .conftest import SIM_KEY, SIM_SECRET

pytestmark = pytest.mark.embedded


def _okx_request(base_url, method, path, *, params=None, body=None, key=SIM_KEY, secret=SIM_SECRET,
                 passphrase=DEFAULT_API_PASSPHRASE, timestamp=None):
    """A request signed as OKX documents it (not through ccxt): the raw status and JSON."""
    request_path = f"/api/v5/{path}"
    if params:
        request_path += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    text = json.dumps(body) if body is not None else ""
    stamp = timestamp or datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    digest = hmac.new(secret.encode(), f"{stamp}{method}{request_path}{text}".encode(), hashlib.sha256).digest()
    headers = {"OK-ACCESS-KEY": key, "OK-ACCESS-SIGN": base64.b64encode(digest).decode(),
               "OK-ACCESS-TIMESTAMP": stamp, "OK-ACCESS-PASSPHRASE": passphrase, "Content-Type": "application/json"}
    response = requests.request(method, base_url + request_path, data=text or None, headers=headers, timeout=10)
    return response.status_code, response.json()


def _detail(okx, asset):
    details = okx.fetch_balance()["info"]["data"][0]["details"]
    row = next(d for d in details if d["ccy"] == asset)
    return Decimal(row["availBal"]), Decimal(row["frozenBal"])


def test_markets_load_from_spot_instruments_and_the_private_currencies(okx):
    market = okx.market("BTC/USDT")

    assert market["id"] == "BTC-USDT" and market["spot"] and market["active"]
    assert Decimal(market["info"]["tickSz"]) == Decimal("0.01") and Decimal(market["info"]["lotSz"]) == Decimal("0.00001")
    assert {"BTC", "USDT"} <= set(okx.currencies)
    assert okx.fetch_time() > 0


def test_book_ticker_and_tickers_are_the_binance_dialect_s_book(okx, ccxt_binance):
    book = okx.fetch_order_book("BTC/USDT", 5)
    ticker = okx.fetch_ticker("BTC/USDT")
    binance_book = ccxt_binance.publicGetDepth({"symbol": "BTCUSDT", "limit": 5})

    assert [[Decimal(p), Decimal(q)] for p, q, *_ in okx.publicGetMarketBooks({"instId": "BTC-USDT", "sz": 5})[
        "data"][0]["asks"]] == [[Decimal(p), Decimal(q)] for p, q in binance_book["asks"]]
    assert len(book["bids"]) == 5 and book["bids"][0][0] < Decimal(ticker["info"]["last"]) < book["asks"][0][0]
    assert Decimal(ticker["info"]["bidPx"]) == Decimal(binance_book["bids"][0][0])
    assert list(okx.fetch_tickers()) == ["BTC/USDT"]


def test_limit_order_lifecycle_by_id_and_client_id(okx):
    created = okx.create_order("BTC/USDT", "limit", "buy", 0.01, 29000, {"clientOrderId": "mmokx1"})

    assert created["id"] and created["clientOrderId"] == "mmokx1"
    by_id = okx.fetch_order(created["id"], "BTC/USDT")
    by_client_id = okx.fetch_order(None, "BTC/USDT", {"clientOrderId": "mmokx1"})
    assert by_id["id"] == by_client_id["id"] == created["id"] and by_id["status"] == "open"
    assert [o["id"] for o in okx.fetch_open_orders("BTC/USDT")] == [created["id"]]
    assert _detail(okx, "USDT") == (Decimal(99710), Decimal(290))

    canceled = okx.cancel_order(None, "BTC/USDT", {"clientOrderId": "mmokx1"})

    assert canceled["id"] == created["id"]
    assert okx.fetch_order(created["id"], "BTC/USDT")["status"] == "canceled"
    assert okx.fetch_open_orders("BTC/USDT") == []
    assert _detail(okx, "USDT") == (Decimal(100000), Decimal(0))
    assert [o["id"] for o in okx.fetch_canceled_orders("BTC/USDT")] == [created["id"]]


def test_an_order_is_the_same_order_in_both_dialects(okx, ccxt_binance):
    from_okx = okx.create_order("BTC/USDT", "limit", "sell", 0.02, 31000, {"clientOrderId": "fromokx"})
    from_binance = ccxt_binance.create_order("BTC/USDT", "limit", "buy", "0.01", "29500",
                                             {"newClientOrderId": "frombinance"})

    seen_by_binance = ccxt_binance.fetch_order(None, "BTC/USDT", {"origClientOrderId": "fromokx"})
    assert seen_by_binance["id"] == from_okx["id"] and seen_by_binance["status"] == "open"
    assert {o["id"] for o in okx.fetch_open_orders("BTC/USDT")} == {from_okx["id"], from_binance["id"]}
    assert okx.fetch_order(from_binance["id"], "BTC/USDT")["clientOrderId"] == "frombinance"

    okx.cancel_order(from_binance["id"], "BTC/USDT")
    ccxt_binance.cancel_order(from_okx["id"], "BTC/USDT")

    assert ccxt_binance.fetch_open_orders("BTC/USDT") == [] and okx.fetch_open_orders("BTC/USDT") == []
    assert _detail(okx, "BTC") == (Decimal(10), Decimal(0))


def test_resting_order_fills_as_maker_and_shows_in_history_and_fills(okx):
    order = okx.create_order("BTC/USDT", "limit", "buy", 0.01234, 29876.54, {"clientOrderId": "mmfill1"})

    simulator_move_to("BTC/USDT", "29800")

    closed = okx.fetch_order(order["id"], "BTC/USDT")
    assert closed["status"] == "closed" and closed["filled"] == 0.01234
    assert [o["id"] for o in okx.fetch_closed_orders("BTC/USDT")] == [order["id"]]
    trades = okx.fetch_my_trades("BTC/USDT")
    assert len(trades) == 1 and trades[0]["order"] == order["id"] and trades[0]["takerOrMaker"] == "maker"
    info = trades[0]["info"]
    assert Decimal(info["fee"]) == Decimal("-0.00001234") and info["feeCcy"] == "BTC"
    assert [t["id"] for t in okx.fetch_order_trades(order["id"], "BTC/USDT")] == [trades[0]["id"]]
    cost = Decimal("29876.54") * Decimal("0.01234")
    assert _detail(okx, "USDT") == (Decimal(100000) - cost, Decimal(0))
    assert _detail(okx, "BTC") == (Decimal(10) + Decimal("0.01234") - Decimal("0.00001234"), Decimal(0))


def test_refusals_raise_the_ccxt_classes_real_okx_gives(okx):
    with pytest.raises(ccxt.InsufficientFunds):
        okx.create_order("BTC/USDT", "limit", "buy", 100, 29000)
    okx.create_order("BTC/USDT", "limit", "buy", 0.001, 29000, {"clientOrderId": "dup1"})
    with pytest.raises(ccxt.InvalidOrder, match="51016"):
        okx.create_order("BTC/USDT", "limit", "buy", 0.001, 29000, {"clientOrderId": "dup1"})
    with pytest.raises(ccxt.OrderNotFound):
        okx.fetch_order("99999", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        okx.cancel_order("99999", "BTC/USDT")
    with pytest.raises(ccxt.InvalidOrder, match="51121"):
        okx.privatePostTradeOrder({"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
                                   "px": "29000", "sz": "0.0000011", "clOrdId": "lot1"})
    with pytest.raises(ccxt.BadSymbol):
        okx.publicGetMarketBooks({"instId": "NOPE-USDT"})
    with pytest.raises(ccxt.BadRequest):
        okx.privatePostTradeOrder({"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
                                   "px": "29000", "sz": "0.001", "clOrdId": "not-alphanumeric"})


def test_a_batch_answers_each_order_with_its_own_code(simulator, okx):
    good = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit", "px": "29000", "sz": "0.001"}

    status, body = _okx_request(simulator.base_url, "POST", "trade/batch-orders",
                                body=[{**good, "clOrdId": "batch1"}, {**good, "sz": "100", "clOrdId": "batch2"}])

    assert status == 200 and body["code"] == "2"
    assert [(d["clOrdId"], d["sCode"]) for d in body["data"]] == [("batch1", "0"), ("batch2", "51008")]


def test_orders_created_and_canceled_in_batches_through_ccxt(okx):
    created = okx.create_orders([
        {"symbol": "BTC/USDT", "type": "limit", "side": "buy", "amount": 0.001, "price": 29000,
         "params": {"clientOrderId": "many1"}},
        {"symbol": "BTC/USDT", "type": "limit", "side": "sell", "amount": 0.001, "price": 31000,
         "params": {"clientOrderId": "many2"}},
    ])

    assert [o["clientOrderId"] for o in created] == ["many1", "many2"]
    canceled = okx.cancel_orders([o["id"] for o in created], "BTC/USDT")
    assert sorted(o["id"] for o in canceled) == sorted(o["id"] for o in created)
    assert okx.fetch_open_orders("BTC/USDT") == []
    assert okx.fetch_trading_fee("BTC/USDT")["maker"] == 0.001


def test_signing_failures_are_okx_s_authentication_errors(simulator, okx):
    url = simulator.base_url
    stale = (datetime.now(UTC) - timedelta(seconds=60)).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    assert _okx_request(url, "GET", "account/balance", passphrase="wrong") == (
        401, {"code": "50105", "msg": 'Request header "OK-ACCESS-PASSPHRASE" incorrect.', "data": []})
    assert _okx_request(url, "GET", "account/balance", secret="wrong")[1]["code"] == "50113"
    assert _okx_request(url, "GET", "account/balance", key="nobody")[1]["code"] == "50111"
    assert _okx_request(url, "GET", "account/balance", timestamp=stale)[1]["code"] == "50102"
    assert _okx_request(url, "GET", "account/balance", timestamp="yesterday")[1]["code"] == "50112"
    assert _okx_request(url, "GET", "account/balance", params={"ccy": "BTC"})[1]["data"][0]["details"][0]["ccy"] == "BTC"
    okx.password = "wrong"
    with pytest.raises(ccxt.AuthenticationError):
        okx.fetch_balance()
    okx.password, okx.secret = DEFAULT_API_PASSPHRASE, "wrong"
    with pytest.raises(ccxt.AuthenticationError):
        okx.fetch_balance()


def test_the_passphrase_is_the_setting_s(simulator, okx, settings):
    settings.SIM_API_PASSPHRASE = "another-passphrase"

    with pytest.raises(ccxt.AuthenticationError, match="50105"):
        okx.fetch_balance()
    okx.password = "another-passphrase"
    assert okx.fetch_balance()["USDT"]["free"] == 100000


def test_injected_faults_become_okx_s_errors(simulator, okx):
    simulator_set_faults(account_label=simulator.sim_label, http_429=1, http_5xx=1, unknown_order=2)
    order = None

    with pytest.raises(ccxt.RateLimitExceeded):
        okx.fetch_balance()
    with pytest.raises(ccxt.ExchangeNotAvailable):
        okx.fetch_balance()
    order = okx.create_order("BTC/USDT", "limit", "buy", 0.001, 29000)
    with pytest.raises(ccxt.OrderNotFound):
        okx.fetch_order(order["id"], "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        okx.cancel_order(order["id"], "BTC/USDT")
    assert okx.cancel_order(order["id"], "BTC/USDT")["id"] == order["id"]


def test_a_place_whose_reply_times_out_still_placed_the_order_and_was_counted_in_flight(simulator, okx):
    simulator_reset_concurrency(simulator.sim_label)
    simulator_set_faults(account_label=simulator.sim_label, timeout_after_accept_s=1)
    okx.timeout = 300

    with pytest.raises(ccxt.RequestTimeout):
        okx.create_order("BTC/USDT", "limit", "buy", 0.001, 29000, {"clientOrderId": "slow1"})

    simulator_set_faults(account_label=simulator.sim_label)
    okx.timeout = 10000
    assert okx.fetch_order(None, "BTC/USDT", {"clientOrderId": "slow1"})["status"] == "open"
    assert simulator_max_concurrency(simulator.sim_label) == 1


def test_deposit_address_and_deposits_of_a_received_transfer(okx):
    address = okx.fetch_deposit_address("USDT")

    simulator_receive_transfer(address=address["address"], asset="USDT", amount=Decimal("250.5"), tx_id="tx-okx-1")

    deposits = okx.fetch_deposits("USDT")
    assert [(d["txid"], d["amount"], d["status"], d["address"]) for d in deposits] == [
        ("tx-okx-1", 250.5, "ok", address["address"])]
    assert _detail(okx, "USDT") == (Decimal("100250.5"), Decimal(0))
    assert okx.fetch_deposit(deposits[0]["id"], "USDT")["txid"] == "tx-okx-1"


# --- ccxt's own structure checks ---------------------------------------------------------------


def _trade_history(client, symbol, *, sell_params, buy_params):
    """A resting buy that fills as maker, a crossing sell, a market buy and an IOC buy that take, and
    an open order: what the checks read."""
    client.create_order(symbol, "limit", "buy", 0.01, 29876.54, buy_params)
    simulator_move_to(symbol, "29800")
    client.create_order(symbol, "limit", "sell", 0.001, 29000, sell_params)
    client.create_order(symbol, "market", "buy", 0.001)
    client.create_order(symbol, "limit", "buy", 0.001, 30500, {"timeInForce": "IOC"})
    return client.create_order(symbol, "limit", "buy", 0.001, 25000)


def _run_structure_checks(client, symbol, *, skipped_by_check=None):
    """ccxt's checks of each unified structure; ``skipped_by_check``: properties a check skips because
    ccxt's own parser of that exchange never fills them (as ccxt's skip lists do for the real one)."""
    skipped_by_check = skipped_by_check or {}
    skipped = {}
    now = client.milliseconds()
    for market in client.markets.values():
        check_market(client, skipped, "fetchMarkets", market)
    if client.has["fetchCurrencies"] and client.options.get("fetchCurrencies", True):
        for currency in client.fetch_currencies().values():
            check_currency(client, skipped, "fetchCurrencies", currency)
    check_order_book(client, skipped_by_check.get("orderBook", {}), "fetchOrderBook", client.fetch_order_book(symbol),
                     symbol)
    check_ticker(client, skipped, "fetchTicker", client.fetch_ticker(symbol), symbol)
    check_balance(client, skipped, "fetchBalance", client.fetch_balance())
    open_order = client.fetch_open_orders(symbol)[0]
    check_order(client, skipped, "fetchOpenOrders", open_order, symbol, now)
    check_order(client, skipped, "fetchOrder", client.fetch_order(open_order["id"], symbol), symbol,
                                 now)
    closed = client.fetch_closed_orders(symbol)
    assert len(closed) == 4 and {o["type"] for o in closed} == {"limit", "market"}
    for order in closed:
        check_order(client, skipped, "fetchClosedOrders", order, symbol, now)
    trades = client.fetch_my_trades(symbol)
    assert {t["takerOrMaker"] for t in trades} == {"maker", "taker"}
    for trade in trades:
        check_trade(client, skipped, "fetchMyTrades", trade, symbol, now, False)
    for deposit in client.fetch_deposits("USDT"):
        check_deposit_withdrawal(client, skipped_by_check.get("deposit", {}), "fetchDeposits", deposit, "USDT", now)


def test_ccxt_structure_checks_pass_on_the_okx_dialect(okx):
    _trade_history(okx, "BTC/USDT", buy_params={"clientOrderId": "chk1"}, sell_params={"clientOrderId": "chk2"})
    address = okx.fetch_deposit_address("USDT")["address"]
    simulator_receive_transfer(address=address, asset="USDT", amount=Decimal(10), tx_id="tx-okx-check")

    # ccxt's okx parser sets a deposit's "updated" to None whatever OKX sends.
    _run_structure_checks(okx, "BTC/USDT", skipped_by_check={"deposit": {"updated": True}})


def test_ccxt_structure_checks_pass_on_the_binance_dialect(ccxt_binance):
    _trade_history(ccxt_binance, "BTC/USDT", buy_params={"newClientOrderId": "chk1"},
                   sell_params={"newClientOrderId": "chk2"})
    address = ccxt_binance.fetch_deposit_address("USDT")["address"]
    simulator_receive_transfer(address=address, asset="USDT", amount=Decimal(10), tx_id="tx-binance-check")

    # Binance's spot /depth has no time, so ccxt's order book of it has no timestamp; its deposit
    # history has no update time nor fee (ccxt reads them from fiat and withdrawal records only).
    _run_structure_checks(ccxt_binance, "BTC/USDT", skipped_by_check={
        "orderBook": {"timestamp": True, "datetime": True}, "deposit": {"updated": True, "fee": True}})
