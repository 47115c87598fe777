"""The Mixin payment provider: reads the bot's snapshots with a persisted cursor, and pays through Mixin Safe.

A payment (transfer to a user, or withdrawal to an address + tag with Mixin's fee output) is one Safe
transaction whose request id is the caller's request id (derived from the refund's or the withdrawal's
key), so a retry never pays twice:

1. ``GET /safe/transactions/{request_id}``: already signed or spent -> that is the answer (the retry of
   an uncertain outcome resolves here); requested but never submitted (a crash between signing and
   submitting) -> its raw transaction is signed and submitted again, unchanged;
2. otherwise: the bot's unspent outputs of the asset (``/safe/outputs``, oldest first, consolidated
   first when more than ``MIXIN_MAX_INPUTS`` are needed), ghost keys for each receiver and for the change
   back to the bot (``/safe/keys``, hints derived from the request id), the unsigned transaction to
   ``/safe/transaction/requests`` (-> one view per input), signed with the spend key
   (``mixin_safe.sign_transaction``) and submitted to ``/safe/transactions``.

One payment per asset at a time across every process (an advisory lock on PostgreSQL, a lock file on
SQLite): two payments must not pick the same outputs. Requests carry Mixin's session token: an EdDSA
(Ed25519) JWT with ``uid``, ``sid``, ``iat``, ``exp``, ``jti``, ``scp`` and ``sig`` =
hex(sha256(method + uri + body)). The spend key (and the PIN) are stored encrypted like exchange secrets.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import time
import uuid
from contextlib import contextmanager
from decimal import Decimal
from typing import Callable
from urllib.parse import urlencode

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import connection

import orders.providers.mixin_safe as safe

from ..errors import PayoutNotPossible, ProviderError, TransferRejected, TransferUncertain
from .base import DepositTarget, PaymentProvider, TransferReceipt

logger = logging.getLogger(__name__)

TOKEN_TTL_S = 600
FEE_USER_ID = "674d6776-d600-4346-af46-58e77d8df185"  # Mixin's withdrawal-fee receiver (the SDKs' MixinFeeUserId)
NOT_FOUND_CODES = {404}  # GET /safe/transactions/{id} of an unknown id (the Go SDK reads 404 as "none")
MAX_CONSOLIDATION_ROUNDS = 8
MAX_REBUILDS = 8
OUTPUTS_PAGE = 500
PAID_STATES = ("signed", "spent")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class MixinUnavailable(ProviderError):
    """Mixin could not be reached or answered with a server error; poll again later."""


class MixinRefused(ProviderError):
    """Mixin answered with a client error: the request will not succeed as it is."""

    def __init__(self, message: str, *, code):
        super().__init__(message)
        self.code = code


def _decrypt(name: str, token: str) -> str:
    """A secret setting holds a Fernet token of exchanges.crypto (the keys of EXCHANGE_SECRET_KEYS)."""
    from exchanges.crypto import decrypt_secret
    from exchanges.errors import SecretDecryptionError

    if not token:
        return ""
    if not token.startswith("gAAAA"):
        raise ProviderError(f"{name} must be stored encrypted: set it to the output of `manage.py shell -c "
                            f"\"from exchanges.crypto import encrypt_secret; print(encrypt_secret('<hex>'))\"` "
                            "(docs/mixin.md)")
    try:
        return decrypt_secret(token)
    except SecretDecryptionError as exc:
        raise ProviderError(f"{name}: {exc}") from None


class MixinPaymentProvider(PaymentProvider):
    name = "mixin"

    def __init__(self, *, base_url: str, client_id: str, session_id: str, private_key_hex: str,
                 spend_private_key: str = "", timeout: float = 10.0, poll_limit: int = 100, max_inputs: int = 255):
        if not (client_id and session_id and private_key_hex):
            raise ProviderError("the Mixin provider needs MIXIN_CLIENT_ID, MIXIN_SESSION_ID and "
                                "MIXIN_SESSION_PRIVATE_KEY (hex Ed25519 seed)")
        self.base_url = base_url.rstrip("/")
        try:
            self.client_id = str(uuid.UUID(client_id))
            self.key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private_key_hex)[:32])
        except ValueError as exc:
            raise ProviderError(f"MIXIN_CLIENT_ID must be a UUID and MIXIN_SESSION_PRIVATE_KEY a hex Ed25519 seed: "
                                f"{exc}") from None
        self.session_id = session_id
        self.spend_private_key = spend_private_key
        self.timeout = timeout
        self.poll_limit = poll_limit
        self.max_inputs = max(2, min(int(max_inputs), safe.SLICE_COUNT_LIMIT))
        self.http = requests.Session()

    @classmethod
    def from_settings(cls) -> MixinPaymentProvider:
        spend = _decrypt("MIXIN_SPEND_PRIVATE_KEY", settings.MIXIN_SPEND_PRIVATE_KEY)
        if not spend:
            # A bot whose PIN is its TIP key spends with the PIN's first 32 bytes (the Go SDK's SafeUser).
            spend = _decrypt("MIXIN_PIN", settings.MIXIN_PIN)[:64]
        return cls(base_url=settings.MIXIN_API_BASE, client_id=settings.MIXIN_CLIENT_ID,
                   session_id=settings.MIXIN_SESSION_ID, private_key_hex=settings.MIXIN_SESSION_PRIVATE_KEY,
                   spend_private_key=spend, timeout=settings.MIXIN_HTTP_TIMEOUT_S,
                   poll_limit=settings.MIXIN_POLL_LIMIT, max_inputs=settings.MIXIN_MAX_INPUTS)

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

    def _call(self, method: str, path: str, *, params: dict | None = None, body=None):
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
        try:
            recipient = str(uuid.UUID(opponent_id))
        except (ValueError, TypeError, AttributeError):
            raise TransferRejected(f"recipient {opponent_id!r} is not a Mixin user id") from None
        units = _units(amount)
        payees = [{"user": recipient, "units": units}]
        result = self._pay(request_id=request_id, asset_id=asset_id, payees=payees, extra=memo.encode()[:512],
                           build_payees=lambda: payees)
        logger.info("event=mixin_transfer request_id=%s opponent_id=%s asset_id=%s amount=%s tx=%s snapshot_id=%s",
                    request_id, recipient, asset_id, amount, result.get("transaction_hash"), result.get("snapshot_id"))
        return _receipt(result)

    def withdraw(self, *, request_id: str, asset_id: str, exchange_asset: str, amount: Decimal, address: str,
                 tag: str = "", network: str = "") -> TransferReceipt:
        if not address:
            raise TransferRejected("withdrawal without a destination address")
        units = _units(amount)
        target = {"destination": address, "tag": tag or "", "units": units}
        used: list[int] = []

        def build_payees() -> list[dict]:
            fee = self._withdrawal_fee(asset_id, address)
            used.append(fee)
            return [target, {"user": FEE_USER_ID, "units": fee, "fee": True}]

        for _ in range(2):
            try:
                result = self._pay(request_id=request_id, asset_id=asset_id, payees=[target], extra=b"",
                                   build_payees=build_payees)
                break
            except TransferRejected:
                # Refused: was it the fee, changed since it was read? Then build again with the new one, once.
                if not used or self._withdrawal_fee(asset_id, address) == used[-1]:
                    raise
        else:
            raise TransferRejected(
                f"withdrawal {request_id}: the withdrawal fee of {asset_id} changed while sending (read "
                f"{safe.units_to_amount(used[0])}, then {safe.units_to_amount(used[-1])}, now another); nothing was "
                "sent, retry later")
        logger.info("event=mixin_withdrawal request_id=%s asset_id=%s amount=%s address=%s tag=%s fee=%s tx=%s",
                    request_id, asset_id, amount, address, tag, safe.units_to_amount(used[-1]) if used else "?",
                    result.get("transaction_hash"))
        return _receipt(result)

    def _withdrawal_fee(self, asset_id: str, destination: str) -> int:
        try:
            fees = self._call("GET", f"/safe/assets/{asset_id}/fees", params={"destination": destination}) or []
        except MixinUnavailable as exc:
            raise TransferUncertain(f"withdrawal fee of {asset_id}: {exc}") from None
        except MixinRefused as exc:
            raise TransferRejected(f"withdrawal fee of {asset_id}: {exc}") from None
        for fee in fees:
            if fee.get("asset_id") == asset_id:
                return safe.amount_to_units(str(fee.get("amount")), field="withdrawal fee")
        raise TransferRejected(f"Mixin charges the withdrawal fee of {asset_id} only in another asset "
                               f"({', '.join(str(f.get('asset_id')) for f in fees) or 'none offered'}): not supported "
                               "here, nothing was sent")

    # --- one Safe payment ----------------------------------------------------------------
    def _pay(self, *, request_id: str, asset_id: str, payees: list[dict], extra: bytes,
             build_payees: Callable[[], list[dict]]) -> dict:
        """Pay ``payees`` under ``request_id`` once; returns Mixin's transaction. Maps Mixin's answers to
        TransferRejected (nothing was paid, for good) and TransferUncertain (retry with the same id)."""
        if not self.spend_private_key:
            raise ProviderError("the Mixin provider needs MIXIN_SPEND_PRIVATE_KEY (or MIXIN_PIN) to pay")
        try:
            request_id = str(uuid.UUID(request_id))
            uuid.UUID(asset_id)
        except (ValueError, TypeError, AttributeError):
            raise TransferRejected(f"request id {request_id!r} and asset id {asset_id!r} must be UUIDs") from None
        try:
            with self._spend_lock(asset_id):
                return self._complete(request_id, asset_id=asset_id, payees=payees, build=lambda current: self._build(
                    current, asset_id=asset_id, payees=build_payees(), extra=extra))
        except MixinUnavailable as exc:
            raise TransferUncertain(f"payment {request_id}: {exc}") from None
        except MixinRefused as exc:
            raise TransferRejected(f"payment {request_id}: {exc}; nothing was paid") from None
        except safe.InvalidTransaction as exc:
            raise TransferRejected(f"payment {request_id}: {exc}") from None

    def _complete(self, request_id: str, *, asset_id: str, payees: list[dict], build: Callable[[str], dict],
                  rebuild: bool = True) -> dict | None:
        """Steps 1 and 2 of the module's docstring; ``build(request_id)`` makes the unsigned transaction.

        A transaction requested under the request id but never submitted, whose inputs another payment
        spent meanwhile, can never be accepted: it is abandoned and the payment is built again under the
        next id derived from the request id (``rebuild``), checking the earlier ids first on every retry,
        so the payment is still made once. Without ``rebuild`` (a consolidation) None is returned then.
        """
        for attempt in range(MAX_REBUILDS):
            current = request_id if attempt == 0 else safe.unique_object_id(request_id, "REBUILD", str(attempt))
            existing = self._read_transaction(current)
            if existing is not None and existing.get("state") in PAID_STATES:
                self._same_payment(existing, request_id=current, asset_id=asset_id, payees=payees)
                return existing
            if existing is not None and existing.get("state") == "unspent" and existing.get("raw_transaction"):
                # Requested before and never submitted (a crash after signing): the same transaction, again.
                tx = safe.decode_transaction(existing["raw_transaction"])
                views = existing.get("views") or []
                logger.warning("event=mixin_resubmit request_id=%s inputs=%s", current, len(tx["inputs"]))
            else:
                tx = build(current)
                raw = safe.encode_transaction(tx)
                answer = self._one(self._call("POST", "/safe/transaction/requests",
                                              body=[{"request_id": current, "raw": raw}]), current)
                if answer.get("state") in PAID_STATES:
                    self._same_payment(answer, request_id=current, asset_id=asset_id, payees=payees)
                    return answer
                if answer.get("raw_transaction") and answer["raw_transaction"] != raw:
                    tx = safe.decode_transaction(answer["raw_transaction"])
                views = answer.get("views") or []
            signed = safe.sign_transaction(tx, views, self.spend_private_key)
            try:
                return self._one(self._call("POST", "/safe/transactions",
                                            body=[{"request_id": current, "raw": signed}]), current)
            except MixinRefused as exc:
                paid = self._abandoned(current, tx, asset_id=asset_id, refusal=exc)
                if paid is not None:
                    return paid
                logger.warning("event=mixin_request_abandoned request_id=%s reason=%r", current, str(exc))
                if not rebuild:
                    return None
        raise TransferUncertain(f"payment {request_id}: {MAX_REBUILDS} transactions built, each outrun by another "
                                "payment spending its outputs; retry")

    def _abandoned(self, request_id: str, tx: dict, *, asset_id: str, refusal: MixinRefused) -> dict | None:
        """After a refused submission: the transaction if it was made after all; None when an input is spent
        by another transaction (so this one can never be); otherwise the refusal stands."""
        unspent = {(o["transaction_hash"], int(o["output_index"])) for o in self._unspent(asset_id)}
        if all((i["hash"], i["index"]) in unspent for i in tx["inputs"]):
            raise refusal
        # An input is gone. Read the request after the outputs: had this very transaction spent it, the
        # request would already say so.
        again = self._read_transaction(request_id)
        if again is not None and again.get("state") in PAID_STATES:
            return again
        return None

    def _read_transaction(self, request_id: str) -> dict | None:
        try:
            return self._call("GET", f"/safe/transactions/{request_id}")
        except MixinRefused as exc:
            if exc.code in NOT_FOUND_CODES:
                return None
            raise

    @staticmethod
    def _one(data, request_id: str) -> dict:
        if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict) \
                or data[0].get("request_id") != request_id:
            raise MixinUnavailable(f"request {request_id}: unexpected answer {data!r}")
        return data[0]

    def _same_payment(self, found: dict, *, request_id: str, asset_id: str, payees: list[dict]) -> None:
        """A transaction already made under this request id must be this payment; otherwise the request id
        was reused for something else: money left, but not as asked (an operator must look).

        Checked on the transaction itself (its raw form: the asset, and the first output, which is always
        the payee's: its amount, and a withdrawal's address), and on the receivers Mixin lists when it
        lists them."""
        if not payees:
            return
        payee = payees[0]
        same = True
        raw = found.get("raw_transaction")
        if raw:
            try:
                tx = safe.decode_transaction(raw)
            except safe.InvalidTransaction:
                tx = None
            first = tx["outputs"][0] if tx and tx["outputs"] else {}
            same = bool(first) and tx["asset"] == safe.kernel_asset_id(asset_id) \
                and safe.amount_to_units(first["amount"]) == payee["units"]
            if same and "destination" in payee:
                same = (first.get("withdrawal") or {}).get("address") == payee["destination"]
        receivers = found.get("receivers") or []
        if same and "user" in payee and any(r.get("members") for r in receivers):
            same = any(payee["user"] in (r.get("members") or []) for r in receivers)
        if not same:
            raise TransferUncertain(
                f"request id {request_id} was already used by Mixin transaction {found.get('transaction_hash')} "
                f"({found.get('amount')} of {found.get('asset_id') or found.get('asset')}), not this payment: "
                "nothing more is sent; an operator must reconcile it")

    def _unspent(self, asset_id: str) -> list[dict]:
        """Every unspent output of the bot in ``asset_id``, oldest first (paged by sequence)."""
        rows, offset = [], 0
        while True:
            params = {"members": safe.hash_members([self.client_id]), "threshold": 1, "asset": asset_id,
                      "state": "unspent", "limit": OUTPUTS_PAGE}
            if offset:
                params["offset"] = offset
            page = self._call("GET", "/safe/outputs", params=params) or []
            rows += [o for o in page if o.get("state") == "unspent" and o.get("asset_id") == asset_id]
            if len(page) < OUTPUTS_PAGE:
                return rows
            offset = int(page[-1]["sequence"])

    def _build(self, request_id: str, *, asset_id: str, payees: list[dict], extra: bytes) -> dict:
        total = sum(p["units"] for p in payees)
        for round_no in range(MAX_CONSOLIDATION_ROUNDS + 1):
            outputs = self._unspent(asset_id)
            have = sum(safe.amount_to_units(o["amount"]) for o in outputs)
            if have < total:
                raise TransferRejected(
                    f"payment {request_id}: not enough outputs: the bot holds {safe.units_to_amount(have)} of "
                    f"{asset_id} in {len(outputs)} unspent outputs, {safe.units_to_amount(total)} needed; nothing was "
                    "paid")
            picked, sum_in = [], 0
            for output in outputs:
                picked.append(output)
                sum_in += safe.amount_to_units(output["amount"])
                if sum_in >= total:
                    break
            if len(picked) <= self.max_inputs:
                break
            if round_no == MAX_CONSOLIDATION_ROUNDS:
                raise TransferUncertain(f"payment {request_id}: still {len(picked)} outputs needed after "
                                        f"{round_no} consolidations; retry")
            self._consolidate(request_id, round_no, asset_id=asset_id, outputs=outputs[:self.max_inputs])
        change = sum_in - total
        receivers = list(payees)
        if change:
            receivers.append({"user": self.client_id, "units": change})
        return self._transaction(request_id, asset_id=asset_id, inputs=picked, receivers=receivers, extra=extra)

    def _consolidate(self, request_id: str, round_no: int, *, asset_id: str, outputs: list[dict]) -> None:
        """Many small outputs: pay ``max_inputs`` of them back to the bot as one, before the payment."""
        consolidation_id = safe.unique_object_id(request_id, "CONSOLIDATE", str(round_no))
        units = sum(safe.amount_to_units(o["amount"]) for o in outputs)

        def build(current: str) -> dict:
            return self._transaction(current, asset_id=asset_id, inputs=outputs,
                                     receivers=[{"user": self.client_id, "units": units}], extra=b"")

        result = self._complete(consolidation_id, asset_id=asset_id, payees=[], build=build, rebuild=False) or {}
        logger.info("event=mixin_consolidated request_id=%s consolidation_id=%s inputs=%s amount=%s tx=%s",
                    request_id, consolidation_id, len(outputs), safe.units_to_amount(units),
                    result.get("transaction_hash"))

    def _transaction(self, request_id: str, *, asset_id: str, inputs: list[dict], receivers: list[dict],
                     extra: bytes) -> dict:
        """The unsigned transaction: ghost keys for each user receiver, hints derived from the request id (a
        rebuild asks for the same keys)."""
        trace = safe.blake3_hash(request_id.encode()).hex()
        wanted = [{"receivers": [r["user"]], "index": i, "hint": safe.unique_object_id(trace, f"{i}")}
                  for i, r in enumerate(receivers) if "user" in r]
        keys = self._call("POST", "/safe/keys", body=wanted) if wanted else []
        if not isinstance(keys, list) or len(keys) != len(wanted):
            raise MixinUnavailable(f"POST /safe/keys: {len(wanted)} ghost keys asked, got {keys!r}")
        ghosts = {w["index"]: k for w, k in zip(wanted, keys)}
        outputs = []
        for i, receiver in enumerate(receivers):
            amount = safe.units_to_amount(receiver["units"])
            if "destination" in receiver:
                outputs.append({"type": safe.OUTPUT_TYPE_WITHDRAWAL_SUBMIT, "amount": amount, "keys": [],
                                "mask": safe.ZERO_KEY, "script": "",
                                "withdrawal": {"address": receiver["destination"], "tag": receiver["tag"]}})
                continue
            outputs.append({"type": safe.OUTPUT_TYPE_SCRIPT, "amount": amount, "keys": ghosts[i]["keys"],
                            "mask": ghosts[i]["mask"], "script": safe.threshold_script(1)})
        kernel_asset = safe.kernel_asset_id(asset_id)
        for output in inputs:
            if output.get("kernel_asset_id", kernel_asset) != kernel_asset:
                raise TransferRejected(f"output {output.get('output_id')} is asset {output.get('asset_id')}, not "
                                       f"{asset_id}; nothing was paid")
        return {"version": safe.TX_VERSION, "asset": kernel_asset, "extra": extra, "references": [],
                "inputs": [{"hash": o["transaction_hash"], "index": int(o["output_index"])} for o in inputs],
                "outputs": outputs}

    @contextmanager
    def _spend_lock(self, asset_id: str):
        """One payment of an asset at a time across every process: each would otherwise pick the same
        unspent outputs and all but one would be refused as double spends. PostgreSQL: a session-level
        advisory lock (a crashed process's connection lets go); SQLite: a lock file in the var directory."""
        key = int.from_bytes(hashlib.sha256(f"mixin-spend:{asset_id}".encode()).digest()[:8], "big", signed=True)
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", [key])
            try:
                yield
            finally:
                with connection.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", [key])
            return
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        with open(settings.VAR_DIR / f"mixin-spend-{asset_id}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- receiving (the payout after stop: exchange -> bot -> user) -------------------
    def deposit_target(self, *, asset_id: str, exchange_asset: str, network: str = "") -> DepositTarget:
        """The bot's deposit address (and tag) of ``asset_id``'s chain (``POST /safe/deposit/entries``).
        Raises TransferUncertain (ask again later) or PayoutNotPossible (Mixin gives none)."""
        try:
            asset = self._call("GET", f"/safe/assets/{asset_id}") or {}
            chain_id = asset.get("chain_id") or asset_id
            entries = self._call("POST", "/safe/deposit/entries",
                                 body={"members": [self.client_id], "threshold": 1, "chain_id": chain_id}) or []
        except MixinUnavailable as exc:
            raise TransferUncertain(f"deposit address of {asset_id}: {exc}") from None
        except MixinRefused as exc:
            raise PayoutNotPossible(f"Mixin gives no deposit address of {asset_id}: {exc}") from None
        if not entries or not entries[0].get("destination"):
            raise PayoutNotPossible(f"Mixin gives no deposit address of {asset_id} (chain {chain_id}): {entries!r}")
        return DepositTarget(address=entries[0]["destination"], tag=entries[0].get("tag") or "")

    def deposit_received(self, *, asset_id: str, tx_id: str) -> Decimal | None:
        """The amount of the on-chain deposit ``tx_id`` once Mixin credited it (it has its confirmations and
        is a snapshot of the bot), else None. Looks among the asset's newest snapshots (one page)."""
        try:
            rows = self._call("GET", "/safe/snapshots",
                              params={"asset": asset_id, "limit": 500, "order": "DESC"}) or []
        except MixinUnavailable as exc:
            raise TransferUncertain(f"deposits of {asset_id}: {exc}") from None
        except MixinRefused as exc:
            raise PayoutNotPossible(f"Mixin refuses to list the deposits of {asset_id}: {exc}") from None
        for row in rows:
            deposit = row.get("deposit") or {}
            if deposit.get("deposit_hash") == tx_id and row.get("asset_id") == asset_id:
                return Decimal(str(row["amount"]))
        return None

    # --- incoming -------------------------------------------------------------------
    def snapshots_after(self, cursor: str) -> list[dict]:
        """The next page of snapshots after ``cursor`` (oldest first; Mixin's offset is inclusive, so
        the snapshot at the cursor comes back: recording is idempotent by snapshot id)."""
        params = {"limit": self.poll_limit, "order": "ASC"}
        if cursor:
            params["offset"] = cursor
        return self._call("GET", "/safe/snapshots", params=params) or []


def _units(amount) -> int:
    try:
        units = safe.amount_to_units(amount)
    except safe.InvalidTransaction as exc:
        raise TransferRejected(str(exc)) from None
    if units <= 0:
        raise TransferRejected(f"amount {amount} is not positive")
    return units


def _receipt(result: dict) -> TransferReceipt:
    tx_hash = str(result.get("transaction_hash") or "")
    return TransferReceipt(ref=str(result.get("snapshot_id") or tx_hash or result.get("request_id")), tx_id=tx_hash)
