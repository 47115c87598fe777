"""Market and IOC orders in both dialects, through unmodified ccxt clients over HTTP: they take the
displayed synthetic depth at its prices with the taker fee, and expire what the book cannot fill."""
from decimal import ROUND_UP, Decimal

import ccxt
import pytest

from exchanges.simulator.services import simulator_advance, simulator_set_balance

pytestmark = pytest.mark.embedded

TAKER = Decimal("0.001")


def _fee(amount: Decimal) -> Decimal:
    return (amount * TAKER).quantize(Decimal("0.00000001"), rounding=ROUND_UP)


def _asks_and_bids(client):
    """The synthetic book as the Binance dialect shows it (raw strings, as Decimal)."""
    book = client.publicGetDepth({"symbol": "BTCUSDT", "limit": 10})
    levels = [[(Decimal(p), Decimal(q)) for p, q in book[side]] for side in ("asks", "bids")]
    return levels[0], levels[1]


def _balance(client, asset):
    raw = client.fetch_balance()["info"]["balances"]
    row = next(b for b in raw if b["asset"] == asset)
    return Decimal(row["free"]), Decimal(row["locked"])


def test_ccxt_binance_lists_market_among_the_order_types(ccxt_binance):
    assert "MARKET" in ccxt_binance.market("BTC/USDT")["info"]["orderTypes"]


def test_binance_market_buy_walks_the_asks_at_their_prices_with_the_taker_fee(ccxt_binance):
    asks, _ = _asks_and_bids(ccxt_binance)
    qty = asks[0][1] + Decimal("0.01")

    order = ccxt_binance.create_order("BTC/USDT", "market", "buy", str(qty))

    info = order["info"]
    assert order["status"] == "closed" and info["type"] == "MARKET" and info["status"] == "FILLED"
    fills = [(Decimal(f["price"]), Decimal(f["qty"]), Decimal(f["commission"])) for f in info["fills"]]
    assert fills == [(asks[0][0], asks[0][1], _fee(asks[0][1])), (asks[1][0], Decimal("0.01"), _fee(Decimal("0.01")))]
    cost = asks[0][0] * asks[0][1] + asks[1][0] * Decimal("0.01")
    assert Decimal(info["cummulativeQuoteQty"]) == cost
    assert _balance(ccxt_binance, "USDT") == (Decimal(100000) - cost, 0)
    assert _balance(ccxt_binance, "BTC") == (Decimal(10) + qty - sum(f[2] for f in fills), 0)
    # What it took is gone from the book until the market steps.
    after, _ = _asks_and_bids(ccxt_binance)
    assert after[0] == (asks[1][0], asks[1][1] - Decimal("0.01"))


def test_binance_market_buy_by_cost_spends_at_most_the_quote_amount(ccxt_binance):
    asks, _ = _asks_and_bids(ccxt_binance)

    order = ccxt_binance.create_market_buy_order_with_cost("BTC/USDT", 1000)

    info = order["info"]
    spent = Decimal(info["cummulativeQuoteQty"])
    assert info["status"] == "FILLED" and Decimal(info["executedQty"]) == Decimal(info["origQty"]) > 0
    assert spent <= 1000 and 1000 - spent < asks[0][0] * Decimal("0.00001")  # less than one more lot
    assert _balance(ccxt_binance, "USDT") == (Decimal(100000) - spent, 0)


def test_binance_market_sell_beyond_the_book_fills_every_bid_and_expires_the_rest(ccxt_binance):
    _, bids = _asks_and_bids(ccxt_binance)
    depth = sum(q for _, q in bids)

    order = ccxt_binance.create_order("BTC/USDT", "market", "sell", "5")

    info = order["info"]
    assert info["status"] == "EXPIRED" and order["status"] == "expired"
    assert Decimal(info["executedQty"]) == depth and Decimal(info["origQty"]) == 5
    proceeds = sum(p * q for p, q in bids)
    assert Decimal(info["cummulativeQuoteQty"]) == proceeds
    fees = sum(Decimal(f["commission"]) for f in info["fills"])
    assert _balance(ccxt_binance, "BTC") == (Decimal(10) - depth, 0)
    assert _balance(ccxt_binance, "USDT") == (Decimal(100000) + proceeds - fees, 0)
    assert _asks_and_bids(ccxt_binance)[1] == []


