"""The simulator's OKX dialect: the OKX v5 REST subset (spot) that ccxt's `okx` class uses, on the same
engine, accounts, balances and orders as the Binance dialect (views.py).

Every answer is OKX's envelope ``{"code": "0", "msg": "", "data": [...]}``; refusals carry OKX's codes
(okx_errors.py), per order as ``sCode``/``sMsg`` in ``data`` for place and cancel, so ccxt raises the
class it raises against the real exchange. Private requests are signed as OKX signs them (okx_auth.py).
"""
import functools
import json
import logging
import re
import time
from decimal import Decimal

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from mmproject.sql import prepared_statements

from ..models import (
    OPEN_ORDER_STATUSES,
    SimAccount,
    SimBalance,
    SimDeposit,
    SimWithdrawal,
    SimMarket,
    SimOrder,
    SimOrderStatus,
    SimTrade,
)
from . import errors as e
from . import okx_errors as ox
from . import okx_format as fmt
from . import services
from .okx_auth import okx_authenticate
from .views import order_book

logger = logging.getLogger(__name__)

MAX_PAGE = 100
# OKX's client order id: 1 to 32 letters and digits.
CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
BATCH_MAX = 20


def _envelope(data, code: str = "0", msg: str = "", status: int = 200) -> JsonResponse:
    return JsonResponse({"code": code, "msg": msg, "data": data}, status=status)


def _params(request):
    """The query string's parameters (GET), or the JSON body (POST: an object, or a list for batches)."""
    if request.method == "GET":
        return {key: request.GET.get(key) for key in request.GET}
    if not request.body:
        return {}
    try:
        return json.loads(request.body)
    except ValueError:
        raise ox.bad_json() from None


def okx_endpoint(*, signed: bool = False, order_request: bool = False):
    """Wrap an OKX view: the envelope, OKX's errors, authentication, fault injection, the in-flight gauge.

    The view returns the ``data`` list, or a full response. ``order_request`` views (place, cancel)
    are counted in the account's in-flight gauge, as the Binance dialect counts its order requests.
    """

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            with prepared_statements():
                return _serve(view, request, signed=signed, order_request=order_request)

        return wrapper

    return decorate


def _serve(view, request, *, signed: bool, order_request: bool):
    account = None
    counted = False
    try:
        services.simulator_catch_up()
        params = _params(request)
        if signed:
            account_id, faults = okx_authenticate(request)
            account = SimAccount(pk=account_id, faults=faults)
            if order_request:
                services.simulator_request_started(account_id=account_id)
                counted = True
            latency_ms = int(faults.get("latency_ms") or 0)
            if latency_ms > 0:
                time.sleep(latency_ms / 1000)
            if services.simulator_take_fault(account=account, kind="http_429"):
                raise ox.rate_limited()
            if services.simulator_take_fault(account=account, kind="http_5xx"):
                return HttpResponse("Service Unavailable.", status=503, content_type="text/plain")
        result = view(request, params, account)
        return result if isinstance(result, HttpResponse) else _envelope(result)
    except ox.OkxApiError as error:
        return _error_response(error)
    except e.SimulatorApiError as error:
        return _error_response(ox.from_engine(error))
    finally:
        if counted:
            services.simulator_request_finished(account_id=account.pk)


def _error_response(error: ox.OkxApiError) -> JsonResponse:
    response = _envelope([], error.code, error.msg, error.status)
    if error.status == 429:
        response["Retry-After"] = "1"
    return response


def _require_dict(params) -> dict:
    if not isinstance(params, dict):
        raise ox.bad_json()
    return params


def _market(inst: str | None, required: bool = True) -> SimMarket | None:
    if not inst:
        if required:
            raise ox.parameter_error("instId")
        return None
    symbol = fmt.symbol_of(inst)
    market = SimMarket.objects.filter(symbol=symbol).first() if symbol else None
    if market is None:
        raise ox.instrument_not_found()
    return market


def _spot_only(params: dict, required: bool = False) -> bool:
    """Whether the request's instType (SPOT, or absent when not ``required``) can have any of our rows."""
    inst_type = (params.get("instType") or "").upper()
    if not inst_type:
        if required:
            raise ox.parameter_error("instType")
        return True
    if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
        raise ox.parameter_error("instType")
    return inst_type == "SPOT"


def _int(params: dict, name: str):
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ox.parameter_error(name) from None


def _limit(params: dict) -> int:
    limit = _int(params, "limit")
    if limit is None:
        return MAX_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise ox.parameter_error("limit")
    return limit


