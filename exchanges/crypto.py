"""Encryption at rest of exchange API secrets: Fernet tokens, MultiFernet for key rotation.

Keys come from settings.EXCHANGE_SECRET_KEYS (comma-separated, newest first). When none is
set (the embedded run) one key is derived from SECRET_KEY, so `make run` works out of the box.
"""
import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from .errors import SecretDecryptionError


def _derived_key(secret_key: str) -> bytes:
    digest = hashlib.sha256(b"mm.exchanges.secret-at-rest:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _configured_keys() -> list[bytes]:
    keys = [key.strip().encode() for key in settings.EXCHANGE_SECRET_KEYS if key.strip()]
    return keys or [_derived_key(settings.SECRET_KEY)]


def multi_fernet() -> MultiFernet:
    """The MultiFernet of the configured keys; the first one encrypts, all of them decrypt."""
    return MultiFernet([Fernet(key) for key in _configured_keys()])


def encrypt_secret(plain: str) -> str:
    return multi_fernet().encrypt(plain.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return multi_fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            "cannot decrypt an exchange secret with any key of EXCHANGE_SECRET_KEYS; "
            "was a key removed before `manage.py rotate_exchange_secrets` re-encrypted it?"
        ) from None


def rotate_token(token: str) -> str:
    """Re-encrypt a token under the newest key (it must decrypt with one of the keys)."""
    try:
        return multi_fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError("cannot rotate an exchange secret: no configured key decrypts it") from None
