"""The account-wide request budget: one token bucket per exchange account, shared by every process.

ccxt's own limiter (sync ``Exchange.throttle(cost)``, called from ``fetch2`` for every request when
``enableRateLimit`` is on) lives in one process: eight worker processes each spend the account's
whole budget. ``attach_budget(client, account)`` replaces it, for that client, with a bucket kept
in shared state, so every ccxt call of the account from any process draws on one budget.

Sizing comes from ccxt: ``rateLimit`` is milliseconds per cost unit and ``fetch2`` passes each
endpoint's cost (its weight in ccxt's api definition: Binance's spot weights x 0.2 at 50 ms, i.e.
6000 weight a minute). Only ``EXCHANGE_BUDGET_SHARE`` of that rate is used. Exchanges that also cap
new orders per interval (Binance: 100 per 10 s per account) have a second lane (exchanges.dialects' ``order_limit``).

The bucket is GCRA (virtual scheduling) with reservations: each request books the next free
stretch of ``cost x interval`` ms on a theoretical arrival time (TAT) and is sent at
``TAT - burst`` at the earliest; requests queue in booking order, nobody polls. In any window of
W ms the requests sent cost at most ``(W + burst) / interval + one request's cost``.

Where the state lives (``EXCHANGE_BUDGET_URL``): Redis (a Lua script, Redis's clock; the broker's
Redis when ``CELERY_BROKER_URL`` is redis) or, on the embedded default (SQLite + filesystem broker,
every process on one machine), a JSON file per account under ``MM_VAR_DIR/budget`` updated under
``flock``. Workers on several machines need the Redis form.

A 429 or 418 (ccxt ``RateLimitExceeded`` / ``DDoSProtection``) pauses every send of the account,
in every process, for the answer's Retry-After (a doubling backoff without one), logs
``event=exchange_rate_limited`` at error level and counts it (``/metrics``:
``mm_exchange_rate_limited_total``).
"""
from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ccxt
from django.conf import settings

from .dialects import order_limit
from .dialects import receive_window_s as dialect_receive_window_s

logger = logging.getLogger(__name__)

RATE_LIMIT_ERRORS = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)
# The state of a bucket outlives its last booking by this much (then it is forgotten: a full bucket).
STATE_TTL_MS = 3_600_000


@dataclass(frozen=True)
class Sizing:
    """Milliseconds one cost unit (one order) books, and how far ahead of its TAT a request may go."""
    cost_ms: float
    order_ms: float  # 0: no order lane
    burst_ms: float


def sizing_for(client: ccxt.Exchange) -> Sizing:
    share = settings.EXCHANGE_BUDGET_SHARE
    cost_ms = float(client.rateLimit) / share
    order = order_limit(client)
    order_ms = order.interval_s * 1000 / order.count / share if order else 0.0
    return Sizing(cost_ms=cost_ms, order_ms=order_ms, burst_ms=float(settings.EXCHANGE_BUDGET_BURST_MS))


# --- Backends: book(key, cost_ms, order_ms, burst_ms) -> ms to wait; pause; counters --------------


_BOOK_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost, order, burst, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tat', 'tat_orders', 'pause_until')
local tat, tat_o, pause = tonumber(state[1]) or 0, tonumber(state[2]) or 0, tonumber(state[3]) or 0
local send = math.max(now, pause, tat - burst)
if order > 0 then send = math.max(send, tat_o - burst) end
redis.call('HSET', KEYS[1], 'tat', math.max(tat, send) + cost)
if order > 0 then redis.call('HSET', KEYS[1], 'tat_orders', math.max(tat_o, send) + order) end
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl + math.max(0, send - now)))
return {send - now, math.max(0, pause - now)}
"""

_PAUSE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hits = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], 60000)
local pause_ms = tonumber(ARGV[1])
if pause_ms < 0 then pause_ms = math.min(60000, tonumber(ARGV[2]) * 2 ^ (hits - 1)) end
local until_ms = math.max(tonumber(redis.call('HGET', KEYS[1], 'pause_until') or '0'), now + pause_ms)
redis.call('HSET', KEYS[1], 'pause_until', until_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(redis.call('PTTL', KEYS[1]), until_ms - now + tonumber(ARGV[4]))))
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
return until_ms - now
"""