def _page(rows, params: dict, *, key: str, id_after: str, id_before: str, time_field: str):
    """OKX's paging, newest first: ``after`` (records older than this id), ``before`` (newer), ``begin``
    and ``end`` (times, ms, inclusive), ``limit`` (at most 100)."""
    after, before = _int(params, id_after), _int(params, id_before)
    if after is not None:
        rows = rows.filter(**{f"{key}__lt": after})
    if before is not None:
        rows = rows.filter(**{f"{key}__gt": before})
    begin, end = _int(params, "begin"), _int(params, "end")
    if begin is not None:
        rows = rows.filter(**{f"{time_field}__gte": begin})
    if end is not None:
        rows = rows.filter(**{f"{time_field}__lte": end})
    return rows.order_by(f"-{key}")[:_limit(params)]


# --- Public -----------------------------------------------------------------------------------


@okx_endpoint()
def public_time(request, params, account):
    return [{"ts": str(services.now_ms())}]


@okx_endpoint()
def instruments(request, params, account):
    if not _spot_only(params, required=True):
        return []
    markets = SimMarket.objects.order_by("symbol")
    if params.get("instId"):
        markets = [_market(params["instId"])]
    return [fmt.instrument(market) for market in markets]


@okx_endpoint()
def books(request, params, account):
    market = _market(params.get("instId"))
    size = _int(params, "sz") or 1
    if not 1 <= size <= 5000:
        raise ox.parameter_error("sz")
    bids, asks = order_book(market, size)
    return [fmt.book(bids, asks, services.now_ms())]


@okx_endpoint()
def ticker(request, params, account):
    market = _market(params.get("instId"))
    bids, asks = order_book(market, 1)
    return [fmt.ticker(market, bids, asks, services.now_ms())]


@okx_endpoint()
def tickers(request, params, account):
    if not _spot_only(params, required=True):
        return []
    now = services.now_ms()
    rows = []
    for market in SimMarket.objects.order_by("symbol"):
        bids, asks = order_book(market, 1)
        rows.append(fmt.ticker(market, bids, asks, now))
    return rows


# --- Funding (asset) --------------------------------------------------------------------------


def _assets() -> list[str]:
    assets = set()
    for base, quote in SimMarket.objects.values_list("base", "quote"):
        assets.update((base, quote))
    assets.update(SimBalance.objects.values_list("asset", flat=True).distinct())
    return sorted(assets)


@okx_endpoint(signed=True)
def currencies(request, params, account):
    wanted = {c.strip().upper() for c in (params.get("ccy") or "").split(",") if c.strip()}
    return [fmt.currency(asset) for asset in _assets() if not wanted or asset in wanted]


@okx_endpoint(signed=True)
def deposit_address(request, params, account):
    ccy = (params.get("ccy") or "").upper()
    if not ccy:
        raise ox.parameter_error("ccy")
    if ccy not in _assets():
        raise ox.currency_not_found()
    address = services.simulator_deposit_address(account_id=account.pk, asset=ccy)
    return [fmt.deposit_address(address)]


def _asset_history(rows, params, *, time_field: str, ids: dict[str, str], state_field: str, done_state: str,
                   pending_state: str):
    """A funding history's rows (deposits or withdrawals) as OKX selects them: by ``ccy``, each id parameter
    of ``ids`` (parameter -> field), ``state`` (``done_state`` when ``state_field`` is true, ``pending_state``
    when not, any other state none), paged by time (``after``: older than this ts, ``before``: newer), newest
    first, at most ``limit``. None when the state asked cannot match."""
    if params.get("ccy"):
        rows = rows.filter(asset=params["ccy"].upper())
    for param, field_name in ids.items():
        if params.get(param):
            rows = rows.filter(**{field_name: _int(params, param) if field_name == "pk" else params[param]})
    state = params.get("state")
    if state not in (None, ""):
        if state not in (done_state, pending_state):
            return None
        rows = rows.filter(**{state_field: state == done_state})
    after, before = _int(params, "after"), _int(params, "before")
    if after is not None:
        rows = rows.filter(**{f"{time_field}__lt": after})
    if before is not None:
        rows = rows.filter(**{f"{time_field}__gt": before})
    return rows.order_by(f"-{time_field}", "-pk")[:_limit(params)]


@okx_endpoint(signed=True)
def deposit_history(request, params, account):
    services.simulator_settle_deposits(account_id=account.pk)
    deposits = _asset_history(SimDeposit.objects.filter(account_id=account.pk), params, time_field="insert_ms",
                              ids={"depId": "pk", "txId": "tx_id"}, state_field="credited", done_state="2",
                              pending_state="0")
    return [fmt.deposit(d) for d in deposits or ()]