def test_binance_ioc_limit_fills_what_crosses_and_expires_the_rest(ccxt_binance):
    asks, _ = _asks_and_bids(ccxt_binance)
    qty = asks[0][1] + asks[1][1] + Decimal("0.5")

    order = ccxt_binance.create_order("BTC/USDT", "limit", "buy", str(qty), str(asks[1][0]), {"timeInForce": "IOC"})

    info = order["info"]
    assert info["status"] == "EXPIRED" and info["timeInForce"] == "IOC"
    assert Decimal(info["executedQty"]) == asks[0][1] + asks[1][1]
    cost = asks[0][0] * asks[0][1] + asks[1][0] * asks[1][1]
    assert _balance(ccxt_binance, "USDT") == (Decimal(100000) - cost, 0)  # the rest's reserve is back
    assert ccxt_binance.fetch_open_orders("BTC/USDT") == []


def test_binance_market_buy_without_the_funds_is_refused_and_changes_nothing(ccxt_binance, simulator):
    simulator_set_balance(account_label=simulator.sim_label, asset="USDT", free="100")
    asks_before, _ = _asks_and_bids(ccxt_binance)

    with pytest.raises(ccxt.InsufficientFunds):
        ccxt_binance.create_order("BTC/USDT", "market", "buy", "0.01")

    assert _balance(ccxt_binance, "USDT") == (Decimal(100), 0)
    assert _asks_and_bids(ccxt_binance)[0] == asks_before
    assert ccxt_binance.fetch_orders("BTC/USDT") == []


def test_market_orders_of_both_dialects_share_one_book_until_the_market_steps(ccxt_binance, okx):
    asks, _ = _asks_and_bids(ccxt_binance)

    okx_order = okx.create_order("BTC/USDT", "market", "buy", float(asks[0][1]))
    binance_order = ccxt_binance.create_order("BTC/USDT", "market", "buy", "0.01")

    assert Decimal(okx.fetch_order(okx_order["id"], "BTC/USDT")["info"]["avgPx"]) == asks[0][0]
    assert [Decimal(f["price"]) for f in binance_order["info"]["fills"]] == [asks[1][0]]
    simulator_advance("BTC/USDT")
    fresh, _ = _asks_and_bids(ccxt_binance)
    assert len(fresh) == 10  # a new step draws the book again


def test_okx_market_buy_in_base_and_in_quote_and_market_sell(okx, ccxt_binance):
    asks, bids = _asks_and_bids(ccxt_binance)

    base_buy = okx.create_order("BTC/USDT", "market", "buy", float(asks[0][1]))
    quote_buy = okx.create_market_buy_order_with_cost("BTC/USDT", 500)
    sell = okx.create_order("BTC/USDT", "market", "sell", float(bids[0][1]))

    first = okx.fetch_order(base_buy["id"], "BTC/USDT")
    assert first["status"] == "closed" and first["type"] == "market"
    assert Decimal(first["info"]["accFillSz"]) == asks[0][1] and Decimal(first["info"]["avgPx"]) == asks[0][0]
    assert Decimal(first["info"]["fee"]) == -_fee(asks[0][1]) and first["info"]["feeCcy"] == "BTC"
    second = okx.fetch_order(quote_buy["id"], "BTC/USDT")["info"]
    spent = Decimal(second["accFillSz"]) * Decimal(second["avgPx"])
    assert second["state"] == "filled" and spent <= 500 and 500 - spent < asks[1][0] * Decimal("0.00001")
    third = okx.fetch_order(sell["id"], "BTC/USDT")["info"]
    assert third["state"] == "filled" and Decimal(third["avgPx"]) == bids[0][0]
    assert Decimal(third["fee"]) == -_fee(bids[0][0] * bids[0][1]) and third["feeCcy"] == "USDT"


def test_okx_ioc_expires_the_rest_and_a_post_only_that_would_take_is_canceled(okx, ccxt_binance):
    asks, _ = _asks_and_bids(ccxt_binance)
    qty = asks[0][1] + Decimal(1)

    ioc = okx.create_order("BTC/USDT", "limit", "buy", float(qty), float(asks[0][0]), {"timeInForce": "IOC"})
    post_only = okx.create_order("BTC/USDT", "limit", "buy", 0.01, float(asks[2][0]), {"postOnly": True})

    filled_part = okx.fetch_order(ioc["id"], "BTC/USDT")
    assert filled_part["status"] == "canceled" and filled_part["info"]["ordType"] == "ioc"
    assert Decimal(filled_part["info"]["accFillSz"]) == asks[0][1]
    canceled = okx.fetch_order(post_only["id"], "BTC/USDT")
    assert canceled["status"] == "canceled" and canceled["postOnly"] is True and canceled["filled"] == 0
    assert okx.fetch_open_orders("BTC/USDT") == []
    usdt = okx.fetch_balance()["info"]["data"][0]["details"]
    usdt = next(d for d in usdt if d["ccy"] == "USDT")
    assert Decimal(usdt["availBal"]) == Decimal(100000) - asks[0][0] * asks[0][1]
    assert Decimal(usdt["frozenBal"]) == 0
