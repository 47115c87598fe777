"""API tokens (create, authenticate) and the per-user rate limit, on Django's cache."""
from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction

from .errors import UnknownUser
from .models import ApiToken

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "mm_"
# The rate limit's clock (wall time: windows are shared by every process).
clock = time.time


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, username: str) -> str:
    """Give ``username`` a new token (replacing any earlier one) and return it; only its digest is kept."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise UnknownUser(f"no user {username!r}: create it first (manage.py createsuperuser or the admin)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        ApiToken.objects.filter(user=user).delete()
        ApiToken.objects.create(user=user, digest=_digest(token), prefix=token[:10])
    logger.info("event=api_token_created user=%s prefix=%s", username, token[:10])
    return token


def api_token_revoke(*, username: str) -> bool:
    """Delete ``username``'s token; True when there was one."""
    deleted, _ = ApiToken.objects.filter(user__username=username).delete()
    logger.info("event=api_token_revoked user=%s deleted=%s", username, bool(deleted))
    return bool(deleted)


def api_token_user(*, authorization: str):
    """The active user of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    row = ApiToken.objects.select_related("user").filter(digest=_digest(token)).first()
    if row is None or not row.user.is_active:
        return None
    return row.user


def api_rate_take(*, user_id: int, now: float | None = None) -> int:
    """Count one request of ``user_id`` in the current fixed window; 0 when allowed, otherwise the
    seconds until the window ends (the Retry-After). The counter lives in the default cache, shared
    by every process (database cache by default, Redis with CACHE_URL)."""
    limit, window = settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_S
    now = clock() if now is None else now
    slot = int(now // window)
    key = f"api-rate:{user_id}:{slot}"
    cache.add(key, 0, timeout=window + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this request opens the window
        cache.set(key, 1, timeout=window + 5)
        count = 1
    if count <= limit:
        return 0
    return max(1, math.ceil((slot + 1) * window - now))