# --- Account ----------------------------------------------------------------------------------


@okx_endpoint(signed=True)
def account_balance(request, params, account):
    services.simulator_settle_deposits(account_id=account.pk)
    balances = SimBalance.objects.filter(account_id=account.pk).order_by("asset")
    wanted = {c.strip().upper() for c in (params.get("ccy") or "").split(",") if c.strip()}
    now = services.now_ms()
    details = [fmt.balance_detail(b, now) for b in balances if (not wanted or b.asset in wanted)]
    return [fmt.balance(details, now)]


# --- Trade: place and cancel ------------------------------------------------------------------


def _order_ack(order_id: str, client_order_id: str, tag: str = "", code: str = "0", msg: str = "") -> dict:
    return {"clOrdId": client_order_id, "ordId": order_id, "tag": tag, "ts": str(services.now_ms()),
            "sCode": code, "sMsg": msg}


def _batch_response(acks: list[dict]) -> JsonResponse:
    """OKX's answer to place/cancel requests: code 0 when all succeeded, 2 when some, 1 when none."""
    failed = sum(1 for ack in acks if ack["sCode"] != "0")
    if not failed:
        return _envelope(acks)
    if failed == len(acks):
        return _envelope(acks, "1", "All operations failed" if len(acks) > 1 else "Operation failed.")
    return _envelope(acks, "2", "Bulk operation partially succeeded.")


def _engine_order(request_order: dict) -> dict:
    """The engine's order arguments from OKX's place-order fields; ``OkxApiError`` on a bad field."""
    side = (request_order.get("side") or "").lower()
    if side not in ("buy", "sell"):
        raise ox.parameter_error("side")
    if (request_order.get("tdMode") or "cash") != "cash":
        raise ox.OkxApiError("51010", "You can't complete this request under your current account mode.")
    ord_type = request_order.get("ordType") or ""
    size = request_order.get("sz")
    if not size:
        raise ox.parameter_error("sz")
    args = {"side": side.upper(), "qty": str(size), "price": request_order.get("px") or None}
    if ord_type == "market":
        # OKX's default for a spot market buy is an amount of quote to spend, for a sell of base.
        target = request_order.get("tgtCcy") or ("quote_ccy" if side == "buy" else "base_ccy")
        if target not in ("base_ccy", "quote_ccy"):
            raise ox.parameter_error("tgtCcy")
        args.update(order_type="MARKET", price=None)
        if target == "quote_ccy":
            args.update(qty=None, quote_qty=str(size))
        return args
    if not args["price"]:
        raise ox.OkxApiError("51204", "The price for the limit order can not be empty.")  # InvalidOrder
    if ord_type == "limit":
        args.update(order_type="LIMIT", time_in_force="GTC")
    elif ord_type == "post_only":
        args.update(order_type="LIMIT_MAKER", time_in_force="GTC", post_only_cancels=True)
    elif ord_type == "ioc":
        args.update(order_type="LIMIT", time_in_force="IOC")
    else:
        raise ox.parameter_error("ordType")
    return args


def _place_one(request_order, account) -> dict:
    if not isinstance(request_order, dict):
        raise ox.bad_json()
    client_order_id = request_order.get("clOrdId") or ""
    tag = request_order.get("tag") or ""
    try:
        market = _market(request_order.get("instId"))
        if client_order_id and not CLIENT_ORDER_ID.match(client_order_id):
            raise ox.parameter_error("clOrdId")
        args = _engine_order(request_order)
        order, _ = services.simulator_place_order(
            account_id=account.pk, exchange_symbol=market.exchange_symbol, market=market,
            client_order_id=client_order_id or f"sim{services.now_ms()}x{account.pk}", **args)
    except ox.OkxApiError as error:
        if error.status != 200:
            raise
        return _order_ack("", client_order_id, tag, error.code, error.msg)
    except e.SimulatorApiError as error:
        code, msg = ox.okx_code(error)
        return _order_ack("", client_order_id, tag, code, msg)
    return _order_ack(str(order.pk), order.client_order_id, tag, "0", "Order placed")


