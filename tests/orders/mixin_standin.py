"""A local HTTP stand-in of the Mixin API endpoints the Mixin provider uses, on 127.0.0.1.

- ``GET /safe/snapshots?offset=&limit=&order=ASC``: the bot's snapshots with ``created_at >= offset``
  (inclusive, as Mixin), oldest first;
- ``POST /transfers``: idempotent by ``trace_id`` (a repeated trace id returns the first transfer);
  ``{"error": {...}}`` with status 202 code 20117 when the bot's balance of the asset is short.

Every request must carry a valid session token: an EdDSA JWT signed by the registered key whose
``sig`` claim is sha256(method + uri + body) of this very request. ``fail_next`` makes the next
requests answer HTTP 500 (an outcome the client cannot know).
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class MixinStandIn:
    def __init__(self, *, public_key: Ed25519PublicKey, client_id: str):
        self.public_key = public_key
        self.client_id = client_id
        self.snapshots: list[dict] = []
        self.balances: dict[str, Decimal] = {}
        self.transfers: dict[str, dict] = {}
        self.requests: list[str] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                standin._handle(self, "GET")

            def do_POST(self):
                standin._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # --- request handling ---------------------------------------------------------
    def _reply(self, handler, status: int, payload: dict):
        body = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _authorized(self, handler, method: str, body: bytes) -> bool:
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        try:
            header, claims, signature = auth[7:].split(".")
            self.public_key.verify(_unb64(signature), f"{header}.{claims}".encode())
            data = json.loads(_unb64(claims))
        except (ValueError, InvalidSignature):
            return False
        expected = hashlib.sha256(method.encode() + handler.path.encode() + body).hexdigest()
        return data.get("uid") == self.client_id and data.get("sig") == expected

    def _handle(self, handler, method: str):
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self.lock:
            self.requests.append(f"{method} {handler.path}")
            if self.fail_next:
                self.fail_next -= 1
                return self._reply(handler, 500, {"error": "internal"})
            if not self._authorized(handler, method, body):
                return self._reply(handler, 401, {"error": {"status": 401, "code": 401, "description": "Unauthorized"}})
            url = urlparse(handler.path)
            if method == "GET" and url.path == "/safe/snapshots":
                return self._reply(handler, 200, {"data": self._list(parse_qs(url.query))})
            if method == "POST" and url.path == "/transfers":
                status, payload = self._transfer(json.loads(body))
                return self._reply(handler, status, payload)
            return self._reply(handler, 404, {"error": {"status": 404, "code": 404, "description": "Not found"}})

    def _list(self, query: dict) -> list[dict]:
        offset = query.get("offset", [""])[0]
        limit = int(query.get("limit", ["100"])[0])
        rows = sorted(self.snapshots, key=lambda s: s["created_at"])
        return [s for s in rows if s["created_at"] >= offset][:limit]

    def _transfer(self, body: dict) -> tuple[int, dict]:
        trace_id = body["trace_id"]
        if trace_id in self.transfers:
            return 200, {"data": self.transfers[trace_id]}
        amount = Decimal(body["amount"])
        if self.balances.get(body["asset_id"], Decimal(0)) < amount:
            return 202, {"error": {"status": 202, "code": 20117, "description": "Insufficient balance."}}
        self.balances[body["asset_id"]] -= amount
        transfer = {"type": "transfer", "snapshot_id": str(uuid.uuid4()), "trace_id": trace_id,
                    "opponent_id": body["opponent_id"], "asset_id": body["asset_id"], "amount": f"-{body['amount']}",
                    "memo": body.get("memo", "")}
        self.transfers[trace_id] = transfer
        return 200, {"data": transfer}
