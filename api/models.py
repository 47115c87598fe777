"""API tokens: one per Django user, stored as a SHA-256 digest (the token itself is shown once)."""
from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """The bearer token of one user. Only its digest is stored; ``prefix`` lets an operator tell tokens apart."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 hex digest of the token")
    prefix = models.CharField(max_length=12, help_text="the token's first characters, to recognise it")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"API token {self.prefix}... of {self.user}"
