"""What differs between exchanges, in one table keyed by ccxt id; everything else speaks ccxt's unified API.

An exchange missing from the table gets ccxt's defaults: its own ``options``, trade pages sized
from ``exchange.features`` (the most a page may hold), and lookups by client order id through
ccxt's open and closed order lists, which every exchange with those two calls can answer.
This module is the only place in the production code where an exchange's own names may appear
(tests/test_exchange_neutral.py greps for them).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import ccxt

# How an order is looked up by our client order id.
LOOKUP_FETCH_ORDER = "fetch_order"  # fetch_order(None, symbol, {"clientOrderId": ...})
LOOKUP_ORDER_LISTS = "order_lists"  # open, then closed (and cancelled) order lists, filtered

# A trade-history page when neither the table nor ccxt's features give one: the smallest maximum
# of the exchanges we know (OKX, Bybit), so a full page is never mistaken for the last one.
DEFAULT_TRADES_PAGE = 100


@dataclass(frozen=True)
class OrderLimit:
    """A cap on new orders: ``count`` per ``interval_s`` per account, for POSTs to ``paths`` (ccxt's
    api paths); exchanges.budget gives them a lane of their own besides the request weight."""

    paths: frozenset[str]
    count: int
    interval_s: float


@dataclass(frozen=True)
class ExchangeDialect:
    """ccxt constructor ``options`` of one exchange, and the facts our calls need that ccxt does not expose."""

    options: dict = field(default_factory=dict)
    lookup: str | None = None  # LOOKUP_*; None: LOOKUP_ORDER_LISTS when the exchange has them
    trades_page: int | None = None  # None: ccxt's features['spot']['fetchMyTrades']['limit']
    receive_window_option: str | None = None  # the ccxt option holding the signed requests' receive window (ms)
    order_limit: OrderLimit | None = None  # new orders capped besides the request weight
    withdraw_client_id: str | None = None  # the withdraw param carrying our id, echoed in the withdrawal history


EXCHANGE_OPTIONS: dict[str, ExchangeDialect] = {
    # Spot only, from GET /api/v3/exchangeInfo alone: currencies and margin pairs are private sapi
    # calls we neither need nor want on every start. ccxt maps the unified clientOrderId to
    # newClientOrderId (create) and origClientOrderId (fetch, cancel) of GET/DELETE /api/v3/order.
    "binance": ExchangeDialect(
        options={
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "defaultType": "spot",
            "fetchOpenOrders": {"warnWithoutSymbol": False},
        },
        lookup=LOOKUP_FETCH_ORDER,
        receive_window_option="recvWindow",
        # 100 new orders per 10 s per account (exchangeInfo's ORDERS rate limit).
        order_limit=OrderLimit(frozenset({"order", "sor/order", "order/oco", "orderList/oco", "orderList/oto",
                                          "orderList/otoco", "order/cancelReplace"}), count=100, interval_s=10),
        withdraw_client_id="withdrawOrderId",  # POST /sapi/v1/capital/withdraw/apply, a filter of its history
    ),
    # Spot instruments only; ccxt maps clientOrderId to clOrdId on /api/v5/trade/order (place,
    # get, cancel). Fills come 100 a page (ccxt's features say so: no entry needed).
    "okx": ExchangeDialect(options={"fetchMarkets": {"types": ["spot"]}}, lookup=LOOKUP_FETCH_ORDER,
                           withdraw_client_id="clientId"),
}


def exchange_dialect(exchange_id: str) -> ExchangeDialect:
    return EXCHANGE_OPTIONS.get(exchange_id) or ExchangeDialect()


def exchange_options(exchange_id: str) -> dict:
    """ccxt constructor options of ``exchange_id`` (a copy: ccxt mutates its options)."""
    return copy.deepcopy(exchange_dialect(exchange_id).options)


def client_id_lookup(client: ccxt.Exchange) -> str:
    """How ``client``'s exchange finds an order by client order id (one of LOOKUP_*)."""
    chosen = exchange_dialect(client.id).lookup
    if chosen:
        return chosen
    if client.has.get("fetchOpenOrders") and client.has.get("fetchClosedOrders"):
        return LOOKUP_ORDER_LISTS
    return LOOKUP_FETCH_ORDER


def trades_page(client: ccxt.Exchange) -> int:
    """How many trades one fetch_my_trades page holds at most on ``client``'s exchange."""
    chosen = exchange_dialect(client.id).trades_page
    if chosen:
        return chosen
    spot = (getattr(client, "features", None) or {}).get("spot") or {}
    limit = (spot.get("fetchMyTrades") or {}).get("limit")
    return int(limit) if limit else DEFAULT_TRADES_PAGE


def order_limit(client: ccxt.Exchange) -> OrderLimit | None:
    """The cap on new orders of ``client``'s exchange besides its request weight, if it has one."""
    return exchange_dialect(client.id).order_limit


def receive_window_s(client: ccxt.Exchange) -> float | None:
    """How long after signing ``client``'s exchange may still accept a request, when ccxt sends that
    window with every signed request (None: the exchange has no such window in ccxt's options)."""
    option = exchange_dialect(client.id).receive_window_option
    window_ms = (client.options or {}).get(option) if option else None
    if isinstance(window_ms, (int, float)) and not isinstance(window_ms, bool) and window_ms > 0:
        return float(window_ms) / 1000
    return None


def required_capabilities(client: ccxt.Exchange) -> list[str]:
    """The ccxt ``has`` entries the system calls on an account of this exchange, in the order a
    message names them; "a|b" is either of two calls that answer the same question."""
    needed = ["createOrder", "cancelOrder", "fetchOpenOrders", "fetchMyTrades", "fetchBalance", "fetchOrderBook",
              "fetchTicker", "fetchDepositAddress", "fetchDeposits|fetchDepositsWithdrawals"]
    if client_id_lookup(client) == LOOKUP_FETCH_ORDER:
        needed.append("fetchOrder")
    else:
        needed.append("fetchClosedOrders")  # with fetchOpenOrders: a lookup by client id through the lists
    return needed


def post_only(client: ccxt.Exchange) -> bool:
    """Whether ``client``'s exchange takes ccxt's unified ``postOnly`` on a spot limit order (ccxt's
    ``features`` list the PO time in force): our quotes are then maker-only, refused by the exchange
    rather than filled when the market has moved through them since the strategy priced them."""
    spot = (getattr(client, "features", None) or {}).get("spot") or {}
    time_in_force = (spot.get("createOrder") or {}).get("timeInForce") or {}
    return bool(time_in_force.get("PO"))


def capabilities_missing(client: ccxt.Exchange) -> list[str]:
    """The required capabilities ``client``'s exchange lacks, each as a person reads it."""
    missing = []
    for need in required_capabilities(client):
        names = need.split("|")
        if not any(client.has.get(name) for name in names):
            missing.append(" or ".join(names))
    return missing


def withdraw_client_id_param(client: ccxt.Exchange) -> str | None:
    """The withdraw parameter that carries our own id on ``client``'s exchange (None: it has none, and a
    withdrawal is found again by its address, amount and time)."""
    return exchange_dialect(client.id).withdraw_client_id