def _place(request, params, account) -> JsonResponse:
    orders = params if isinstance(params, list) else [params]
    if not orders or len(orders) > BATCH_MAX:
        raise ox.OkxApiError("51111", f"Maximum {BATCH_MAX} orders can be placed in bulk.")
    acks = [_place_one(request_order, account) for request_order in orders]
    accepted_timeout_s = float(account.faults.get("timeout_after_accept_s") or 0)
    if accepted_timeout_s > 0 and any(ack["sCode"] == "0" for ack in acks):
        # The orders exist; the client sees only a timeout (the ambiguous case of the error policy).
        logger.info("sim_fault_injected account_id=%s kind=timeout_after_accept_s dialect=okx", account.pk)
        time.sleep(accepted_timeout_s)
    return _batch_response(acks)


@okx_endpoint(signed=True, order_request=True)
def place_order(request, params, account):
    return _place(request, _require_dict(params), account)


@okx_endpoint(signed=True, order_request=True)
def place_batch_orders(request, params, account):
    if not isinstance(params, list):
        raise ox.bad_json()
    return _place(request, params, account)


def _order_id(value) -> int | None:
    """An ordId as the engine's id; None when it cannot be one of ours (so: not found)."""
    text = str(value or "")
    return int(text) if text.isdigit() else None


def _cancel_one(request_order, account) -> dict:
    if not isinstance(request_order, dict):
        raise ox.bad_json()
    order_id, client_order_id = request_order.get("ordId") or "", request_order.get("clOrdId") or ""
    try:
        market = _market(request_order.get("instId"))
        if not order_id and not client_order_id:
            raise ox.parameter_error("ordId/clOrdId")
        numeric_id = _order_id(order_id) if order_id else None
        if order_id and numeric_id is None:
            return _order_ack(order_id, client_order_id, "", *ox.CANCEL_NOT_FOUND)
        if services.simulator_take_fault(account=account, kind="unknown_order"):
            return _order_ack(order_id, client_order_id, "", *ox.CANCEL_NOT_FOUND)
        lookup = {"order_id": numeric_id} if order_id else {"client_order_id": client_order_id}
        try:
            order = services.simulator_cancel_order(account_id=account.pk, exchange_symbol=market.exchange_symbol,
                                                    **lookup)
        except e.SimulatorApiError as error:
            if error.reason != "cancel_not_found":
                raise
            found = services.simulator_find_order(account_id=account.pk, exchange_symbol=market.exchange_symbol,
                                                  **lookup)
            code_msg = ox.CANCEL_NOT_FOUND
            if found is not None:
                code_msg = ox.CANCEL_ALREADY_FILLED if found.status == SimOrderStatus.FILLED \
                    else ox.CANCEL_ALREADY_CANCELED
            return _order_ack(order_id, client_order_id, "", *code_msg)
    except ox.OkxApiError as error:
        if error.status != 200:
            raise
        return _order_ack(order_id, client_order_id, "", error.code, error.msg)
    except e.SimulatorApiError as error:
        return _order_ack(order_id, client_order_id, "", *ox.okx_code(error))
    return _order_ack(str(order.pk), order.client_order_id, "", "0", "")


@okx_endpoint(signed=True, order_request=True)
def cancel_order(request, params, account):
    return _batch_response([_cancel_one(_require_dict(params), account)])


@okx_endpoint(signed=True, order_request=True)
def cancel_batch_orders(request, params, account):
    if not isinstance(params, list) or not params or len(params) > BATCH_MAX:
        raise ox.bad_json()
    return _batch_response([_cancel_one(request_order, account) for request_order in params])


# --- Trade: orders and fills ------------------------------------------------------------------


def _orders_json(orders) -> list[dict]:
    orders = list(orders)
    fills = fmt.order_fills(o.pk for o in orders)
    return [fmt.order(o, fills.get(o.pk)) for o in orders]


@okx_endpoint(signed=True)
def get_order(request, params, account):
    market = _market(params.get("instId"))
    order_id, client_order_id = params.get("ordId"), params.get("clOrdId")
    if not order_id and not client_order_id:
        raise ox.parameter_error("ordId")
    if services.simulator_take_fault(account=account, kind="unknown_order"):
        raise ox.order_not_found()
    if order_id:
        numeric_id = _order_id(order_id)
        found = None if numeric_id is None else services.simulator_find_order(
            account_id=account.pk, exchange_symbol=market.exchange_symbol, order_id=numeric_id)
    else:
        found = services.simulator_find_order(account_id=account.pk, exchange_symbol=market.exchange_symbol,
                                              client_order_id=client_order_id)
    if found is None:
        raise ox.order_not_found()
    found = SimOrder.objects.select_related("market").get(pk=found.pk)
    return _orders_json([found])


