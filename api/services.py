"""API tokens: create (bound to a Mixin user), bind, revoke, and find one by the token a request carries."""
from __future__ import annotations

import hashlib
import logging
import secrets
import uuid

from django.contrib.auth import get_user_model
from django.db import transaction

from .errors import InvalidMixinUser, UnknownUser
from .models import ApiToken

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "mm_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mixin_user_id_clean(value: str) -> str:
    """A Mixin user id (UUID) in its canonical form; ``InvalidMixinUser`` otherwise."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidMixinUser(f"the Mixin user id must be a UUID, got {value!r}") from None


def _user(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise UnknownUser(f"no user {username!r}: create it first (manage.py createsuperuser or the admin)")
    return user


def api_token_create(*, username: str, mixin_user_id: str | None = None) -> str:
    """Give ``username`` a new token (replacing any earlier one) and return it; only its digest is kept.
    The token acts for ``mixin_user_id``; None keeps the binding of the token it replaces (none: unbound)."""
    user = _user(username)
    bound = mixin_user_id_clean(mixin_user_id) if mixin_user_id is not None else None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        old = ApiToken.objects.select_for_update().filter(user=user).first()
        if bound is None:
            bound = old.mixin_user_id if old else ""
        if old:
            old.delete()
        ApiToken.objects.create(user=user, digest=_digest(token), prefix=token[:10], mixin_user_id=bound)
    logger.info("event=api_token_created user=%s prefix=%s mixin_user_id=%s", username, token[:10], bound or "-")
    return token


def api_token_bind(*, username: str, mixin_user_id: str) -> None:
    """Bind ``username``'s token to ``mixin_user_id`` (the token itself does not change)."""
    bound = mixin_user_id_clean(mixin_user_id)
    if not ApiToken.objects.filter(user=_user(username)).update(mixin_user_id=bound):
        raise UnknownUser(f"{username} has no API token: create one (api_token create {username})")
    logger.info("event=api_token_bound user=%s mixin_user_id=%s", username, bound)


def api_token_revoke(*, username: str) -> bool:
    """Delete ``username``'s token; True when there was one."""
    deleted, _ = ApiToken.objects.filter(user__username=username).delete()
    logger.info("event=api_token_revoked user=%s deleted=%s", username, bool(deleted))
    return bool(deleted)


def api_token_find(*, token: str) -> ApiToken | None:
    """The token row (with its user) of the bearer token ``token``, or None."""
    return ApiToken.objects.select_related("user").filter(digest=_digest(token)).first()
