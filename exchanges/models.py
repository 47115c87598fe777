"""Exchange accounts (credentials encrypted at rest) and the exchange simulator's state."""
from django.db import models

from .crypto import decrypt_secret, encrypt_secret


class ExchangeAccount(models.Model):
    """An account on an exchange reached through ccxt.

    The API secret is stored only as a Fernet token; ``api_secret`` decrypts it on demand.
    ``base_url`` overrides the exchange's API URLs (how an account points at the simulator).
    """

    exchange_id = models.CharField(max_length=64, help_text="ccxt exchange id, e.g. binance")
    label = models.CharField(max_length=100, unique=True)
    api_key = models.CharField(max_length=256, blank=True)
    api_secret_encrypted = models.TextField(blank=True, editable=False)
    base_url = models.CharField(
        max_length=300,
        blank=True,
        help_text="Optional root URL replacing the exchange's API URLs, e.g. http://127.0.0.1:8000",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["label"]

    def __str__(self):
        return f"{self.label} ({self.exchange_id})"

    def __repr__(self):
        return f"<ExchangeAccount id={self.pk} label={self.label!r} exchange_id={self.exchange_id!r}>"

    @property
    def api_secret(self) -> str:
        return decrypt_secret(self.api_secret_encrypted) if self.api_secret_encrypted else ""

    @api_secret.setter
    def api_secret(self, plain: str) -> None:
        self.api_secret_encrypted = encrypt_secret(plain) if plain else ""