def _account_orders(account, params: dict, statuses):
    orders = SimOrder.objects.select_related("market").filter(account_id=account.pk, status__in=statuses)
    market = _market(params.get("instId"), required=False)
    if market is not None:
        orders = orders.filter(market=market)
    ord_type = params.get("ordType")
    if ord_type:
        wanted = {"market": {"type": "MARKET"}, "post_only": {"type": "LIMIT_MAKER"},
                  "ioc": {"type": "LIMIT", "time_in_force": "IOC"}, "limit": {"type": "LIMIT", "time_in_force": "GTC"}}
        if ord_type not in wanted:
            return orders.none()
        orders = orders.filter(**wanted[ord_type])
    return orders


def _orders_in(params, account, statuses, states: tuple[str, ...]):
    """The account's orders of ``statuses``, or of the OKX ``state`` asked for (one of ``states``), paged."""
    state = params.get("state")
    if state:
        if state not in states:
            raise ox.parameter_error("state")
        statuses = fmt.STATES_BY_OKX[state]
    orders = _account_orders(account, params, statuses)
    return _orders_json(_page(orders, params, key="pk", id_after="after", id_before="before", time_field="created_ms"))


@okx_endpoint(signed=True)
def orders_pending(request, params, account):
    if not _spot_only(params):
        return []
    return _orders_in(params, account, list(OPEN_ORDER_STATUSES), ("live", "partially_filled"))


@okx_endpoint(signed=True)
def orders_history(request, params, account):
    """Closed orders (filled, canceled; OKX's last 7 days and archive are one list here)."""
    if not _spot_only(params, required=True):
        return []
    return _orders_in(params, account, [SimOrderStatus.FILLED, SimOrderStatus.CANCELED, SimOrderStatus.EXPIRED],
                      ("filled", "canceled"))


@okx_endpoint(signed=True)
def fills(request, params, account):
    """The account's fills, newest first (OKX's last 3 days and 3 months are one list here)."""
    if not _spot_only(params):
        return []
    trades = SimTrade.objects.select_related("market", "order").filter(account_id=account.pk)
    market = _market(params.get("instId"), required=False)
    if market is not None:
        trades = trades.filter(market=market)
    if params.get("ordId"):
        trades = trades.filter(order_id=_order_id(params["ordId"]) or 0)
    return [fmt.fill(t, t.order) for t in _page(trades, params, key="pk", id_after="after", id_before="before",
                                                time_field="time_ms")]


@okx_endpoint(signed=True)
def trade_fee(request, params, account):
    market = _market(params.get("instId"), required=False) or SimMarket.objects.order_by("symbol").first()
    maker = market.maker_fee if market else Decimal("0.001")
    taker = market.taker_fee if market else Decimal("0.001")
    # OKX gives fee rates as negative numbers (a charge).
    return [{"category": "1", "delivery": "", "exercise": "", "instType": "SPOT", "level": "Lv1",
             "maker": fmt.num(-maker), "makerU": "", "makerUSDC": "", "taker": fmt.num(-taker), "takerU": "",
             "takerUSDC": "", "ruleType": "normal", "ts": str(services.now_ms())}]


@csrf_exempt
def order_dispatch(request):
    """/api/v5/trade/order: POST places an order (counted as an order request), GET reads one."""
    return place_order(request) if request.method == "POST" else get_order(request)


# --- Withdrawals ------------------------------------------------------------------------------


@okx_endpoint(signed=True)
def withdrawal(request, params, account):
    for name in ("ccy", "toAddr", "amt"):
        if not params.get(name):
            raise e.missing_parameter(name)
    address, _, tag = params["toAddr"].partition(":")  # ccxt sends address:tag
    chain = params.get("chain") or ""
    network = chain.partition("-")[2] if "-" in chain else ""
    w = services.simulator_withdraw(account_id=account.pk, asset=params["ccy"], amount=params["amt"],
                                    address=address, tag=tag, network=network, client_id=params.get("clientId", ""))
    return [{"amt": fmt.num(w.amount), "wdId": str(w.pk), "ccy": w.asset, "clientId": w.client_id,
             "chain": fmt.chain_id(w.asset, w.network)}]


@okx_endpoint(signed=True)
def withdrawal_history(request, params, account):
    services.simulator_settle_withdrawals(account_id=account.pk)
    withdrawals = _asset_history(SimWithdrawal.objects.filter(account_id=account.pk), params, time_field="apply_ms",
                                 ids={"wdId": "pk", "clientId": "client_id", "txId": "tx_id"},
                                 state_field="completed", done_state="2", pending_state="1")
    return [fmt.withdrawal(w) for w in withdrawals or ()]
