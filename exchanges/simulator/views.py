"""The simulator's HTTP API: the Binance spot REST subset that ccxt's `binance` class uses.

Requests are authenticated as Binance does (X-MBX-APIKEY header, HMAC-SHA256 `signature` of
the query string + body, `timestamp` within `recvWindow`); errors are Binance's JSON
``{"code", "msg"}`` with its HTTP statuses, so ccxt raises the same error classes it would
against the real exchange.
"""
import functools
import hashlib
import hmac
import logging
import time
from decimal import Decimal
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.db import DEFAULT_DB_ALIAS
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from mmproject.sql import prepared_statements

from ..crypto import decrypt_secret
from ..models import (
    OPEN_ORDER_STATUSES,
    SimAccount,
    SimBalance,
    SimDeposit,
    SimWithdrawal,
    SimMarket,
    SimOrder,
    SimTrade,
)
from . import errors as e
from . import queries, services

logger = logging.getLogger(__name__)

EIGHT = Decimal("0.00000001")
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000


def fmt(value: Decimal) -> str:
    """Binance's number format: fixed point with 8 decimals (more when the value has more)."""
    value = Decimal(value)
    if value == value.quantize(EIGHT):
        return format(value.quantize(EIGHT), "f")
    return format(value.normalize(), "f")


def _last_values(text: str, encoding: str) -> dict:
    """``{key: QueryDict(text).get(key) for key in ...}``: each key's last value, keys in first-seen order.

    Parsed as QueryDict parses (same limits and refusal), without building one: this runs on
    every request.
    """
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding=encoding,
                          max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)
    except ValueError as error:  # as QueryDict: only max_num_fields makes parse_qsl raise here
        raise TooManyFieldsSent(
            "The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
        ) from error
    return dict(pairs)


def _params(request) -> dict:
    """The query string's parameters, then the form body's (POST, PUT, DELETE) over them."""
    # As request.GET decodes the WSGI query string (latin-1 text of the raw bytes).
    raw = request.META.get("QUERY_STRING", "").encode("iso-8859-1")
    encoding = request.encoding or settings.DEFAULT_CHARSET
    try:
        query = raw.decode(encoding)
    except UnicodeDecodeError:
        query = raw.decode("iso-8859-1")
    merged = _last_values(query, encoding)
    if request.method in ("POST", "PUT", "DELETE") and request.body:
        merged.update(_last_values(request.body.decode(), "utf-8"))
    return merged


def _strip_signature(text: str) -> tuple[str, str | None]:
    kept, signature = [], None
    for part in text.split("&") if text else []:
        if part.startswith("signature="):
            signature = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), signature


@functools.lru_cache(maxsize=1024)
def _plain_secret(token: str) -> str:
    """The secret of an encrypted token (a pure function of the token: decrypted once per process)."""
    return decrypt_secret(token)


