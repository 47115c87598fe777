"""The API's per-user rate limit: ``API_RATE_LIMIT`` requests per fixed window of ``API_RATE_WINDOW_S``
seconds, counted atomically so that concurrent requests can never pass it.

Each request adds one to its user's counter of the current window in one atomic step and is let through
while the count is within the limit: on Redis ``INCR`` and ``PEXPIRE`` in one ``MULTI``; in the database one
``INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count``, whose row lock (SQLite: its
write transaction) orders concurrent requests. DRF's own throttles keep a list of timestamps in the cache
and write it back after reading it, so concurrent requests overwrite each other's counts. Over the limit:
429 with ``Retry-After`` (the seconds until the window ends). Every authenticated request counts, refused
ones included.
"""
from __future__ import annotations

import logging
import math
import threading
import time

from django.conf import settings
from django.db import connection
from rest_framework.throttling import BaseThrottle

from .models import ApiRateCount

logger = logging.getLogger(__name__)

# The limit's clock (wall time: the windows are shared by every process).
clock = time.time
# A Redis counter outlives its window by this much (a clock a little behind still finds it).
REDIS_MARGIN_MS = 5000


def _take_sql() -> str:
    """One request counted: the window's row created at 1, or its count raised by one; returns the count."""
    qn, meta = connection.ops.quote_name, ApiRateCount._meta
    table = qn(meta.db_table)
    key, slot, count = (qn(meta.get_field(name).column) for name in ("key", "slot", "count"))
    return (f"INSERT INTO {table} ({key}, {slot}, {count}) VALUES (%s, %s, 1) "
            f"ON CONFLICT ({key}, {slot}) DO UPDATE SET {count} = {table}.{count} + 1 RETURNING {count}")


class DatabaseCounter:
    """Counters in ``ApiRateCount`` rows; a key's older windows are deleted when it opens a new one."""

    def take(self, key: str, slot: int, window_s: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute(_take_sql(), [key, slot])
            [count] = cursor.fetchone()
        if count == 1:
            ApiRateCount.objects.filter(key=key, slot__lt=slot).delete()
        return count


class RedisCounter:
    """Counters in Redis keys ``<key>:<slot>``, each expiring after its window."""

    def __init__(self, url: str):
        import redis

        self.redis = redis.Redis.from_url(url)

    def take(self, key: str, slot: int, window_s: int) -> int:
        name = f"{key}:{slot}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(name)
        pipe.pexpire(name, window_s * 1000 + REDIS_MARGIN_MS)
        count, _ = pipe.execute()
        return count


def throttle_url() -> str:
    """Where the counters live: ``API_THROTTLE_URL``, else the cache's Redis, else the broker's Redis, else
    ``database``."""
    if settings.API_THROTTLE_URL:
        return settings.API_THROTTLE_URL
    cache = settings.CACHES.get("default", {})
    location = cache.get("LOCATION")
    if "redis" in cache.get("BACKEND", "").lower() and isinstance(location, str):
        return location
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return settings.CELERY_BROKER_URL
    return "database"


_counters: dict[str, object] = {}
_counters_lock = threading.Lock()


def counter():
    url = throttle_url()
    with _counters_lock:
        found = _counters.get(url)
        if found is None:
            found = DatabaseCounter() if url == "database" else RedisCounter(url)
            _counters[url] = found
    return found


class UserRateThrottle(BaseThrottle):
    """DRF throttle: ``API_RATE_LIMIT`` requests per ``API_RATE_WINDOW_S`` seconds per user (see the module)."""

    def allow_request(self, request, view):
        user = request.user
        if user is None or not user.is_authenticated:
            return True  # the permission refuses it (401); only users are counted
        limit, window = settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_S
        now = clock()
        slot = int(now // window)
        count = counter().take(f"{settings.API_THROTTLE_KEY_PREFIX}:user:{user.pk}", slot, window)
        if count <= limit:
            return True
        self.retry_after = max(1, math.ceil((slot + 1) * window - now))
        logger.info("event=api_rate_limited user=%s count=%s limit=%s retry_after_s=%s", user.get_username(), count,
                    limit, self.retry_after)
        return False

    def wait(self):
        return self.retry_after