_PAUSED_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return math.max(0, tonumber(redis.call('HGET', KEYS[1], 'pause_until') or '0') - now)
"""


class RedisBackend:
    def __init__(self, url: str):
        import redis

        self.redis = redis.Redis.from_url(url)
        self._book = self.redis.register_script(_BOOK_LUA)
        self._pause = self.redis.register_script(_PAUSE_LUA)
        self._paused = self.redis.register_script(_PAUSED_LUA)

    def book(self, key: str, cost_ms: float, order_ms: float, burst_ms: float) -> tuple[float, float]:
        wait, paused = self._book(keys=[key], args=[cost_ms, order_ms, burst_ms, STATE_TTL_MS])
        return float(wait), float(paused)

    def pause(self, key: str, pause_ms: float | None, backoff_ms: float, status: int) -> float:
        return float(self._pause(keys=[key, f"{key}:recent", f"{key}:counts"],
                                 args=[-1 if pause_ms is None else pause_ms, backoff_ms, str(status), STATE_TTL_MS]))

    def paused_s(self, key: str) -> float:
        return float(self._paused(keys=[key])) / 1000

    def booked_ahead_s(self, key: str) -> float:
        tat, now = self.redis.hget(key, "tat"), self.redis.time()
        return max(0.0, float(tat or 0) - (now[0] * 1000 + now[1] // 1000)) / 1000

    def status(self, key: str) -> tuple[float, dict[str, int]]:
        pause_until, now = self.redis.hget(key, "pause_until"), self.redis.time()
        now_ms = now[0] * 1000 + now[1] // 1000
        counts = {k.decode(): int(v) for k, v in self.redis.hgetall(f"{key}:counts").items()}
        return max(0.0, float(pause_until or 0) - now_ms) / 1000, counts


class FileBackend:
    """One JSON file per account, read and written under an exclusive ``flock``: every process of
    one machine (the embedded run) shares it; the clock is the machine's."""

    def __init__(self, directory: str):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _update(self, key: str, change):
        path = self.directory / (key.replace(":", "_").replace("/", "_") + ".json")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 1 << 16)
            state = json.loads(raw) if raw else {}
            now = time.time() * 1000
            result = change(state, now)
            data = json.dumps(state).encode()
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, data)
            return result
        finally:
            os.close(fd)  # releases the lock

    def book(self, key: str, cost_ms: float, order_ms: float, burst_ms: float) -> tuple[float, float]:
        def change(state, now):
            tat, tat_o, pause = state.get("tat", 0), state.get("tat_orders", 0), state.get("pause_until", 0)
            send = max(now, pause, tat - burst_ms)
            if order_ms > 0:
                send = max(send, tat_o - burst_ms)
                state["tat_orders"] = max(tat_o, send) + order_ms
            state["tat"] = max(tat, send) + cost_ms
            return send - now, max(0.0, pause - now)

        return self._update(key, change)

    def pause(self, key: str, pause_ms: float | None, backoff_ms: float, status: int) -> float:
        def change(state, now):
            recent = [t for t in state.get("recent", []) if t > now - 60000] + [now]
            state["recent"] = recent
            ms = pause_ms if pause_ms is not None else min(60000.0, backoff_ms * 2 ** (len(recent) - 1))
            state["pause_until"] = max(state.get("pause_until", 0), now + ms)
            counts = state.setdefault("counts", {})
            counts[str(status)] = counts.get(str(status), 0) + 1
            return state["pause_until"] - now

        return self._update(key, change)

    def paused_s(self, key: str) -> float:
        return self._update(key, lambda state, now: max(0.0, state.get("pause_until", 0) - now) / 1000)

    def booked_ahead_s(self, key: str) -> float:
        return self._update(key, lambda state, now: max(0.0, state.get("tat", 0) - now) / 1000)

    def status(self, key: str) -> tuple[float, dict[str, int]]:
        return self._update(key, lambda state, now: (max(0.0, state.get("pause_until", 0) - now) / 1000,
                                                     dict(state.get("counts", {}))))


_backends: dict[str, object] = {}
_backends_lock = threading.Lock()


def budget_url() -> str:
    """Where the buckets live: ``EXCHANGE_BUDGET_URL``, else the broker's Redis, else files in MM_VAR_DIR."""
    url = settings.EXCHANGE_BUDGET_URL
    if url:
        return url
    broker = settings.CELERY_BROKER_URL
    if broker.startswith(("redis://", "rediss://")):
        return broker
    return f"file://{Path(settings.VAR_DIR) / 'budget'}"


def backend():
    url = budget_url()
    with _backends_lock:
        found = _backends.get(url)
        if found is None:
            found = FileBackend(url[len("file://"):]) if url.startswith("file://") else RedisBackend(url)
            _backends[url] = found
    return found


def budget_key(account_id: int, exchange_id: str) -> str:
    return f"{settings.EXCHANGE_BUDGET_KEY_PREFIX}:{exchange_id}:{account_id}"


# --- The budget of one account, attached to a client --------------------------------------------