def _signed_by(token: str, payload: bytes, signature: str) -> bool:
    expected = hmac.new(_plain_secret(token).encode(), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _check_timestamp(params: dict) -> None:
    try:
        timestamp = int(params.get("timestamp") or "")
        recv_window = int(params.get("recvWindow") or DEFAULT_RECV_WINDOW_MS)
    except ValueError:
        raise e.missing_parameter("timestamp") from None
    if recv_window <= 0 or recv_window > MAX_RECV_WINDOW_MS:
        raise e.SimulatorApiError(-1131, "recvWindow must be less than 60000")
    server = services.now_ms()
    if timestamp >= server + 1000 or server - timestamp > recv_window:
        raise e.outside_recv_window()


def _account(account_id: int, api_key: str, token: str, faults: dict) -> SimAccount:
    """The account as the request read it (its label is not read: it loads on access)."""
    return SimAccount.from_db(DEFAULT_DB_ALIAS, ["id", "api_key", "api_secret_encrypted", "faults"],
                              [account_id, api_key, token, faults])


# API key -> (account id, encrypted secret) as last read from the database. Only a hint: a
# request it verifies is counted by one UPDATE that also checks the row still holds these
# credentials; when it does not (changed, account gone), the request takes the full path.
_credentials: dict[str, tuple[int, str]] = {}


def _authenticate(request, params: dict, *, count: bool) -> tuple[SimAccount, bool]:
    """The request's account, and whether it was counted in the in-flight gauge (``count``: do so).

    The gauge is the last thing done: nothing can fail between counting and returning.
    """
    api_key = request.META.get("HTTP_X_MBX_APIKEY", "")  # request.headers' value, without parsing every header
    query, query_sig = _strip_signature(request.META.get("QUERY_STRING", ""))
    body, body_sig = _strip_signature(request.body.decode() if request.body else "")
    signature = query_sig or body_sig
    payload = (query + body).encode()
    known = _credentials.get(api_key) if count and signature else None
    if known is not None and _signed_by(known[1], payload, signature):
        try:
            _check_timestamp(params)
        except e.SimulatorApiError:
            pass  # the full path below refuses it in Binance's order of checks
        else:
            faults = services.simulator_request_started_if_credentials(account_id=known[0], api_key=api_key,
                                                                       api_secret_encrypted=known[1])
            if faults is not None:
                return _account(known[0], api_key, known[1], faults), True
            _credentials.pop(api_key, None)
    row = queries.account_by_key(api_key) if api_key else None
    if row is None:
        raise e.bad_api_key()
    account_id, token, faults = row
    if len(_credentials) > 10000:
        _credentials.clear()
    _credentials[api_key] = (account_id, token)
    if not signature:
        raise e.missing_parameter("signature")
    if not _signed_by(token, payload, signature):
        raise e.bad_signature()
    _check_timestamp(params)
    if count:
        services.simulator_request_started(account_id=account_id)
    return _account(account_id, api_key, token, faults), count


def endpoint(*, signed: bool = False, order_request: bool = False):
    """Wrap a view: Binance errors, authentication, fault injection, the in-flight gauge.

    ``order_request`` views count their POST and DELETE calls (order create and cancel) in the
    account's in-flight gauge.
    """

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            # Every order request runs the same handful of statements: planned once per connection.
            with prepared_statements():
                return _serve(view, request, args, kwargs, signed=signed, order_request=order_request)

        return wrapper

    return decorate


def _serve(view, request, args, kwargs, *, signed: bool, order_request: bool):
    account = None
    counted = False
    try:
        services.simulator_catch_up()
        params = _params(request)
        if signed:
            account, counted = _authenticate(
                request, params, count=order_request and request.method in ("POST", "DELETE"))
            latency_ms = int(account.faults.get("latency_ms") or 0)
            if latency_ms > 0:
                time.sleep(latency_ms / 1000)
            if services.simulator_take_fault(account=account, kind="http_429"):
                raise e.too_many_requests()
            if services.simulator_take_fault(account=account, kind="http_5xx"):
                return HttpResponse("Service Unavailable.", status=503, content_type="text/plain")
        return view(request, params, account, *args, **kwargs)
    except e.SimulatorApiError as error:
        response = JsonResponse({"code": error.code, "msg": error.msg}, status=error.status)
        if error.status == 429:
            response["Retry-After"] = "1"
        return response
    finally:
        if counted:
            services.simulator_request_finished(account_id=account.pk)


def _market(params: dict, required: bool = True) -> SimMarket | None:
    symbol = params.get("symbol")
    if not symbol:
        if required:
            raise e.missing_parameter("symbol")
        return None
    market = queries.market_by_exchange_symbol(symbol.upper())
    if market is None:
        raise e.invalid_symbol()
    return market


def _int(params: dict, name: str, default=None):
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise e.bad_parameter(name) from None


# --- Public -----------------------------------------------------------------------------------


@endpoint()
def ping(request, params, account):
    return JsonResponse({})


@endpoint()
def server_time(request, params, account):
    return JsonResponse({"serverTime": services.now_ms()})


def _symbol_info(market: SimMarket) -> dict:
    return {
        "symbol": market.exchange_symbol,
        "status": "TRADING",
        "baseAsset": market.base,
        "baseAssetPrecision": 8,
        "quoteAsset": market.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        # ccxt refuses any type not listed here ("market is not a valid order type").
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(market.min_price), "maxPrice": fmt(market.max_price),
             "tickSize": fmt(market.tick_size)},
            {"filterType": "LOT_SIZE", "minQty": fmt(market.min_qty), "maxQty": fmt(market.max_qty),
             "stepSize": fmt(market.step_size)},
            {"filterType": "NOTIONAL", "minNotional": fmt(market.min_notional), "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"],
    }


