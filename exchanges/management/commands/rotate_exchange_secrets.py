"""Re-encrypt every stored exchange API secret under the newest key of EXCHANGE_SECRET_KEYS.

Rotation: put the new key first in EXCHANGE_SECRET_KEYS (keep the old ones after it), run this
command, then remove the old keys. Secrets are never printed.
"""
from django.core.management.base import BaseCommand
from django.db import transaction

from exchanges.crypto import rotate_token
from exchanges.models import ExchangeAccount, SimAccount


class Command(BaseCommand):
    help = "Re-encrypt exchange API secrets with the newest EXCHANGE_SECRET_KEYS key (MultiFernet rotation)."

    def handle(self, *args, **options):
        rotated = 0
        with transaction.atomic():
            for model in (ExchangeAccount, SimAccount):
                for row in model.objects.select_for_update().exclude(api_secret_encrypted="").order_by("pk"):
                    row.api_secret_encrypted = rotate_token(row.api_secret_encrypted)
                    row.save(update_fields=["api_secret_encrypted"])
                    rotated += 1
        self.stdout.write(f"rotated={rotated}")
