"""The JSON shapes of the simulator's OKX dialect (OKX v5 REST, spot): instruments, books, tickers,
orders, fills, balances, currencies, deposits. Numbers are decimal strings without trailing zeros,
times milliseconds as strings, empty fields "", as OKX sends them."""
from dataclasses import dataclass
from decimal import Decimal

from ledger.amounts import canonical

from ..models import (
    SimBalance,
    SimDeposit,
    SimWithdrawal,
    SimDepositAddress,
    SimMarket,
    SimOrder,
    SimOrderStatus,
    SimTrade,
)


def num(value) -> str:
    return canonical(Decimal(value))


def inst_id(market: SimMarket) -> str:
    """OKX's instrument id of a market: BTC/USDT is BTC-USDT."""
    return f"{market.base}-{market.quote}"


def symbol_of(inst: str) -> str | None:
    """The unified symbol of an OKX instrument id (BTC-USDT is BTC/USDT), or None when it is not one."""
    parts = inst.upper().split("-")
    return "/".join(parts) if len(parts) == 2 and all(parts) else None


def chain_id(asset: str, network: str) -> str:
    """OKX names a currency's chain "<ccy>-<network>" (USDT-TRC20); a simulator network is the asset by default."""
    return f"{asset}-{network}"


def instrument(market: SimMarket) -> dict:
    max_market_base = market.max_qty
    return {
        "alias": "", "auctionEndTime": "", "baseCcy": market.base, "category": "1", "ctMult": "", "ctType": "",
        "ctVal": "", "ctValCcy": "", "expTime": "", "instFamily": "", "instId": inst_id(market),
        "instType": "SPOT", "lever": "", "listTime": "1606468572000", "lotSz": num(market.step_size),
        "maxIcebergSz": num(market.max_qty), "maxLmtAmt": "20000000", "maxLmtSz": num(market.max_qty),
        "maxMktAmt": "1000000", "maxMktSz": num(max_market_base), "maxStopSz": num(max_market_base),
        "maxTriggerSz": num(market.max_qty), "maxTwapSz": num(market.max_qty), "minSz": num(market.min_qty),
        "optType": "", "quoteCcy": market.quote, "ruleType": "normal", "settleCcy": "", "state": "live",
        "stk": "", "tickSz": num(market.tick_size), "uly": "",
    }


def book(bids, asks, ts: int) -> dict:
    return {
        "asks": [[num(price), num(qty), "0", "1"] for price, qty in asks],
        "bids": [[num(price), num(qty), "0", "1"] for price, qty in bids],
        "ts": str(ts),
    }


def ticker(market: SimMarket, bids, asks, ts: int) -> dict:
    best_bid, best_ask = (bids[0] if bids else ("", "")), (asks[0] if asks else ("", ""))
    return {
        "instType": "SPOT", "instId": inst_id(market), "last": num(market.price), "lastSz": "0",
        "askPx": num(best_ask[0]) if asks else "", "askSz": num(best_ask[1]) if asks else "",
        "bidPx": num(best_bid[0]) if bids else "", "bidSz": num(best_bid[1]) if bids else "",
        "open24h": num(market.day_open), "high24h": num(market.day_high), "low24h": num(market.day_low),
        "volCcy24h": num(market.day_quote_volume), "vol24h": num(market.day_volume),
        "sodUtc0": num(market.day_open), "sodUtc8": num(market.day_open), "ts": str(ts),
    }


# OKX's order types and states from the engine's.
def ord_type(order: SimOrder) -> str:
    if order.type == "MARKET":
        return "market"
    if order.type == "LIMIT_MAKER":
        return "post_only"
    return "ioc" if order.time_in_force == "IOC" else "limit"


_STATES = {
    SimOrderStatus.NEW: "live",
    SimOrderStatus.PARTIALLY_FILLED: "partially_filled",
    SimOrderStatus.FILLED: "filled",
    SimOrderStatus.CANCELED: "canceled",
    SimOrderStatus.EXPIRED: "canceled",  # an IOC or market remainder: OKX cancels it
}
STATES_BY_OKX = {
    "live": [SimOrderStatus.NEW],
    "partially_filled": [SimOrderStatus.PARTIALLY_FILLED],
    "filled": [SimOrderStatus.FILLED],
    "canceled": [SimOrderStatus.CANCELED, SimOrderStatus.EXPIRED],
}


@dataclass
class OrderFills:
    """What an order's fills add to it: the fee, and its last fill."""

    fee: Decimal = Decimal(0)
    last: SimTrade | None = None


def order_fills(order_ids) -> dict[int, OrderFills]:
    """The fee and last fill of each order, in one query."""
    fills: dict[int, OrderFills] = {}
    for trade in SimTrade.objects.filter(order_id__in=list(order_ids)).order_by("pk"):
        entry = fills.setdefault(trade.order_id, OrderFills())
        entry.fee += trade.commission
        entry.last = trade
    return fills