@endpoint()
def exchange_info(request, params, account):
    markets = SimMarket.objects.order_by("exchange_symbol")
    if params.get("symbol"):
        markets = [_market(params)]
    return JsonResponse({
        "timezone": "UTC",
        "serverTime": services.now_ms(),
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        ],
        "exchangeFilters": [],
        "symbols": [_symbol_info(market) for market in markets],
    })


def order_book(market: SimMarket, limit: int):
    """Synthetic levels merged with the resting orders of every simulator account: (bids, asks) as
    [(price, quantity)], best first (both dialects show this book)."""
    bids, asks = services._market_depth(market)
    book = {"BUY": {lvl.price: lvl.qty for lvl in bids}, "SELL": {lvl.price: lvl.qty for lvl in asks}}
    for side, price, orig, executed in SimOrder.objects.filter(
        market=market, status__in=OPEN_ORDER_STATUSES
    ).values_list("side", "price", "orig_qty", "executed_qty"):
        book[side][price] = book[side].get(price, Decimal(0)) + orig - executed
    bid_rows = sorted(book["BUY"].items(), key=lambda item: -item[0])[:limit]
    ask_rows = sorted(book["SELL"].items(), key=lambda item: item[0])[:limit]
    return bid_rows, ask_rows


@endpoint()
def depth(request, params, account):
    market = _market(params)
    limit = min(_int(params, "limit", 100), 5000)
    bids, asks = order_book(market, limit)
    return JsonResponse({
        "lastUpdateId": market.step,
        "bids": [[fmt(price), fmt(qty)] for price, qty in bids],
        "asks": [[fmt(price), fmt(qty)] for price, qty in asks],
    })


def _ticker(market: SimMarket) -> dict:
    bids, asks = order_book(market, 1)
    now = services.now_ms()
    change = market.price - market.day_open
    return {
        "symbol": market.exchange_symbol,
        "priceChange": fmt(change),
        "priceChangePercent": format((change / market.day_open * 100).quantize(Decimal("0.001")), "f"),
        "weightedAvgPrice": fmt(market.price),
        "prevClosePrice": fmt(market.day_open),
        "lastPrice": fmt(market.price),
        "lastQty": fmt(Decimal(0)),
        "bidPrice": fmt(bids[0][0]) if bids else fmt(Decimal(0)),
        "bidQty": fmt(bids[0][1]) if bids else fmt(Decimal(0)),
        "askPrice": fmt(asks[0][0]) if asks else fmt(Decimal(0)),
        "askQty": fmt(asks[0][1]) if asks else fmt(Decimal(0)),
        "openPrice": fmt(market.day_open),
        "highPrice": fmt(market.day_high),
        "lowPrice": fmt(market.day_low),
        "volume": fmt(market.day_volume),
        "quoteVolume": fmt(market.day_quote_volume.quantize(EIGHT)),
        "openTime": now - 86400000,
        "closeTime": now,
        "firstId": 0,
        "lastId": market.step,
        "count": market.step,
    }


@endpoint()
def ticker_24hr(request, params, account):
    market = _market(params, required=False)
    if market is not None:
        return JsonResponse(_ticker(market))
    return JsonResponse([_ticker(m) for m in SimMarket.objects.order_by("exchange_symbol")], safe=False)


@endpoint()
def ticker_price(request, params, account):
    market = _market(params, required=False)
    rows = [market] if market else SimMarket.objects.order_by("exchange_symbol")
    data = [{"symbol": m.exchange_symbol, "price": fmt(m.price)} for m in rows]
    return JsonResponse(data[0] if market else data, safe=False)


@endpoint()
def ticker_book(request, params, account):
    market = _market(params, required=False)
    rows = [market] if market else SimMarket.objects.order_by("exchange_symbol")
    data = []
    for m in rows:
        bids, asks = order_book(m, 1)
        data.append({"symbol": m.exchange_symbol, "bidPrice": fmt(bids[0][0]), "bidQty": fmt(bids[0][1]),
                     "askPrice": fmt(asks[0][0]), "askQty": fmt(asks[0][1])})
    return JsonResponse(data[0] if market else data, safe=False)


