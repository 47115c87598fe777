"""Re-encrypt every stored exchange API secret and passphrase under the newest key of EXCHANGE_SECRET_KEYS.

Rotation: put the new key first in EXCHANGE_SECRET_KEYS (keep the old ones after it), run this
command, then remove the old keys. Secrets are never printed.
"""
import json

from django.db import transaction

from exchanges.crypto import rotate_token
from exchanges.errors import SecretDecryptionError
from exchanges.models import ExchangeAccount, SimAccount
from mmproject.cli import OperatorCommand


class Command(OperatorCommand):
    help = ("Re-encrypt exchange API secrets with the newest EXCHANGE_SECRET_KEYS key (MultiFernet rotation). All "
            "or nothing: exit 2, nothing changed, when a stored secret decrypts with none of the keys.")
    domain_errors = (SecretDecryptionError,)

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help='print {"rotated": N}')

    def handle(self, *args, **options):
        rotated = 0
        with transaction.atomic():
            for model, field in ((ExchangeAccount, "api_secret_encrypted"), (ExchangeAccount, "api_passphrase_encrypted"),
                                 (SimAccount, "api_secret_encrypted")):
                for row in model.objects.select_for_update().exclude(**{field: ""}).order_by("pk"):
                    setattr(row, field, rotate_token(getattr(row, field)))
                    row.save(update_fields=[field])
                    rotated += 1
        self.stdout.write(json.dumps({"rotated": rotated}) if options["json"] else f"rotated={rotated}")
