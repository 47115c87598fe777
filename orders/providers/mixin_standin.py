"""A local stand-in of Mixin's Safe API on 127.0.0.1: what the Mixin provider calls, checked as Mixin checks it.

Served (each request must carry a session token: an EdDSA JWT of the registered session key whose
``sig`` claim is sha256(method + uri + body) of this very request):

- ``GET /safe/snapshots?offset=&limit=&order=ASC``: the bot's snapshots with ``created_at >= offset``;
- ``GET /safe/outputs?members=&threshold=&asset=&state=&offset=&limit=``: the bot's outputs (UTXOs);
- ``POST /safe/keys``: ghost keys for receivers (an unknown user is refused);
- ``POST /safe/transaction/requests``: checks an unsigned transaction (inputs the bot's and unspent, one
  asset, inputs = outputs, ghost keys issued here, a withdrawal's fee output) and returns the views;
- ``POST /safe/transactions``: checks each input's signature against its one-time key (the bot's
  registered spend public key + the view), spends each output once (a double spend is refused) and
  records the snapshot with its memo; the same request id again returns the first transaction;
- ``GET /safe/transactions/{request_id}``; ``GET /safe/assets/{asset}/fees``;
- ``POST /safe/deposit/entries`` and ``GET /safe/deposits``: deposit addresses, and deposits that are
  credited once they have their confirmations.

Faults (``fault(...)``): ``5xx`` (refused before anything happens), ``5xx_after_accept`` and
``drop_after_accept`` (applied, then answered with a 500 or with the connection closed, optionally after
a delay: the client cannot know the outcome), ``slow_after_accept`` (applied, answered after ``delay_s``:
time to kill the client meanwhile). ``fail_next = n`` answers the next n requests with a 500.

The test helpers (``fund``, ``pay``, ``deposit``, ``confirm``, ``add_user``, ``fault``) have HTTP twins
under ``/_standin/`` (no token, loopback only) for the process form. ``/_standin/deposit`` also takes the
exchange simulator's announcement of a withdrawal (SIM_WITHDRAW_FORWARD_URL; ``deposit_announced``), so an
exchange's payout withdrawal to the bot's deposit address arrives here as a deposit::

    python -m orders.providers.mixin_standin --port 7100 --client-id UUID --session-public-key HEX \
        --spend-public-key HEX [--fund ASSET_ID=AMOUNT ...] [--django]

With ``--django`` (the project's settings in the environment) a withdrawal to an exchange-simulator
deposit address credits the simulator, as the local provider does, so ``make run`` can move paid funds
to the exchange through Safe.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlparse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import orders.providers.mixin_safe as safe

FEE_USER_ID = "674d6776-d600-4346-af46-58e77d8df185"  # Mixin's withdrawal-fee receiver (the Go SDK's MixinFeeUserId)
DEFAULT_WITHDRAWAL_FEE = Decimal("0.0001")

# Mixin's error codes the provider meets here (Mixin answers an error with HTTP 202 and an error object).
ERR_BAD_DATA = 10002
ERR_NOT_FOUND = 404
ERR_USER_NOT_FOUND = 10404
ERR_SPENT = 20120
ERR_FEE = 20124


class SafeError(Exception):
    def __init__(self, code: int, description: str, status: int = 202):
        super().__init__(description)
        self.code, self.description, self.status = code, description, status


@dataclass
class Fault:
    kind: str          # "5xx" | "5xx_after_accept" | "drop_after_accept" | "slow_after_accept"
    path: str = ""     # the path ("" = any; ending in "/": every path under it)
    method: str = ""   # "" = any
    count: int = 1
    delay_s: float = 0.0


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _new_scalar() -> bytes:
    return safe.scalar_from_uniform(uuid.uuid4().bytes * 4)


class MixinSafeStandIn:
    """In-memory Safe for one bot (``client_id``); thread-safe; ``with`` starts and stops the HTTP server."""

    def __init__(self, *, client_id: str, session_public_key, spend_public_key: str, port: int = 0,
                 on_withdrawal: Callable[[dict], None] | None = None, asset_codes: dict[str, str] | None = None):
        if isinstance(session_public_key, str):
            session_public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(session_public_key))
        self.session_public_key = session_public_key
        self.client_id = str(uuid.UUID(client_id))
        self.on_withdrawal = on_withdrawal
        self.lock = threading.RLock()
        self.users: dict[str, dict] = {}
        self.add_user(self.client_id, spend_public=bytes.fromhex(spend_public_key))
        self.add_user(FEE_USER_ID)
        self.outputs: dict[str, dict] = {}          # output_id -> output (every user's)
        self.ghosts: dict[str, dict] = {}           # mask -> {receivers, index, keys}
        self.transactions: dict[str, dict] = {}     # request_id -> request/transaction
        self.snapshots: list[dict] = []
        self.withdrawals: list[dict] = []
        self.deposit_entries: dict[str, dict] = {}  # destination -> entry
        self.deposits: list[dict] = []
        self.fees: dict[str, tuple[str, Decimal]] = {}  # asset_id -> (fee asset id, fee)
        self.fee_changes: dict[str, list[Decimal]] = {}  # asset_id -> the fees it changes to, one after each read
        self.chains: dict[str, str] = {}  # asset_id -> its chain's asset id (itself unless set)
        # An exchange's currency code -> the Mixin asset id (for deposits announced by the exchange simulator)
        self.asset_codes: dict[str, str] = {k.upper(): v for k, v in (asset_codes or {}).items()}
        self.faults: list[Fault] = []
        self.fail_next = 0
        self.requests: list[str] = []
        self._sequence = 0
        self._clock_ns = 0
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args):
                pass

            def do_GET(self):
                standin._handle(self, "GET")

            def do_POST(self):
                standin._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # --- lifecycle -------------------------------------------------------------------------------
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

    # --- helpers for tests and the /_standin/ API ----------------------------------------------
    def add_user(self, user_id: str, *, spend_public: bytes | None = None) -> str:
        user_id = str(uuid.UUID(user_id))
        with self.lock:
            if user_id not in self.users:
                view = _new_scalar()
                self.users[user_id] = {"view": view, "view_public": safe.public_key(view),
                                       "spend_public": spend_public or safe.public_key(_new_scalar())}
        return user_id

    def fault(self, kind: str, *, path: str = "", method: str = "", count: int = 1, delay_s: float = 0.0) -> None:
        if kind not in ("5xx", "5xx_after_accept", "drop_after_accept", "slow_after_accept"):
            raise ValueError(f"unknown fault {kind!r}")
        with self.lock:
            self.faults.append(Fault(kind, path, method, count, delay_s))

    def set_fee(self, asset_id: str, amount, *, fee_asset_id: str | None = None) -> None:
        with self.lock:
            self.fees[asset_id] = (fee_asset_id or asset_id, Decimal(str(amount)))

    def change_fee_after_read(self, asset_id: str, *fees) -> None:
        """The withdrawal fee of ``asset_id`` changes right after each of the next reads, to each of ``fees``."""
        with self.lock:
            self.fee_changes[asset_id] = [Decimal(str(f)) for f in fees]

    def fund(self, asset_id: str, amount, *, outputs: int = 1, from_user: str | None = None) -> None:
        """Give the bot ``amount`` of ``asset_id`` in ``outputs`` equal outputs (the last takes the rest). Without
        ``from_user`` the funds arrive as chain deposits (the operator's float: snapshots with a ``deposit``
        object, which the poller skips as no payment); with it, as that user's transfers."""
        total, n = Decimal(str(amount)), int(outputs)
        part = (total / n).quantize(Decimal("1e-8"), rounding="ROUND_DOWN")
        with self.lock:
            for i in range(n):
                value = part if i < n - 1 else total - part * (n - 1)
                snapshot = self._credit_bot(asset_id, value, opponent_id=from_user or "", memo="", kind="genesis")
                if not from_user:
                    snapshot["deposit"] = {"deposit_hash": snapshot["transaction_hash"], "deposit_index": 0,
                                           "sender": ""}

    def pay(self, *, user_id: str, asset_id: str, amount, memo: str = "", trace_id: str = "") -> dict:
        """A user pays the bot: one output for the bot and a snapshot the poller reads (memo as hex). A
        ``trace_id`` already paid returns that payment's snapshot and pays nothing more (Mixin's trace id)."""
        with self.lock:
            if trace_id:
                trace_id = str(uuid.UUID(trace_id))
                for snapshot in self.snapshots:
                    if snapshot["trace_id"] == trace_id and snapshot["amount"][:1] != "-":
                        return snapshot
            self.add_user(user_id)
            snapshot = self._credit_bot(asset_id, Decimal(str(amount)), opponent_id=str(uuid.UUID(user_id)),
                                        memo=memo.encode().hex(), kind="transfer")
            snapshot["trace_id"] = trace_id
            return snapshot

    def deposit_entry(self, chain_id: str) -> dict:
        with self.lock:
            destination = f"standin-{chain_id[:8]}-{self.client_id[:8]}"
            entry = self.deposit_entries.setdefault(destination, {
                "type": "deposit_entry", "entry_id": str(uuid.uuid5(uuid.NAMESPACE_URL, destination)),
                "chain_id": chain_id, "destination": destination, "tag": "", "members": [self.client_id],
                "threshold": 1, "is_primary": True, "signature": ""})
            return entry

    def deposit(self, *, asset_id: str, amount, destination: str, transaction_hash: str, tag: str = "",
                confirmations: int = 1) -> dict:
        """An on-chain deposit to the bot's address, credited when it has ``confirmations`` (``confirm``)."""
        with self.lock:
            for existing in self.deposits:
                if existing["transaction_hash"] == transaction_hash:
                    return existing
            row = {"type": "deposit", "deposit_id": str(uuid.uuid4()), "asset_id": asset_id,
                   "amount": str(Decimal(str(amount))), "destination": destination, "tag": tag,
                   "transaction_hash": transaction_hash, "confirmations": 0, "threshold": int(confirmations),
                   "state": "pending", "created_at": self._now()}
            self.deposits.append(row)
            return row

    def deposit_announced(self, announcement: dict, *, confirmations: int = 1) -> dict:
        """An exchange's withdrawal to one of the bot's deposit addresses, as the exchange simulator announces it
        (SIM_WITHDRAW_FORWARD_URL = this stand-in's ``/_standin/deposit``: ``{address, tag, asset, network,
        amount, tx_id}``): a deposit (``deposit``) of the asset the exchange's code maps to (``asset_codes``),
        else of the chain whose deposit entry owns the address. An address that is not the bot's is refused."""
        address, code = str(announcement["address"]), str(announcement["asset"]).upper()
        with self.lock:
            entry = self.deposit_entries.get(address)
            if entry is None:
                raise ValueError(f"{address!r} is not a deposit address of the bot")
            asset_id = self.asset_codes.get(code) or entry["chain_id"]
            return self.deposit(asset_id=asset_id, amount=announcement["amount"], destination=address,
                                transaction_hash=str(announcement["tx_id"]), tag=announcement.get("tag") or "",
                                confirmations=confirmations)

    def confirm(self, blocks: int = 1) -> int:
        """``blocks`` more confirmations for every pending deposit; returns how many got credited."""
        credited = 0
        with self.lock:
            for row in self.deposits:
                if row["state"] != "pending":
                    continue
                row["confirmations"] += blocks
                if row["confirmations"] >= row["threshold"]:
                    row["state"] = "completed"
                    snapshot = self._credit_bot(row["asset_id"], Decimal(row["amount"]), opponent_id="", memo="",
                                                kind="deposit")
                    snapshot["deposit"] = {"deposit_hash": row["transaction_hash"], "destination": row["destination"],
                                           "tag": row["tag"]}
                    credited += 1
        return credited

    def balance(self, asset_id: str, user_id: str | None = None) -> Decimal:
        user_id = user_id or self.client_id
        with self.lock:
            return sum((Decimal(o["amount"]) for o in self.outputs.values()
                        if o["asset_id"] == asset_id and o["state"] == "unspent" and o["receivers"] == [user_id]),
                       Decimal(0))

    def payments(self) -> list[dict]:
        """Every transaction the bot sent (spent), oldest first."""
        with self.lock:
            return [t for t in self.transactions.values() if t["state"] == "spent"]

    # --- internals ---------------------------------------------------------------------------------
    def _now(self) -> str:
        ns = max(time.time_ns(), self._clock_ns + 1)
        self._clock_ns = ns
        at = datetime.fromtimestamp(ns // 10**9, tz=timezone.utc)
        return f"{at:%Y-%m-%dT%H:%M:%S}.{ns % 10**9:09d}Z"

    def _new_output(self, *, asset_id: str, amount: Decimal, receivers: list[str], keys: list[str], mask: str,
                    view: str, tx_hash: str, index: int, at: str) -> dict:
        self._sequence += 1
        output = {
            "type": "kernel_output", "output_id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{tx_hash}:{index}")),
            "transaction_hash": tx_hash, "output_index": index, "asset_id": asset_id,
            "kernel_asset_id": safe.kernel_asset_id(asset_id), "amount": safe.units_to_amount(
                safe.amount_to_units(amount)), "keys": keys, "mask": mask, "receivers": receivers,
            "receivers_hash": safe.hash_members(receivers), "receivers_threshold": 1, "extra": "",
            "state": "unspent", "sequence": self._sequence, "created_at": at, "_view": view,
        }
        self.outputs[output["output_id"]] = output
        return output

    def _ghost_for(self, receiver: str, index: int, seed: bytes) -> tuple[str, list[str], str]:
        user = self.users[receiver]
        r = safe.scalar_from_uniform(hashlib.sha512(seed).digest())
        mask = safe.public_key(r)
        key = safe.derive_ghost_public_key(r, user["view_public"], user["spend_public"], index)
        view = safe.derive_ghost_view(mask, user["view"], index)
        return mask.hex(), [key.hex()], view.hex()

    def _credit_bot(self, asset_id: str, amount: Decimal, *, opponent_id: str, memo: str, kind: str) -> dict:
        at = self._now()
        tx_hash = hashlib.sha256(f"{kind}:{uuid.uuid4()}".encode()).hexdigest()
        mask, keys, view = self._ghost_for(self.client_id, 0, tx_hash.encode())
        self._new_output(asset_id=asset_id, amount=amount, receivers=[self.client_id], keys=keys, mask=mask,
                         view=view, tx_hash=tx_hash, index=0, at=at)
        snapshot = {"type": "snapshot", "snapshot_id": str(uuid.uuid4()), "asset_id": asset_id,
                    "amount": safe.units_to_amount(safe.amount_to_units(amount)), "opponent_id": opponent_id,
                    "memo": memo, "transaction_hash": tx_hash, "request_id": "", "trace_id": "", "created_at": at,
                    "user_id": self.client_id}
        self.snapshots.append(snapshot)
        return snapshot

    # --- HTTP ----------------------------------------------------------------------------------------
    def _reply(self, handler, status: int, payload) -> None:
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
            self.session_public_key.verify(_unb64(signature), f"{header}.{claims}".encode())
            data = json.loads(_unb64(claims))
        except (ValueError, InvalidSignature):
            return False
        expected = hashlib.sha256(method.encode() + handler.path.encode() + body).hexdigest()
        fresh = int(data.get("exp") or 0) >= int(time.time())
        return data.get("uid") == self.client_id and data.get("sig") == expected and fresh

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            matches = path == fault.path or not fault.path or (fault.path.endswith("/") and path.startswith(fault.path))
            if fault.count > 0 and matches and fault.method in ("", method):
                fault.count -= 1
                return fault
        return None

    def _handle(self, handler, method: str) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        url = urlparse(handler.path)
        with self.lock:
            self.requests.append(f"{method} {handler.path}")
            fault = None if url.path.startswith("/_standin/") else self._take_fault(method, url.path)
            if self.fail_next and not url.path.startswith("/_standin/"):
                self.fail_next -= 1
                fault = Fault("5xx")
            if fault is not None and fault.kind == "5xx":
                return self._reply(handler, 500, {"error": "internal"})
            if url.path.startswith("/_standin/"):
                status, payload = self._admin(method, url.path, body)
                return self._reply(handler, status, payload)
            if not self._authorized(handler, method, body):
                return self._reply(handler, 401, {"error": {"status": 401, "code": 401, "description": "Unauthorized"}})
            try:
                data = self._route(method, url.path, parse_qs(url.query), body)
                status, payload = 200, {"data": data}
            except SafeError as exc:
                status, payload = exc.status, {"error": {"status": exc.status, "code": exc.code,
                                                         "description": exc.description}}
        if fault is not None:  # applied; the answer is lost
            if fault.delay_s:
                time.sleep(fault.delay_s)
            if fault.kind == "5xx_after_accept":
                return self._reply(handler, 500, {"error": "internal"})
            if fault.kind == "drop_after_accept":
                handler.close_connection = True
                return
        return self._reply(handler, status, payload)

    def _route(self, method: str, path: str, query: dict, body: bytes):
        if method == "GET" and path == "/safe/snapshots":
            return self._list_snapshots(query)
        if method == "GET" and path == "/safe/outputs":
            return self._list_outputs(query)
        if method == "POST" and path == "/safe/keys":
            return self._ghost_keys(_json(body))
        if method == "POST" and path == "/safe/transaction/requests":
            return [self._request(item) for item in _json_list(body)]
        if method == "POST" and path == "/safe/transactions":
            return [self._submit(item) for item in _json_list(body)]
        if method == "GET" and path.startswith("/safe/transactions/"):
            found = self.transactions.get(path.rsplit("/", 1)[1])
            if found is None:
                raise SafeError(ERR_NOT_FOUND, "The endpoint is not found.", status=404)
            return _public(found)
        if method == "GET" and path.startswith("/safe/assets/") and path.endswith("/fees"):
            asset_id = path.split("/")[3]
            fee_asset, fee = self.fees.get(asset_id, (asset_id, DEFAULT_WITHDRAWAL_FEE))
            if self.fee_changes.get(asset_id):
                self.fees[asset_id] = (fee_asset, self.fee_changes[asset_id].pop(0))
            return [{"type": "withdrawal_fee", "asset_id": fee_asset, "amount": safe.units_to_amount(
                safe.amount_to_units(fee))}]
        if method == "GET" and path.startswith("/safe/assets/") and path.count("/") == 3:
            asset_id = path.rsplit("/", 1)[1]
            return {"type": "asset", "asset_id": asset_id, "chain_id": self.chains.get(asset_id, asset_id),
                    "kernel_asset_id": safe.kernel_asset_id(asset_id), "precision": safe.PRECISION}
        if method == "POST" and path == "/safe/deposit/entries":
            request = _json(body)
            return [self.deposit_entry(str(request.get("chain_id") or ""))]
        if method == "GET" and path == "/safe/deposits":
            rows = [d for d in self.deposits if d["state"] == "pending"]
            for name in ("asset", "destination", "tag"):
                if query.get(name):
                    key = "asset_id" if name == "asset" else name
                    rows = [d for d in rows if d[key] == query[name][0]]
            return rows
        raise SafeError(ERR_NOT_FOUND, "The endpoint is not found.", status=404)

    def _list_snapshots(self, query: dict) -> list[dict]:
        """Oldest first from ``offset`` (inclusive), or newest first up to it with ``order=DESC``."""
        offset = query.get("offset", [""])[0]
        limit = int(query.get("limit", ["100"])[0])
        asset = query.get("asset", [""])[0]
        rows = sorted((s for s in self.snapshots if not asset or s["asset_id"] == asset), key=lambda s: s["created_at"])
        if query.get("order", ["ASC"])[0].upper() == "DESC":
            return [s for s in reversed(rows) if not offset or s["created_at"] <= offset][:limit]
        return [s for s in rows if s["created_at"] >= offset][:limit]

    def _list_outputs(self, query: dict) -> list[dict]:
        if query.get("members", [""])[0] != safe.hash_members([self.client_id]):
            return []
        asset = query.get("asset", [""])[0]
        state = query.get("state", [""])[0]
        offset = int(query.get("offset", ["0"])[0] or 0)
        limit = min(int(query.get("limit", ["500"])[0]), 500)
        rows = [o for o in self.outputs.values() if o["receivers"] == [self.client_id] and o["sequence"] > offset
                and (not asset or asset in (o["asset_id"], o["kernel_asset_id"])) and (not state or o["state"] == state)]
        rows.sort(key=lambda o: o["sequence"])
        return [_public(o) for o in rows[:limit]]

    def _ghost_keys(self, requests: list) -> list[dict]:
        if not isinstance(requests, list):
            raise SafeError(ERR_BAD_DATA, "The request data has invalid field: a list of ghost key requests.")
        answers = []
        for item in requests:
            receivers = [str(r) for r in item.get("receivers") or []]
            if len(receivers) != 1:
                raise SafeError(ERR_BAD_DATA, "The request data has invalid field: receivers (one receiver here).")
            try:
                receiver = str(uuid.UUID(receivers[0]))
            except ValueError:
                raise SafeError(ERR_BAD_DATA, f"The request data has invalid field: receiver {receivers[0]!r}.") from None
            if receiver not in self.users:
                raise SafeError(ERR_USER_NOT_FOUND, f"User not found: {receiver}.")
            index = int(item.get("index", 0))
            mask, keys, _ = self._ghost_for(receiver, index, f"{item.get('hint')}:{index}:{receiver}".encode())
            self.ghosts[mask] = {"receivers": [receiver], "index": index, "keys": keys}
            answers.append({"type": "ghost_key", "mask": mask, "keys": keys})
        return answers

    def _check(self, raw: str) -> tuple[dict, list[dict], dict]:
        """Decode and check an unsigned transaction; returns (tx, its inputs, a summary)."""
        try:
            tx = safe.decode_transaction(raw)
        except safe.InvalidTransaction as exc:
            raise SafeError(ERR_BAD_DATA, f"invalid raw transaction: {exc}") from None
        if not tx["inputs"]:
            raise SafeError(ERR_BAD_DATA, "invalid raw transaction: no inputs")
        inputs = []
        by_ref = {(o["transaction_hash"], o["output_index"]): o for o in self.outputs.values()}
        for item in tx["inputs"]:
            output = by_ref.get((item["hash"], item["index"]))
            if output is None or output["receivers"] != [self.client_id]:
                raise SafeError(ERR_BAD_DATA, f"input {item['hash']}:{item['index']} is not an output of the bot")
            if output["kernel_asset_id"] != tx["asset"]:
                raise SafeError(ERR_BAD_DATA, f"asset mismatch: input {item['hash']}:{item['index']} is asset "
                                              f"{output['asset_id']}, the transaction's asset is {tx['asset']}")
            inputs.append(output)
        total_in = sum(safe.amount_to_units(o["amount"]) for o in inputs)
        total_out = sum(safe.amount_to_units(o["amount"]) for o in tx["outputs"])
        if total_in != total_out:
            raise SafeError(ERR_BAD_DATA, f"inputs {safe.units_to_amount(total_in)} != outputs "
                                          f"{safe.units_to_amount(total_out)}")
        asset_id = inputs[0]["asset_id"]
        receivers, withdrawal, fee_paid, amount = [], None, Decimal(0), Decimal(0)
        for i, output in enumerate(tx["outputs"]):
            if safe.amount_to_units(output["amount"]) <= 0:
                raise SafeError(ERR_BAD_DATA, f"output {i} has no amount")
            if output["type"] == safe.OUTPUT_TYPE_WITHDRAWAL_SUBMIT:
                address = (output.get("withdrawal") or {}).get("address", "")
                if withdrawal is not None or not address:
                    raise SafeError(ERR_BAD_DATA, "a withdrawal needs exactly one output with an address")
                withdrawal = dict(output["withdrawal"], amount=output["amount"])
                receivers.append({"members": [], "threshold": 0, "destination": address,
                                  "tag": output["withdrawal"].get("tag", "")})
                amount += Decimal(output["amount"])
                continue
            if output["type"] != safe.OUTPUT_TYPE_SCRIPT or output["script"] != safe.threshold_script(1):
                raise SafeError(ERR_BAD_DATA, f"output {i}: only 1-of-1 script outputs and withdrawals here")
            ghost = self.ghosts.get(output["mask"])
            if ghost is None or ghost["keys"] != output["keys"]:
                raise SafeError(ERR_BAD_DATA, f"output {i}: its keys were not issued by /safe/keys")
            if ghost["index"] != i:
                raise SafeError(ERR_BAD_DATA, f"output {i}: its ghost keys are for output index {ghost['index']}")
            receiver = ghost["receivers"][0]
            if receiver == FEE_USER_ID:
                fee_paid += Decimal(output["amount"])
            elif receiver != self.client_id:
                amount += Decimal(output["amount"])
            if receiver != self.client_id:
                receivers.append({"members": [receiver], "threshold": 1, "members_hash": safe.hash_members([receiver]),
                                  "destination": "", "tag": ""})
        if withdrawal is not None:
            fee_asset, fee = self.fees.get(asset_id, (asset_id, DEFAULT_WITHDRAWAL_FEE))
            if fee_asset == asset_id and fee_paid != fee:
                raise SafeError(ERR_FEE, f"withdrawal fee of {asset_id} is {safe.units_to_amount(safe.amount_to_units(fee))}"
                                         f", the transaction pays {fee_paid}")
            if fee_asset != asset_id:
                raise SafeError(ERR_FEE, f"withdrawal fee of {asset_id} is paid in {fee_asset}: send the fee transaction")
        summary = {"asset_id": asset_id, "amount": safe.units_to_amount(safe.amount_to_units(amount)),
                   "receivers": receivers, "withdrawal": withdrawal, "fee": str(fee_paid)}
        return tx, inputs, summary

    def _request(self, item: dict) -> dict:
        request_id, raw = str(item.get("request_id") or ""), str(item.get("raw") or "")
        try:
            request_id = str(uuid.UUID(request_id))
        except ValueError:
            raise SafeError(ERR_BAD_DATA, f"The request data has invalid field: request_id {request_id!r}.") from None
        existing = self.transactions.get(request_id)
        if existing is not None:
            if existing["state"] != "unspent" or existing["raw_transaction"] == raw:
                return _public(existing)
            raise SafeError(ERR_BAD_DATA, f"request_id {request_id} is already used by another transaction")
        tx, inputs, summary = self._check(raw)
        if tx["signatures"]:
            raise SafeError(ERR_BAD_DATA, "a transaction request takes the unsigned raw transaction")
        spent = [o for o in inputs if o["state"] != "unspent"]
        if spent:
            raise SafeError(ERR_SPENT, f"input {spent[0]['transaction_hash']}:{spent[0]['output_index']} is already "
                                       "spent")
        record = {
            "type": "transaction_request", "request_id": request_id, "transaction_hash": safe.transaction_hash(tx),
            "asset": tx["asset"], "asset_id": summary["asset_id"], "amount": summary["amount"],
            "extra": tx["extra"].hex(), "receivers": summary["receivers"], "senders": [self.client_id],
            "senders_hash": safe.hash_members([self.client_id]), "senders_threshold": 1, "signers": [],
            "state": "unspent", "raw_transaction": raw, "views": [o["_view"] for o in inputs],
            "created_at": self._now(), "snapshot_id": "", "_summary": summary,
        }
        self.transactions[request_id] = record
        return _public(record)

    def _submit(self, item: dict) -> dict:
        request_id, raw = str(item.get("request_id") or ""), str(item.get("raw") or "")
        record = self.transactions.get(request_id)
        if record is None:
            raise SafeError(ERR_NOT_FOUND, f"transaction request {request_id} not found: POST "
                                           "/safe/transaction/requests first", status=404)
        try:
            tx = safe.decode_transaction(raw)
        except safe.InvalidTransaction as exc:
            raise SafeError(ERR_BAD_DATA, f"invalid raw transaction: {exc}") from None
        if safe.encode_transaction(dict(tx, signatures=[])) != record["raw_transaction"]:
            raise SafeError(ERR_BAD_DATA, f"the raw transaction is not the one requested as {request_id}")
        if record["state"] != "unspent":
            return _public(record)
        by_ref = {(o["transaction_hash"], o["output_index"]): o for o in self.outputs.values()}
        inputs = [by_ref[(i["hash"], i["index"])] for i in tx["inputs"]]
        message = safe.payload_hash(tx)
        if len(tx["signatures"]) != len(inputs):
            raise SafeError(ERR_BAD_DATA, f"{len(tx['signatures'])} signature maps for {len(inputs)} inputs")
        for i, (output, sigs) in enumerate(zip(inputs, tx["signatures"])):
            if 0 not in sigs or not safe.verify_signature(output["keys"][0], message, sigs[0]):
                raise SafeError(ERR_BAD_DATA, f"invalid signature of input {i}")
        spent = [o for o in inputs if o["state"] != "unspent"]
        if spent:
            raise SafeError(ERR_SPENT, f"double spend refused: input {spent[0]['transaction_hash']}:"
                                       f"{spent[0]['output_index']} is already spent by {spent[0].get('spent_by')}")
        at = self._now()
        tx_hash = record["transaction_hash"]
        for output in inputs:
            output["state"], output["spent_by"] = "spent", tx_hash
        withdrawal = None
        for index, output in enumerate(tx["outputs"]):
            if output["type"] == safe.OUTPUT_TYPE_WITHDRAWAL_SUBMIT:
                withdrawal = {"request_id": request_id, "asset_id": record["asset_id"], "amount": output["amount"],
                              "address": output["withdrawal"]["address"], "tag": output["withdrawal"]["tag"],
                              "transaction_hash": tx_hash, "created_at": at}
                self.withdrawals.append(withdrawal)
                continue
            ghost = self.ghosts[output["mask"]]
            receiver = ghost["receivers"][0]
            view = safe.derive_ghost_view(bytes.fromhex(output["mask"]), self.users[receiver]["view"], index).hex()
            self._new_output(asset_id=record["asset_id"], amount=Decimal(output["amount"]), receivers=[receiver],
                             keys=output["keys"], mask=output["mask"], view=view, tx_hash=tx_hash, index=index, at=at)
        summary = record["_summary"]
        sent = Decimal(summary["amount"]) + Decimal(summary["fee"])
        opponent = next((r["members"][0] for r in summary["receivers"] if r["members"]
                         and r["members"][0] != FEE_USER_ID), "")
        snapshot = {"type": "snapshot", "snapshot_id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"snapshot:{tx_hash}")),
                    "asset_id": record["asset_id"], "amount": f"-{safe.units_to_amount(safe.amount_to_units(sent))}",
                    "opponent_id": opponent, "memo": record["extra"], "transaction_hash": tx_hash,
                    "request_id": request_id, "trace_id": request_id, "created_at": at, "user_id": self.client_id}
        if withdrawal is not None:
            snapshot["withdrawal"] = {"receiver": withdrawal["address"], "tag": withdrawal["tag"]}
        if sent:  # a consolidation (the bot to itself) moves nothing
            self.snapshots.append(snapshot)
        record.update(state="spent", raw_transaction=raw, snapshot_id=snapshot["snapshot_id"], snapshot_at=at,
                      signers=[self.client_id])
        record["raw_transaction_unsigned"] = safe.encode_transaction(dict(tx, signatures=[]))
        if withdrawal is not None and self.on_withdrawal is not None:
            self.on_withdrawal(withdrawal)
        return _public(record)

    # --- /_standin/ (process form) -------------------------------------------------------------------
    def _admin(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        data = _json(body) if body else {}
        try:
            if method == "POST" and path == "/_standin/fund":
                self.fund(data["asset_id"], data["amount"], outputs=int(data.get("outputs", 1)))
                return 200, {"data": {"balance": str(self.balance(data["asset_id"]))}}
            if method == "POST" and path == "/_standin/pay":
                return 200, {"data": self.pay(user_id=data["user_id"], asset_id=data["asset_id"],
                                              amount=data["amount"], memo=data.get("memo", ""),
                                              trace_id=data.get("trace_id", ""))}
            if method == "POST" and path == "/_standin/users":
                return 200, {"data": {"user_id": self.add_user(data["user_id"])}}
            if method == "POST" and path == "/_standin/deposit" and "asset_id" not in data and "tx_id" in data:
                return 200, {"data": self.deposit_announced(data, confirmations=int(data.get("confirmations", 1)))}
            if method == "POST" and path == "/_standin/deposit":
                return 200, {"data": self.deposit(**{k: data[k] for k in (
                    "asset_id", "amount", "destination", "transaction_hash") }, tag=data.get("tag", ""),
                    confirmations=int(data.get("confirmations", 1)))}
            if method == "POST" and path == "/_standin/confirm":
                return 200, {"data": {"credited": self.confirm(int(data.get("blocks", 1)))}}
            if method == "POST" and path == "/_standin/faults":
                self.fault(data["kind"], path=data.get("path", ""), method=data.get("method", ""),
                           count=int(data.get("count", 1)), delay_s=float(data.get("delay_s", 0)))
                return 200, {"data": {"faults": len(self.faults)}}
            if method == "GET" and path == "/_standin/state":
                assets = sorted({o["asset_id"] for o in self.outputs.values()})
                return 200, {"data": {
                    "balances": {a: str(self.balance(a)) for a in assets},
                    "payments": [_public(t) for t in self.payments()], "withdrawals": self.withdrawals}}
        except (KeyError, ValueError, TypeError) as exc:
            return 400, {"error": {"status": 400, "code": ERR_BAD_DATA, "description": f"{type(exc).__name__}: {exc}"}}
        return 404, {"error": {"status": 404, "code": 404, "description": "not found"}}


def _json(body: bytes):
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise SafeError(ERR_BAD_DATA, "The request body is not JSON.") from None


def _json_list(body: bytes) -> list[dict]:
    data = _json(body)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise SafeError(ERR_BAD_DATA, "The request data must be a list of objects.")
    return data


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _simulator_forwarder() -> Callable[[dict], None]:
    """A withdrawal to an exchange-simulator deposit address credits the simulator (the --django form)."""
    import django

    django.setup()
    from django.db import close_old_connections

    from exchanges.models import SimDepositAddress
    from exchanges.simulator.errors import UnknownDepositAddress
    from exchanges.simulator.services import simulator_receive_transfer

    def forward(withdrawal: dict) -> None:
        close_old_connections()
        owner = SimDepositAddress.objects.filter(address=withdrawal["address"]).first()
        if owner is None:
            return  # an address outside the simulator: the withdrawal is recorded here only
        try:
            simulator_receive_transfer(address=withdrawal["address"], asset=owner.asset,
                                       amount=Decimal(withdrawal["amount"]), tx_id=withdrawal["transaction_hash"])
        except UnknownDepositAddress:
            pass

    return forward


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orders.providers.mixin_standin", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--session-public-key", required=True, help="the bot session's Ed25519 public key, hex")
    parser.add_argument("--spend-public-key", required=True, help="the bot's registered spend public key, hex")
    parser.add_argument("--fund", action="append", default=[], metavar="ASSET_ID=AMOUNT",
                        help="start with this much of an asset at the bot (repeatable)")
    parser.add_argument("--block-seconds", type=float, default=1.0, help="one confirmation for pending deposits this often")
    parser.add_argument("--django", action="store_true",
                        help="credit exchange-simulator deposit addresses on withdrawal (needs DJANGO_SETTINGS_MODULE)")
    args = parser.parse_args(argv)
    forward = _simulator_forwarder() if args.django else None
    standin = MixinSafeStandIn(client_id=args.client_id, session_public_key=args.session_public_key,
                               spend_public_key=args.spend_public_key, port=args.port, on_withdrawal=forward)
    for item in args.fund:
        asset_id, _, amount = item.partition("=")
        standin.fund(asset_id.strip(), Decimal(amount.strip()))
    with standin:
        print(f"mixin_standin: listening on {standin.base_url}", flush=True)
        try:
            while True:
                time.sleep(args.block_seconds)
                standin.confirm(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