# --- Orders -----------------------------------------------------------------------------------


def _order_json(order: SimOrder) -> dict:
    return {
        "symbol": order.market.exchange_symbol,
        "orderId": order.pk,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": fmt(order.price),
        "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "cummulativeQuoteQty": fmt(order.cumulative_quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "stopPrice": fmt(Decimal(0)),
        "icebergQty": fmt(Decimal(0)),
        "time": order.created_ms,
        "updateTime": order.updated_ms,
        "isWorking": True,
        "workingTime": order.created_ms,
        "origQuoteOrderQty": fmt(Decimal(0)),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def _fill_json(trade: SimTrade) -> dict:
    return {"price": fmt(trade.price), "qty": fmt(trade.qty), "commission": fmt(trade.commission),
            "commissionAsset": trade.commission_asset, "tradeId": trade.pk}


def _new_order(request, params, account):
    symbol = params.get("symbol")
    if not symbol:
        raise e.missing_parameter("symbol")
    # The service refuses an unknown symbol, then missing (empty) parameters, in Binance's order.
    order, trades = services.simulator_place_order(
        account_id=account.pk, exchange_symbol=symbol.upper(), side=(params.get("side") or "").upper(),
        order_type=(params.get("type") or "").upper(), price=params.get("price"), qty=params.get("quantity"),
        quote_qty=params.get("quoteOrderQty"),
        client_order_id=params.get("newClientOrderId") or f"sim-{services.now_ms()}-{account.pk}",
        time_in_force=(params.get("timeInForce") or "GTC").upper(),
    )
    market = order.market
    accepted_timeout_s = float(account.faults.get("timeout_after_accept_s") or 0)
    if accepted_timeout_s > 0:
        # The order exists; the client sees only a timeout (the ambiguous case of the error policy).
        logger.info("sim_fault_injected account_id=%s kind=timeout_after_accept_s order_id=%s", account.pk, order.pk)
        time.sleep(accepted_timeout_s)
    response_type = (params.get("newOrderRespType") or "FULL").upper()
    ack = {"symbol": market.exchange_symbol, "orderId": order.pk, "orderListId": -1,
           "clientOrderId": order.client_order_id, "transactTime": order.created_ms}
    if response_type == "ACK":
        return JsonResponse(ack)
    body = {**ack, **{k: v for k, v in _order_json(order).items()
                      if k not in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty", "origQuoteOrderQty")}}
    if response_type == "FULL":
        body["fills"] = [_fill_json(trade) for trade in trades]
    return JsonResponse(body)


def _lookup_ids(params) -> tuple[int | None, str | None]:
    order_id = _int(params, "orderId")
    client_order_id = params.get("origClientOrderId")
    if order_id is None and not client_order_id:
        raise e.SimulatorApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    return order_id, (None if order_id is not None else client_order_id)


def _lookup(params, account, unknown) -> tuple[str, int | None, str | None, bool]:
    """(symbol, order id, client order id, symbol checked) of an order lookup or cancel.

    Refused in Binance's order: no symbol, unknown symbol, no order id, then an injected unknown
    order (``unknown``: the error). Without an injected fault pending and with valid ids, the
    symbol is left to the lookup itself (one statement fewer): nothing else can fail before it.
    """
    symbol = params.get("symbol")
    if not symbol:
        raise e.missing_parameter("symbol")
    if not int(account.faults.get("unknown_order") or 0):
        try:
            order_id, client_order_id = _lookup_ids(params)
        except e.SimulatorApiError:
            pass  # refused below, after the symbol
        else:
            return symbol.upper(), order_id, client_order_id, False
    market = _market(params)
    order_id, client_order_id = _lookup_ids(params)
    if services.simulator_take_fault(account=account, kind="unknown_order"):
        raise unknown()
    return market.exchange_symbol, order_id, client_order_id, True


def _get_order(request, params, account):
    symbol, order_id, client_order_id, checked = _lookup(params, account, e.order_does_not_exist)
    order = services.simulator_find_order(account_id=account.pk, exchange_symbol=symbol, order_id=order_id,
                                          client_order_id=client_order_id, check_symbol=not checked)
    if order is None:
        raise e.order_does_not_exist()
    return JsonResponse(_order_json(order))


def _cancel_order(request, params, account):
    symbol, order_id, client_order_id, checked = _lookup(params, account, e.unknown_order_sent)
    order = services.simulator_cancel_order(account_id=account.pk, exchange_symbol=symbol, order_id=order_id,
                                            client_order_id=client_order_id, check_symbol=not checked)
    body = _order_json(order)
    body.update({"origClientOrderId": order.client_order_id,
                 "clientOrderId": params.get("newClientOrderId") or f"cancel-{order.pk}",
                 "transactTime": order.updated_ms})
    return JsonResponse(body)


@endpoint(signed=True, order_request=True)
def order(request, params, account):
    if request.method == "POST":
        return _new_order(request, params, account)
    if request.method == "DELETE":
        return _cancel_order(request, params, account)
    return _get_order(request, params, account)


def _account_orders(account, market):
    orders = SimOrder.objects.select_related("market").filter(account=account)
    if market is not None:
        orders = orders.filter(market=market)
    return orders


@endpoint(signed=True)
def open_orders(request, params, account):
    market = _market(params, required=False)
    orders = _account_orders(account, market).filter(status__in=OPEN_ORDER_STATUSES).order_by("pk")
    if request.method == "DELETE":
        if market is None:
            raise e.missing_parameter("symbol")
        canceled = []
        for pending in orders:
            canceled_order = services.simulator_cancel_order(account_id=account.pk,
                                                             exchange_symbol=market.exchange_symbol,
                                                             order_id=pending.pk)
            canceled_order.market = market
            canceled.append({**_order_json(canceled_order), "origClientOrderId": canceled_order.client_order_id})
        return JsonResponse(canceled, safe=False)
    return JsonResponse([_order_json(o) for o in orders], safe=False)


@endpoint(signed=True)
def all_orders(request, params, account):
    market = _market(params)
    orders = _account_orders(account, market)
    if _int(params, "orderId") is not None:
        orders = orders.filter(pk__gte=_int(params, "orderId"))
    if _int(params, "startTime") is not None:
        orders = orders.filter(created_ms__gte=_int(params, "startTime"))
    limit = min(_int(params, "limit", 500), 1000)
    return JsonResponse([_order_json(o) for o in orders.order_by("pk")[:limit]], safe=False)


# --- Account ----------------------------------------------------------------------------------


@endpoint(signed=True)
def account_info(request, params, account):
    services.simulator_settle_deposits(account_id=account.pk)
    balances = SimBalance.objects.filter(account=account).order_by("asset")
    if (params.get("omitZeroBalances") or "").lower() == "true":
        balances = [b for b in balances if b.free or b.locked]
    return JsonResponse({
        "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
        "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                            "seller": "0.00000000"},
        "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False,
        "updateTime": services.now_ms(), "accountType": "SPOT",
        "balances": [{"asset": b.asset, "free": fmt(b.free), "locked": fmt(b.locked)} for b in balances],
        "permissions": ["SPOT"], "uid": account.pk,
    })


@endpoint(signed=True)
def my_trades(request, params, account):
    market = _market(params)
    trades = SimTrade.objects.filter(account=account, market=market)
    if _int(params, "orderId") is not None:
        trades = trades.filter(order_id=_int(params, "orderId"))
    if _int(params, "fromId") is not None:
        trades = trades.filter(pk__gte=_int(params, "fromId"))
    if _int(params, "startTime") is not None:
        trades = trades.filter(time_ms__gte=_int(params, "startTime"))
    if _int(params, "endTime") is not None:
        trades = trades.filter(time_ms__lte=_int(params, "endTime"))
    limit = min(_int(params, "limit", 500), 1000)
    return JsonResponse([
        {"symbol": market.exchange_symbol, "id": t.pk, "orderId": t.order_id, "orderListId": -1,
         "price": fmt(t.price), "qty": fmt(t.qty), "quoteQty": fmt(t.quote_qty), "commission": fmt(t.commission),
         "commissionAsset": t.commission_asset, "time": t.time_ms, "isBuyer": t.is_buyer, "isMaker": t.is_maker,
         "isBestMatch": True}
        for t in trades.order_by("pk")[:limit]
    ], safe=False)


# --- Wallet (sapi) ----------------------------------------------------------------------------


@endpoint(signed=True)
def deposit_address(request, params, account):
    coin = params.get("coin")
    if not coin:
        raise e.missing_parameter("coin")
    address = services.simulator_deposit_address(account_id=account.pk, asset=coin, network=params.get("network"))
    return JsonResponse({"address": address.address, "coin": address.asset, "network": address.network,
                         "tag": address.tag, "url": ""})


def _capital_history(rows, params, *, time_field: str, id_param: str, id_field: str):
    """A capital history's rows (deposits or withdrawals) as Binance selects them: by ``coin``, the id
    parameter, ``startTime``/``endTime`` on ``time_field``, newest first, at most ``limit`` (1000)."""
    if params.get("coin"):
        rows = rows.filter(asset=params["coin"].upper())
    if params.get(id_param):
        rows = rows.filter(**{id_field: params[id_param]})
    if _int(params, "startTime") is not None:
        rows = rows.filter(**{f"{time_field}__gte": _int(params, "startTime")})
    if _int(params, "endTime") is not None:
        rows = rows.filter(**{f"{time_field}__lte": _int(params, "endTime")})
    return rows.order_by(f"-{time_field}", "-pk")[: min(_int(params, "limit", 1000), 1000)]


@endpoint(signed=True)
def deposit_history(request, params, account):
    services.simulator_settle_deposits(account_id=account.pk)
    deposits = _capital_history(SimDeposit.objects.filter(account=account), params, time_field="insert_ms",
                                id_param="txId", id_field="tx_id")
    status = _int(params, "status")
    rows = []
    for d in deposits:
        code = 1 if d.credited else 0
        if status is not None and status != code:
            continue
        rows.append({"id": str(d.pk), "amount": fmt(d.amount), "coin": d.asset, "network": d.network,
                     "status": code, "address": d.address, "addressTag": d.tag, "txId": d.tx_id,
                     "insertTime": d.insert_ms, "completeTime": d.confirm_at_ms if d.credited else 0,
                     "transferType": 0, "confirmTimes": "1/1" if d.credited else "0/1", "unlockConfirm": 0,
                     "walletType": 0})
    return JsonResponse(rows, safe=False)


# Withdrawal status codes of /sapi/v1/capital/withdraw/history: 4 Processing, 6 Completed.
WITHDRAW_PROCESSING, WITHDRAW_COMPLETED = 4, 6


def _withdrawal_json(w: SimWithdrawal) -> dict:
    apply_time = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(w.apply_ms / 1000))
    row = {"id": str(w.pk), "amount": fmt(w.amount - w.fee), "transactionFee": fmt(w.fee), "coin": w.asset,
           "status": WITHDRAW_COMPLETED if w.completed else WITHDRAW_PROCESSING, "address": w.address,
           "txId": w.tx_id if w.completed else "", "applyTime": apply_time, "network": w.network,
           "transferType": 0, "info": "", "confirmNo": 1 if w.completed else 0, "walletType": 0}
    if w.tag:
        row["addressTag"] = w.tag
    if w.client_id:
        row["withdrawOrderId"] = w.client_id
    if w.completed:
        row["completeTime"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(w.complete_at_ms / 1000))
    return row


@endpoint(signed=True)
def withdraw_apply(request, params, account):
    if request.method != "POST":
        raise e.bad_parameter("method", "only POST")
    for name in ("coin", "address", "amount"):
        if not params.get(name):
            raise e.missing_parameter(name)
    withdrawal = services.simulator_withdraw(
        account_id=account.pk, asset=params["coin"], amount=params["amount"], address=params["address"],
        tag=params.get("addressTag", ""), network=params.get("network", ""),
        client_id=params.get("withdrawOrderId", ""))
    return JsonResponse({"id": str(withdrawal.pk)})


@endpoint(signed=True)
def withdraw_history(request, params, account):
    services.simulator_settle_withdrawals(account_id=account.pk)
    withdrawals = _capital_history(SimWithdrawal.objects.filter(account=account), params, time_field="apply_ms",
                                   id_param="withdrawOrderId", id_field="client_id")
    rows = [_withdrawal_json(w) for w in withdrawals]
    status = _int(params, "status")
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    return JsonResponse(rows, safe=False)