class AccountBudget:
    """The shared bucket of one account, as one ccxt client uses it."""

    def __init__(self, *, account_id: int, exchange_id: str, sizing: Sizing, order_paths: frozenset[str]):
        self.account_id, self.exchange_id, self.sizing = account_id, exchange_id, sizing
        self.key = budget_key(account_id, exchange_id)
        self.order_paths = order_paths
        self._local = threading.local()

    def acquire(self, cost: float | None = None) -> float:
        """Book ``cost`` units (and one order when the request being sent places one); sleep until
        the booking is due and no pause is on. Return the seconds slept."""
        cost = 1.0 if cost is None else float(cost)
        order_ms = self.sizing.order_ms if getattr(self._local, "placing_order", False) else 0.0
        slept = 0.0
        while True:
            wait_ms, _ = backend().book(self.key, cost * self.sizing.cost_ms, order_ms, self.sizing.burst_ms)
            if wait_ms > 0:
                time.sleep(wait_ms / 1000)
                slept += wait_ms / 1000
            # A pause set while this request waited (another process got a 429) holds it too.
            paused_s = backend().paused_s(self.key) if wait_ms > 0 else 0.0
            if paused_s <= 0:
                return slept
            time.sleep(paused_s)
            slept += paused_s

    def rate_limited(self, client: ccxt.Exchange, error: Exception) -> None:
        """Pause the account's sends after a 429/418 and alert."""
        status = _http_status(error) or 429
        retry_after = _retry_after_s(client.last_response_headers)
        pause_ms = None if retry_after is None else retry_after * 1000
        paused_ms = backend().pause(self.key, pause_ms, settings.EXCHANGE_RATE_LIMIT_BACKOFF_S * 1000, status)
        logger.error("event=exchange_rate_limited account_id=%s exchange_id=%s status=%s retry_after_s=%s "
                     "paused_s=%.3f error=%s", self.account_id, self.exchange_id, status, retry_after,
                     paused_ms / 1000, type(error).__name__)

    def fetch2(self, original, client: ccxt.Exchange):
        def fetch2(path, api="public", method="GET", params=None, config=None):
            self._local.placing_order = method == "POST" and path in self.order_paths
            try:
                return original(path, api, method, {} if params is None else params, {} if config is None else config)
            except RATE_LIMIT_ERRORS as error:
                self.rate_limited(client, error)
                raise
            finally:
                self._local.placing_order = False

        return fetch2


def _http_status(error: Exception) -> int | None:
    """The HTTP status behind a ccxt error raised while handling an HTTP error (requests' HTTPError)."""
    context = error.__context__
    response = getattr(context, "response", None)
    return getattr(response, "status_code", None)


def _retry_after_s(headers) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 and math.isfinite(seconds) else None


def attach_budget(client: ccxt.Exchange, account) -> ccxt.Exchange:
    """Make every request of ``client`` (an ``ExchangeAccount``'s ccxt instance) draw on the
    account's shared budget instead of ccxt's per-process limiter; return the client.

    Off (the client unchanged) with ``EXCHANGE_BUDGET_ENABLED=false``; a client attached already is
    left as it is.
    """
    if not settings.EXCHANGE_BUDGET_ENABLED or getattr(client, "mm_budget", None) is not None:
        return client
    order = order_limit(client)
    budget = AccountBudget(account_id=account.pk, exchange_id=client.id, sizing=sizing_for(client),
                           order_paths=order.paths if order else frozenset())
    client.enableRateLimit = True  # fetch2 calls throttle(cost) only then
    client.throttle = budget.acquire
    client.fetch2 = budget.fetch2(client.fetch2, client)
    client.mm_budget = budget
    return client


def budget_status(*, account_id: int, exchange_id: str) -> tuple[float, dict[str, int]]:
    """Seconds the account's sends are still paused, and its 429/418 answers counted by status."""
    return backend().status(budget_key(account_id, exchange_id))


def budget_booked_ahead_s(*, account_id: int, exchange_id: str) -> float:
    """How far ahead of now the account's request budget is booked: 0 while it sends below its share of
    the exchange's rate; above it, requests wait their turn (the account spends its whole share)."""
    return backend().booked_ahead_s(budget_key(account_id, exchange_id))


def receive_window_s(client: ccxt.Exchange) -> float:
    """How long after it was signed a request of ``client`` can still be accepted by the exchange:
    the window ccxt sends with each signed request where the exchange has one (exchanges.dialects),
    else ``EXCHANGE_RECEIVE_WINDOW_S``."""
    window_s = dialect_receive_window_s(client)
    return window_s if window_s is not None else float(settings.EXCHANGE_RECEIVE_WINDOW_S)
