"""The Mixin payment provider: polls the bot's snapshots with a persisted cursor and sends transfers
whose trace id is the refund's request id (Mixin returns the first transfer for a repeated trace id).

Requests carry Mixin's session token: an EdDSA (Ed25519) JWT with ``uid``, ``sid``, ``iat``,
``exp``, ``jti``, ``scp`` and ``sig`` = hex(sha256(method + uri + body)).
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from decimal import Decimal
from urllib.parse import urlencode

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from ledger.amounts import canonical

from ..errors import ProviderError, TransferRejected, TransferUncertain
from .base import PaymentProvider, TransferReceipt

logger = logging.getLogger(__name__)

TOKEN_TTL_S = 600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class MixinUnavailable(ProviderError):
    """Mixin could not be reached or answered with a server error; poll again later."""


class MixinPaymentProvider(PaymentProvider):
    name = "mixin"

    def __init__(self, *, base_url: str, client_id: str, session_id: str, private_key_hex: str,
                 timeout: float = 10.0, poll_limit: int = 100):
        if not (client_id and session_id and private_key_hex):
            raise ProviderError("the Mixin provider needs MIXIN_CLIENT_ID, MIXIN_SESSION_ID and "
                                "MIXIN_SESSION_PRIVATE_KEY (hex Ed25519 seed)")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.session_id = session_id
        self.key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private_key_hex)[:32])
        self.timeout = timeout
        self.poll_limit = poll_limit
        self.http = requests.Session()

    @classmethod
    def from_settings(cls) -> MixinPaymentProvider:
        return cls(base_url=settings.MIXIN_API_BASE, client_id=settings.MIXIN_CLIENT_ID,
                   session_id=settings.MIXIN_SESSION_ID, private_key_hex=settings.MIXIN_SESSION_PRIVATE_KEY,
                   timeout=settings.MIXIN_HTTP_TIMEOUT_S, poll_limit=settings.MIXIN_POLL_LIMIT)

    # --- HTTP -----------------------------------------------------------------------
    def _token(self, method: str, uri: str, body: bytes) -> str:
        now = int(time.time())
        claims = {
            "uid": self.client_id, "sid": self.session_id, "iat": now, "exp": now + TOKEN_TTL_S,
            "jti": str(uuid.uuid4()), "scp": "FULL",
            "sig": hashlib.sha256(method.encode() + uri.encode() + body).hexdigest(),
        }
        header = _b64url(json.dumps({"alg": "EdDSA", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = self.key.sign(f"{header}.{payload}".encode())
        return f"{header}.{payload}.{_b64url(signature)}"

    def _call(self, method: str, path: str, *, params: dict | None = None, body: dict | None = None) -> dict:
        """Returns the response's ``data``; raises MixinUnavailable (unknown outcome) or MixinRefused."""
        uri = path + (f"?{urlencode(params)}" if params else "")
        raw = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        headers = {"Authorization": f"Bearer {self._token(method, uri, raw)}", "Content-Type": "application/json",
                   "X-Request-Id": str(uuid.uuid4())}
        try:
            response = self.http.request(method, self.base_url + uri, data=raw or None, headers=headers,
                                         timeout=self.timeout)
        except requests.RequestException as exc:
            raise MixinUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise MixinUnavailable(f"{method} {path}: HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            raise MixinUnavailable(f"{method} {path}: HTTP {response.status_code} without a JSON body") from None
        error = payload.get("error") if isinstance(payload, dict) else None
        if error:
            status = int(error.get("status") or response.status_code)
            message = f"{method} {path}: Mixin error {error.get('code')} ({status}): {error.get('description')}"
            if status >= 500:
                raise MixinUnavailable(message)
            raise MixinRefused(message, code=error.get("code"))
        if response.status_code >= 400:
            raise MixinRefused(f"{method} {path}: HTTP {response.status_code}", code=None)
        return payload.get("data")

    # --- outgoing -------------------------------------------------------------------
    def transfer(self, *, request_id: str, asset_id: str, amount: Decimal, opponent_id: str,
                 memo: str = "") -> TransferReceipt:
        body = {"asset_id": asset_id, "opponent_id": opponent_id, "amount": canonical(amount),
                "trace_id": request_id, "memo": memo}
        try:
            data = self._call("POST", "/transfers", body=body)
        except MixinUnavailable as exc:
            raise TransferUncertain(str(exc)) from None
        except MixinRefused as exc:
            raise TransferRejected(str(exc)) from None
        if not isinstance(data, dict) or data.get("trace_id") != request_id:
            raise TransferUncertain(f"transfer {request_id}: unexpected answer {data!r}")
        logger.info("event=mixin_transfer trace_id=%s opponent_id=%s asset_id=%s amount=%s snapshot_id=%s",
                    request_id, opponent_id, asset_id, amount, data.get("snapshot_id"))
        return TransferReceipt(ref=str(data.get("snapshot_id") or request_id), tx_id=str(data.get("snapshot_id") or ""))

    def withdraw(self, *, request_id: str, asset_id: str, exchange_asset: str, amount: Decimal, address: str,
                 tag: str = "", network: str = "") -> TransferReceipt:
        raise TransferRejected("the Mixin provider does not send on-chain withdrawals; use MM_WITHDRAW_MODE="
                               "validation, or the local provider with the exchange simulator")

    # --- incoming -------------------------------------------------------------------
    def snapshots_after(self, cursor: str) -> list[dict]:
        """The next page of snapshots after ``cursor`` (oldest first; Mixin's offset is inclusive, so
        the snapshot at the cursor comes back: recording is idempotent by snapshot id)."""
        params = {"limit": self.poll_limit, "order": "ASC"}
        if cursor:
            params["offset"] = cursor
        return self._call("GET", "/safe/snapshots", params=params) or []


class MixinRefused(ProviderError):
    """Mixin answered with a client error: the request will not succeed as it is."""

    def __init__(self, message: str, *, code):
        super().__init__(message)
        self.code = code
