"""API tokens (one per Django user, stored as a SHA-256 digest, bound to the Mixin user whose orders it
acts on) and the database's request counters of the API's per-user rate limit."""
from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """The bearer token of one user. Only its digest is stored; ``prefix`` lets an operator tell tokens apart.
    ``mixin_user_id`` is the Mixin user the token acts for: it sees and creates only that user's orders
    (empty: none, and it may not create one)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 hex digest of the token")
    prefix = models.CharField(max_length=12, help_text="the token's first characters, to recognise it")
    mixin_user_id = models.CharField(
        max_length=64, blank=True,
        help_text="Mixin user id (UUID) whose orders this token sees and creates; empty: no order at all")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"API token {self.prefix}... of {self.user}"


class ApiRateCount(models.Model):
    """Requests of one throttle key (a user) in one fixed window, when the rate limit counts in the database
    (no Redis): one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` per request takes the row's lock,
    so concurrent requests are counted one after another (api/throttling.py)."""

    key = models.CharField(max_length=128)
    slot = models.BigIntegerField(help_text="the window's number: seconds since the epoch // the window's length")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "slot"], name="api_rate_count_key_slot_uniq")]

    def __str__(self):
        return f"{self.key} window {self.slot}: {self.count}"