def order(o: SimOrder, fills: OrderFills | None = None) -> dict:
    market = o.market
    fills = fills or OrderFills()
    last = fills.last
    average = o.cumulative_quote_qty / o.executed_qty if o.executed_qty else None
    fee_ccy = market.base if o.side == "BUY" else market.quote
    is_market = o.type == "MARKET"
    canceled = o.status in (SimOrderStatus.CANCELED, SimOrderStatus.EXPIRED)
    return {
        "accFillSz": num(o.executed_qty), "algoClOrdId": "", "algoId": "", "attachAlgoClOrdId": "",
        "attachAlgoOrds": [], "avgPx": num(average) if average is not None else "", "cTime": str(o.created_ms),
        "cancelSource": ("1" if o.status == SimOrderStatus.CANCELED else "14") if canceled else "",
        "cancelSourceReason": "", "category": "normal", "ccy": "", "clOrdId": o.client_order_id,
        "fee": num(-fills.fee), "feeCcy": fee_ccy,
        "fillPx": num(last.price) if last else "", "fillSz": num(last.qty) if last else "0",
        "fillTime": str(last.time_ms) if last else "", "instId": inst_id(market), "instType": "SPOT",
        "isTpLimit": "false", "lever": "", "linkedAlgoOrd": {"algoId": ""}, "ordId": str(o.pk),
        "ordType": ord_type(o), "pnl": "0", "posSide": "net", "px": "" if is_market else num(o.price),
        "pxType": "", "pxUsd": "", "pxVol": "", "quickMgnType": "", "rebate": "0", "rebateCcy": market.quote,
        "reduceOnly": "false", "side": o.side.lower(), "slOrdPx": "", "slTriggerPx": "", "slTriggerPxType": "",
        "source": "", "state": _STATES[o.status], "stpId": "", "stpMode": "cancel_maker", "sz": num(o.orig_qty),
        "tag": "", "tdMode": "cash", "tgtCcy": "base_ccy" if is_market else "", "tpOrdPx": "", "tpTriggerPx": "",
        "tpTriggerPxType": "", "tradeId": str(last.pk) if last else "", "uTime": str(o.updated_ms),
    }


def fill(trade: SimTrade, order: SimOrder) -> dict:
    ts = str(trade.time_ms)
    return {
        "instType": "SPOT", "instId": inst_id(trade.market), "tradeId": str(trade.pk), "ordId": str(trade.order_id),
        "clOrdId": order.client_order_id, "billId": str(trade.pk), "subType": "1" if order.side == "BUY" else "2",
        "tag": "", "fillPx": num(trade.price), "fillSz": num(trade.qty), "fillIdxPx": "", "fillPnl": "0",
        "fillPxVol": "", "fillPxUsd": "", "fillMarkVol": "", "fillFwdPx": "", "fillMarkPx": "",
        "side": order.side.lower(), "posSide": "net", "execType": "M" if trade.is_maker else "T",
        "feeCcy": trade.commission_asset, "fee": num(-trade.commission), "ts": ts, "fillTime": ts,
    }


def balance_detail(b: SimBalance, ts: int) -> dict:
    total = b.free + b.locked
    return {
        "availBal": num(b.free), "availEq": "", "borrowFroz": "", "cashBal": num(total), "ccy": b.asset,
        "crossLiab": "", "disEq": "", "eq": num(total), "eqUsd": "", "fixedBal": "0", "frozenBal": num(b.locked),
        "imr": "", "interest": "", "isoEq": "", "isoLiab": "", "isoUpl": "", "liab": "", "maxLoan": "",
        "mgnRatio": "", "mmr": "", "notionalLever": "", "ordFrozen": num(b.locked), "spotInUseAmt": "",
        "stgyEq": "0", "twap": "0", "uTime": str(ts), "upl": "", "uplLiab": "",
    }


def balance(details: list[dict], ts: int) -> dict:
    return {"adjEq": "", "borrowFroz": "", "details": details, "imr": "", "isoEq": "", "mgnRatio": "", "mmr": "",
            "notionalUsd": "", "ordFroz": "", "totalEq": "", "uTime": str(ts), "upl": ""}


def currency(asset: str) -> dict:
    return {
        "canDep": True, "canInternal": True, "canWd": True, "ccy": asset, "chain": chain_id(asset, asset),
        "depQuotaFixed": "", "depQuoteDailyLayer2": "", "logoLink": "", "mainNet": True, "maxFee": "0",
        "maxFeeForCtAddr": "0", "maxWd": "1000000000", "minDep": "0.00000001", "minDepArrivalConfirm": "1",
        "minFee": "0", "minFeeForCtAddr": "0", "minWd": "0.00000001", "minWdUnlockConfirm": "1", "name": asset,
        "needTag": False, "usedDepQuotaFixed": "", "usedWdQuota": "0", "wdQuota": "1000000000", "wdTickSz": "8",
    }


def deposit_address(address: SimDepositAddress) -> dict:
    return {"addr": address.address, "ccy": address.asset, "chain": chain_id(address.asset, address.network),
            "ctAddr": "", "selected": True, "tag": address.tag, "to": "18", "verifiedName": ""}


def deposit(d: SimDeposit) -> dict:
    return {
        "actualDepBlkConfirm": "1" if d.credited else "0", "amt": num(d.amount), "areaCodeFrom": "",
        "ccy": d.asset, "chain": chain_id(d.asset, d.network), "depId": str(d.pk), "from": "", "fromWdId": "",
        "state": "2" if d.credited else "0", "to": d.address, "ts": str(d.insert_ms), "txId": d.tx_id,
    }


def withdrawal(w: SimWithdrawal) -> dict:
    """A withdrawal as /api/v5/asset/withdrawal-history lists it: ``amt`` what the recipient gets, ``fee``
    apart; state 2 (sent) once completed, else 1 (sending)."""
    row = {"ccy": w.asset, "chain": chain_id(w.asset, w.network), "amt": num(w.amount - w.fee), "fee": num(w.fee),
           "feeCcy": w.asset, "ts": str(w.apply_ms), "from": "", "to": w.address, "txId": w.tx_id if w.completed else "",
           "state": "2" if w.completed else "1", "wdId": str(w.pk), "clientId": w.client_id}
    if w.tag:
        row["tag"] = w.tag
    return row
