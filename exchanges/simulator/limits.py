"""The simulator's request limits, as Binance enforces them, and their record.

A middleware on the simulator's API paths (``/api/v3/``, ``/sapi/``, and OKX's ``/api/v5/``) counts
every request of a caller (its API key: ``X-MBX-APIKEY`` or ``OK-ACCESS-KEY``; without one, its
address) in fixed windows, one row per caller, limit and window (``SimRateWindow``: the record a
test or an operator reads):
- request weight, ``SIM_REQUEST_WEIGHT_PER_MINUTE`` a minute (a window of
  ``SIM_REQUEST_WEIGHT_WINDOW_S``, its limit scaled to the same rate), each endpoint at its Binance
  weight (``weight_of``);
- new orders, ``SIM_ORDERS_PER_10S`` per 10 s.
A request past a limit is answered 429 with ``Retry-After`` (the seconds left in the window) and
Binance's body (``-1003``, or ``-1015`` for orders; OKX: ``50011``); a caller that sends again before
that Retry-After is banned: 418 with ``Retry-After`` for ``SIM_BAN_S`` (``SimRateBlock``). Refused
requests count too, as on Binance, so a caller that keeps hammering stays refused.

The statements are written by hand here (an upsert that returns the new count: one round trip per
limit); the table names come from the models.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from mmproject.sql import quote

from ..models import SimRateBlock, SimRateWindow

logger = logging.getLogger(__name__)

REQUEST_WEIGHT, ORDERS = "REQUEST_WEIGHT", "ORDERS"
LIMITED_PREFIXES = ("/api/v3/", "/sapi/", "/api/v5/")
OKX_PREFIX = "/api/v5/"
ORDERS_WINDOW_S = 10

WINDOW, BLOCK = quote(SimRateWindow._meta.db_table), quote(SimRateBlock._meta.db_table)

COUNT_SQL = (
    f'INSERT INTO {WINDOW} (caller, limit_type, window_start_ms, window_ms, "limit", used, requests, refused) '
    "VALUES (%s, %s, %s, %s, %s, %s, 1, 0) "
    f"ON CONFLICT (caller, limit_type, window_start_ms) DO UPDATE SET used = {WINDOW}.used + excluded.used, "
    f"requests = {WINDOW}.requests + 1 RETURNING used"
)
REFUSED_SQL = f"UPDATE {WINDOW} SET refused = refused + 1 WHERE caller = %s AND limit_type = %s AND window_start_ms = %s"
BLOCK_SQL = f"SELECT retry_after_ms, banned_until_ms FROM {BLOCK} WHERE caller = %s"
TOO_MANY_SQL = (
    f"INSERT INTO {BLOCK} (caller, retry_after_ms, banned_until_ms, too_many, bans) VALUES (%s, %s, 0, 1, 0) "
    f"ON CONFLICT (caller) DO UPDATE SET retry_after_ms = excluded.retry_after_ms, too_many = {BLOCK}.too_many + 1"
)
BAN_SQL = (
    f"INSERT INTO {BLOCK} (caller, retry_after_ms, banned_until_ms, too_many, bans) VALUES (%s, 0, %s, 0, 1) "
    f"ON CONFLICT (caller) DO UPDATE SET banned_until_ms = excluded.banned_until_ms, bans = {BLOCK}.bans + 1"
)

# Binance spot weights (GET unless named): (path after /api/v3/ or /sapi/v1/, method) -> weight, or a
# function of the parameters.
_DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (5000, 250))


def _depth_weight(params) -> int:
    try:
        limit = int(params.get("limit") or 100)
    except ValueError:
        limit = 100
    return next((weight for top, weight in _DEPTH_WEIGHTS if limit <= top), 250)


def _by_symbol(with_symbol: int, without: int):
    return lambda params: with_symbol if params.get("symbol") else without


WEIGHTS = {
    ("ping", "GET"): 1,
    ("time", "GET"): 1,
    ("exchangeInfo", "GET"): 20,
    ("depth", "GET"): _depth_weight,
    ("ticker/24hr", "GET"): _by_symbol(2, 80),
    ("ticker/price", "GET"): _by_symbol(2, 4),
    ("ticker/bookTicker", "GET"): _by_symbol(2, 4),
    ("order", "GET"): 4,
    ("order", "POST"): 1,
    ("order", "DELETE"): 1,
    ("openOrders", "GET"): _by_symbol(6, 80),
    ("openOrders", "DELETE"): 1,
    ("allOrders", "GET"): 20,
    ("account", "GET"): 20,
    ("myTrades", "GET"): 20,
    ("capital/deposit/address", "GET"): 10,
    ("capital/deposit/hisrec", "GET"): 1,
    ("capital/withdraw/apply", "POST"): 1,  # its 600 is UID weight, counted apart by Binance
    ("capital/withdraw/history", "GET"): 1,  # likewise (UID weight 18000)
}
ORDER_PLACING = {("/api/v3/order", "POST"), ("/api/v5/trade/order", "POST"), ("/api/v5/trade/batch-orders", "POST")}


def weight_of(path: str, method: str, params) -> int:
    """A request's weight: Binance's for its endpoint; 1 for any other (OKX's paths among them)."""
    for prefix in ("/api/v3/", "/sapi/v1/"):
        if path.startswith(prefix):
            weight = WEIGHTS.get((path[len(prefix):], method), 1)
            return weight(params) if callable(weight) else weight
    return 1


@dataclass(frozen=True)
class Limits:
    weight: int
    weight_window_ms: int
    orders: int
    orders_window_ms: int


def current_limits() -> Limits:
    window_s = settings.SIM_REQUEST_WEIGHT_WINDOW_S
    return Limits(weight=max(1, settings.SIM_REQUEST_WEIGHT_PER_MINUTE * window_s // 60),
                  weight_window_ms=window_s * 1000, orders=settings.SIM_ORDERS_PER_10S,
                  orders_window_ms=ORDERS_WINDOW_S * 1000)


def rate_limits_info() -> list[dict]:
    """exchangeInfo's ``rateLimits``, from the limits in force."""
    limits = current_limits()
    window_s = limits.weight_window_ms // 1000
    weight = ({"rateLimitType": REQUEST_WEIGHT, "interval": "MINUTE", "intervalNum": window_s // 60,
               "limit": limits.weight} if window_s % 60 == 0 else
              {"rateLimitType": REQUEST_WEIGHT, "interval": "SECOND", "intervalNum": window_s, "limit": limits.weight})
    return [weight, {"rateLimitType": ORDERS, "interval": "SECOND", "intervalNum": ORDERS_WINDOW_S,
                     "limit": limits.orders}]


def caller_of(request) -> str:
    key = request.META.get("HTTP_X_MBX_APIKEY") or request.META.get("HTTP_OK_ACCESS_KEY")
    return f"key:{key}" if key else f"ip:{request.META.get('REMOTE_ADDR', '')}"


def _refusal(request, status: int, retry_after_s: int, *, caller: str, orders: bool, limits: Limits) -> JsonResponse:
    if request.path.startswith(OKX_PREFIX):
        body = {"code": "50011", "msg": "Too Many Requests", "data": []}
        status = 429  # OKX answers every rate limit 429
    elif status == 418:
        body = {"code": -1003, "msg": f"Way too much request weight used; IP banned until "
                                      f"{int(time.time() * 1000) + retry_after_s * 1000}. Please use WebSocket "
                                      "Streams for live updates to avoid bans."}
    elif orders:
        body = {"code": -1015, "msg": f"Too many new orders; current limit is {limits.orders} orders per "
                                      f"{ORDERS_WINDOW_S} SECOND."}
    else:
        body = {"code": -1003, "msg": f"Too much request weight used; current limit is {limits.weight} request "
                                      f"weight per {limits.weight_window_ms // 1000} SECOND. Please use WebSocket "
                                      "Streams for live updates to avoid polling the API."}
    logger.warning("sim_rate_limited caller=%s status=%s retry_after_s=%s path=%s", caller[:12], status,
                   retry_after_s, request.path)
    response = JsonResponse(body, status=status)
    response["Retry-After"] = str(retry_after_s)
    return response


def _seconds(ms: float) -> int:
    return max(1, math.ceil(ms / 1000))


def rate_limit_check(request) -> JsonResponse | None:
    """Count the request against its caller's limits; the refusal to send, or None to serve it."""
    limits = current_limits()
    caller = caller_of(request)
    now = int(time.time() * 1000)
    method = request.method
    placing = (request.path, method) in ORDER_PLACING
    weight = weight_of(request.path, method, request.GET)
    with connection.cursor() as cur:
        cur.execute(BLOCK_SQL, [caller])
        block = cur.fetchone()
        counted = []
        over = None
        for limit_type, amount, limit, window_ms in (
            (REQUEST_WEIGHT, weight, limits.weight, limits.weight_window_ms),
            *(((ORDERS, 1, limits.orders, limits.orders_window_ms),) if placing else ()),
        ):
            start = now - now % window_ms
            cur.execute(COUNT_SQL, [caller, limit_type, start, window_ms, limit, amount])
            counted.append((limit_type, start))
            if over is None and cur.fetchone()[0] > limit:
                over = (limit_type, start + window_ms - now)
        status = retry_ms = None
        if block is not None and block[1] > now:
            status, retry_ms = 418, block[1] - now
        elif block is not None and block[0] > now:
            # Sent again before the Retry-After of a 429: banned.
            status, retry_ms = 418, settings.SIM_BAN_S * 1000
            cur.execute(BAN_SQL, [caller, now + retry_ms])
        elif over is not None:
            status, retry_ms = 429, over[1]
            cur.execute(TOO_MANY_SQL, [caller, now + _seconds(retry_ms) * 1000])
        if status is None:
            return None
        for limit_type, start in counted:
            cur.execute(REFUSED_SQL, [caller, limit_type, start])
    return _refusal(request, status, _seconds(retry_ms), caller=caller,
                    orders=over is not None and over[0] == ORDERS, limits=limits)


class SimulatorRateLimitMiddleware:
    """Applies ``rate_limit_check`` to the simulator's API paths (everything else passes untouched)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.SIM_RATE_LIMITS_ENABLED and request.path.startswith(LIMITED_PREFIXES):
            refusal = rate_limit_check(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)


def sim_rate_windows(*, caller: str | None = None, limit_type: str = REQUEST_WEIGHT):
    """The record: windows of one limit (of one caller), oldest first."""
    rows = SimRateWindow.objects.filter(limit_type=limit_type)
    if caller is not None:
        rows = rows.filter(caller=caller)
    return rows.order_by("window_start_ms", "caller")


def api_key_caller(api_key: str) -> str:
    return f"key:{api_key}"
