"""OKX v5 request signing of the simulator's OKX dialect: OK-ACCESS-KEY, -SIGN, -TIMESTAMP, -PASSPHRASE.

The signature is base64(HMAC-SHA256(secret, timestamp + METHOD + request path [+ "?" + query] + body)),
the timestamp an ISO 8601 UTC time with milliseconds within ``TIMESTAMP_WINDOW_S`` of the server's,
and the passphrase the one of SIM_API_PASSPHRASE.
"""
import base64
import functools
import hashlib
import hmac
from datetime import UTC, datetime

from ..crypto import decrypt_secret
from . import config, queries
from . import okx_errors as ox

# OKX refuses a request whose timestamp is more than 30 seconds away from its clock.
TIMESTAMP_WINDOW_S = 30


@functools.lru_cache(maxsize=1024)
def _plain_secret(token: str) -> str:
    """The secret of an encrypted token (a pure function of the token: decrypted once per process)."""
    return decrypt_secret(token)


def okx_signature(secret: str, prehash: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()


def _parse_timestamp(text: str) -> datetime:
    if not text.endswith("Z"):
        raise ox.invalid_timestamp()
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise ox.invalid_timestamp() from None


def okx_authenticate(request) -> tuple[int, dict]:
    """(account id, faults) of a signed OKX request, refused in OKX's order of header checks."""
    meta = request.META
    api_key = meta.get("HTTP_OK_ACCESS_KEY", "")
    signature = meta.get("HTTP_OK_ACCESS_SIGN", "")
    timestamp = meta.get("HTTP_OK_ACCESS_TIMESTAMP", "")
    passphrase = meta.get("HTTP_OK_ACCESS_PASSPHRASE", "")
    for value, name, code in ((api_key, "OK-ACCESS-KEY", "50103"), (passphrase, "OK-ACCESS-PASSPHRASE", "50104"),
                              (signature, "OK-ACCESS-SIGN", "50106"), (timestamp, "OK-ACCESS-TIMESTAMP", "50107")):
        if not value:
            raise ox.missing_header(name, code)
    sent_at = _parse_timestamp(timestamp)
    if abs((datetime.now(UTC) - sent_at).total_seconds()) > TIMESTAMP_WINDOW_S:
        raise ox.timestamp_expired()
    row = queries.account_by_key(api_key)
    if row is None:
        raise ox.invalid_key()
    account_id, token, faults = row
    if not hmac.compare_digest(passphrase, config.api_passphrase()):
        raise ox.passphrase_incorrect()
    query = meta.get("QUERY_STRING", "")
    path = request.path + (f"?{query}" if query else "")
    body = request.body.decode() if request.body else ""
    expected = okx_signature(_plain_secret(token), f"{timestamp}{request.method}{path}{body}")
    if not hmac.compare_digest(expected, signature):
        raise ox.invalid_sign()
    return account_id, faults
