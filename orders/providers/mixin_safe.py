"""Mixin Safe (kernel v5) transactions: the binary encoding, decoding and signing the Safe API takes.

Facts from the official SDKs and the kernel (read, not copied): MixinNetwork/mixin common/encoding.go
and common/decoding.go (the wire format), crypto/key.go and crypto/signature.go (ghost keys, signing);
MixinNetwork/bot-api-go-client transaction.go (signRawTransaction) and bot-api-nodejs-client
src/client/utils/safe.ts. Their published vectors are in tests/orders/test_mixin_safe.py.

A transaction is a dict with the SDKs' fields::

    {"version": 5, "asset": hex32, "extra": bytes, "references": [hex32],
     "inputs": [{"hash": hex32, "index": int}],
     "outputs": [{"type": int, "amount": "1.5", "keys": [hex32], "mask": hex32, "script": hex,
                  "withdrawal": {"address": str, "tag": str}  # withdrawal outputs only
                  }],
     "signatures": [{0: hex64}]}   # one map per input, signer index -> signature; absent when unsigned

Amounts are decimal strings (or Decimal/int) with at most 8 decimals: the kernel's integers count
1e-8 units. Curve and scalar arithmetic is libsodium's (PyNaCl), hashes are hashlib's and blake3's.
"""
from __future__ import annotations

import hashlib
import struct
import uuid
from decimal import Decimal

import blake3
from nacl import bindings as sodium

TX_VERSION = 5
MAGIC = b"\x77\x77"
NULL = b"\x00\x00"
PRECISION = 8
UNIT = Decimal(10) ** PRECISION
MAX_ENCODING_INT = 0xFFFF
SLICE_COUNT_LIMIT = 256
INPUT_INDEX_LIMIT = 1024
EXTRA_SIZE_LIMIT = 1024 * 1024 * 4
OUTPUT_TYPE_SCRIPT = 0x00
OUTPUT_TYPE_WITHDRAWAL_SUBMIT = 0xA1
ZERO_KEY = "00" * 32


class InvalidTransaction(ValueError):
    """A transaction (dict or raw hex) that cannot be encoded, decoded or signed; the message says why."""


# --- amounts ------------------------------------------------------------------------------
def amount_to_units(amount, *, field: str = "amount") -> int:
    """The kernel integer of ``amount`` (1e-8 units); refuses floats, negatives and a 9th decimal."""
    if isinstance(amount, bool) or isinstance(amount, float):
        raise InvalidTransaction(f"{field} must be a decimal string, Decimal or int, not {type(amount).__name__} "
                                 f"({amount!r}): floats cannot hold amounts exactly")
    if isinstance(amount, str):
        try:
            value = Decimal(amount.strip())
        except ArithmeticError:
            raise InvalidTransaction(f"{field} {amount!r} is not a decimal number") from None
    elif isinstance(amount, (Decimal, int)):
        value = Decimal(amount)
    else:
        raise InvalidTransaction(f"{field} must be a decimal string, Decimal or int, not {type(amount).__name__}")
    if not value.is_finite():
        raise InvalidTransaction(f"{field} {amount!r} is not a finite number")
    if value < 0:
        raise InvalidTransaction(f"{field} {amount} is negative")
    units = value * UNIT
    if units != units.to_integral_value():
        raise InvalidTransaction(f"{field} {amount} has more than {PRECISION} decimal places (Mixin's precision)")
    return int(units)


def units_to_amount(units: int) -> str:
    """The decimal string of a kernel integer, without trailing zeros ("1", "0.0001")."""
    value = (Decimal(units) / UNIT).normalize()
    return format(value, "f") if units else "0"


# --- hashes and ids -------------------------------------------------------------------------
def blake3_hash(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def kernel_asset_id(asset_id: str) -> str:
    """The kernel's asset hash of a Mixin asset id (a UUID): sha256 of its text."""
    return hashlib.sha256(str(uuid.UUID(asset_id)).encode()).hexdigest()


def hash_members(members: list[str]) -> str:
    """``members`` hash of /safe/outputs: sha3-256 of the sorted user ids concatenated."""
    return hashlib.sha3_256("".join(sorted(members)).encode()).hexdigest()


def unique_object_id(*parts: str) -> str:
    """The SDKs' UniqueObjectId: an MD5-based version-3 UUID of the concatenated parts."""
    digest = bytearray(hashlib.md5("".join(parts).encode()).digest())
    digest[6] = (digest[6] & 0x0F) | 0x30
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def threshold_script(threshold: int) -> str:
    """The output script of an m-of-n receiver set: OP_CMP, OP_SUM, threshold."""
    if not 0 < threshold < 256:
        raise InvalidTransaction(f"threshold {threshold} out of range 1..255")
    return f"fffe{threshold:02x}"


# --- scalars and points (libsodium) ---------------------------------------------------------
def _scalar_reduce(wide: bytes) -> bytes:
    return sodium.crypto_core_ed25519_scalar_reduce(wide.ljust(64, b"\x00"))


def scalar_from_canonical(data: bytes, *, field: str = "scalar") -> bytes:
    """A 32-byte little-endian scalar that must already be reduced modulo the group order."""
    if len(data) != 32:
        raise InvalidTransaction(f"{field} must be 32 bytes, got {len(data)}")
    if _scalar_reduce(data) != data:
        raise InvalidTransaction(f"{field} is not a canonical ed25519 scalar")
    return data


def scalar_from_uniform(data: bytes) -> bytes:
    """A scalar from 64 uniform bytes (SetUniformBytes)."""
    return _scalar_reduce(data)


def spend_scalar(spend_private_key: str) -> bytes:
    """The spend key's scalar ``y``: the Ed25519 seed's clamped sha512 half, reduced (SetBytesWithClamping)."""
    seed = _seed(spend_private_key)
    half = bytearray(hashlib.sha512(seed).digest()[:32])
    half[0] &= 248
    half[31] &= 63
    half[31] |= 64
    return _scalar_reduce(bytes(half))


def _seed(spend_private_key: str) -> bytes:
    try:
        raw = bytes.fromhex(spend_private_key)
    except (TypeError, ValueError):
        raise InvalidTransaction("the spend private key must be hex (a 32-byte Ed25519 seed, or seed + public key)") from None
    if len(raw) not in (32, 64):
        raise InvalidTransaction(f"the spend private key must be 32 or 64 bytes, got {len(raw)}")
    return raw[:32]


def public_key(scalar: bytes) -> bytes:
    return sodium.crypto_scalarmult_ed25519_base_noclamp(scalar)


def spend_public_key(spend_private_key: str) -> str:
    """The public spend key (hex) Mixin registers for the bot: ``y * G``."""
    return public_key(spend_scalar(spend_private_key)).hex()


def hash_scalar(point: bytes, output_index: int) -> bytes:
    """The kernel's HashScalar(point, index): two rounds of blake3 expanded to 64 bytes, reduced."""
    varint = bytearray()
    value = output_index
    while value >= 0x80:
        varint.append((value & 0x7F) | 0x80)
        value >>= 7
    varint.append(value)
    first = blake3_hash(point + bytes(varint))
    scalar = scalar_from_uniform(first + blake3_hash(first))
    second = blake3_hash(scalar)
    return scalar_from_uniform(second + blake3_hash(second))


def derive_ghost_public_key(r: bytes, view_public: bytes, spend_public: bytes, output_index: int) -> bytes:
    """``H(r*A, i)*G + B``: the one-time key of output ``i`` for the receiver (A, B)."""
    x = hash_scalar(sodium.crypto_scalarmult_ed25519_noclamp(r, view_public), output_index)
    return sodium.crypto_core_ed25519_add(spend_public, public_key(x))


def derive_ghost_view(R: bytes, view_private: bytes, output_index: int) -> bytes:
    """``H(a*R, i)``: what the receiver's view key learns of output ``i`` (the "view" Safe hands out)."""
    return hash_scalar(sodium.crypto_scalarmult_ed25519_noclamp(view_private, R), output_index)


def sign_with_scalar(scalar: bytes, message: bytes) -> bytes:
    """The kernel's Key.Sign: Ed25519 with the private scalar itself (not a seed) as the key."""
    digest = hashlib.sha512(scalar).digest()
    z = scalar_from_uniform(hashlib.sha512(digest[32:] + message).digest())
    R = public_key(z)
    challenge = scalar_from_uniform(hashlib.sha512(R + public_key(scalar) + message).digest())
    s = sodium.crypto_core_ed25519_scalar_add(sodium.crypto_core_ed25519_scalar_mul(challenge, scalar), z)
    return R + s


def verify_signature(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    """Standard Ed25519 verification (the kernel's signatures verify as plain Ed25519)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- encoding -------------------------------------------------------------------------------
def _hex_bytes(value, *, field: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise InvalidTransaction(f"{field} must be a hex string, not {type(value).__name__}")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise InvalidTransaction(f"{field} {value!r} is not hex") from None
    if size is not None and len(data) != size:
        raise InvalidTransaction(f"{field} must be {size} bytes, got {len(data)}")
    return data


class _Writer:
    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def int16(self, value: int, *, field: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ENCODING_INT:
            raise InvalidTransaction(f"{field} {value!r} is not an integer in 0..{MAX_ENCODING_INT}")
        self.write(struct.pack(">H", value))

    def bytes16(self, data: bytes, *, field: str) -> None:
        self.int16(len(data), field=f"length of {field}")
        self.write(data)

    def integer(self, units: int) -> None:
        data = units.to_bytes((units.bit_length() + 7) // 8, "big")
        self.bytes16(data, field="amount")


def _extra_bytes(extra) -> bytes:
    if extra is None:
        return b""
    if isinstance(extra, (bytes, bytearray)):
        return bytes(extra)
    if isinstance(extra, str):
        return extra.encode()
    raise InvalidTransaction(f"extra must be bytes (or text, encoded as UTF-8), not {type(extra).__name__}")


def _encode_input(w: _Writer, item: dict, i: int) -> None:
    if not isinstance(item, dict):
        raise InvalidTransaction(f"inputs[{i}] must be a dict with hash and index")
    w.write(_hex_bytes(item.get("hash"), field=f"inputs[{i}].hash", size=32))
    index = item.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= INPUT_INDEX_LIMIT:
        raise InvalidTransaction(f"inputs[{i}].index {index!r} is not an integer in 0..{INPUT_INDEX_LIMIT}")
    w.int16(index, field=f"inputs[{i}].index")
    w.bytes16(_hex_bytes(item.get("genesis") or "", field=f"inputs[{i}].genesis"), field="genesis")
    deposit = item.get("deposit")
    if deposit is None:
        w.write(NULL)
    else:
        w.write(MAGIC)
        w.write(_hex_bytes(deposit.get("chain"), field=f"inputs[{i}].deposit.chain", size=32))
        w.bytes16(str(deposit.get("asset_key", "")).encode(), field="deposit asset key")
        w.bytes16(str(deposit.get("transaction", "")).encode(), field="deposit transaction")
        w.write(struct.pack(">Q", int(deposit.get("index", 0))))
        w.integer(amount_to_units(deposit.get("amount"), field=f"inputs[{i}].deposit.amount"))
    mint = item.get("mint")
    if mint is None:
        w.write(NULL)
    else:
        w.write(MAGIC)
        w.bytes16(str(mint.get("group", "")).encode(), field="mint group")
        w.write(struct.pack(">Q", int(mint.get("batch", 0))))
        w.integer(amount_to_units(mint.get("amount"), field=f"inputs[{i}].mint.amount"))


def _encode_output(w: _Writer, item: dict, i: int) -> None:
    if not isinstance(item, dict):
        raise InvalidTransaction(f"outputs[{i}] must be a dict")
    kind = item.get("type", 0) or 0
    if not isinstance(kind, int) or isinstance(kind, bool) or not 0 <= kind <= 0xFF:
        raise InvalidTransaction(f"outputs[{i}].type {kind!r} is not a byte")
    w.write(bytes([0, kind]))
    w.integer(amount_to_units(item.get("amount"), field=f"outputs[{i}].amount"))
    keys = item.get("keys") or []
    if len(keys) > SLICE_COUNT_LIMIT:
        raise InvalidTransaction(f"outputs[{i}] has {len(keys)} keys, more than {SLICE_COUNT_LIMIT}")
    w.int16(len(keys), field="keys count")
    for j, key in enumerate(keys):
        w.write(_hex_bytes(key, field=f"outputs[{i}].keys[{j}]", size=32))
    w.write(_hex_bytes(item.get("mask") or ZERO_KEY, field=f"outputs[{i}].mask", size=32))
    w.bytes16(_hex_bytes(item.get("script") or "", field=f"outputs[{i}].script"), field="script")
    withdrawal = item.get("withdrawal")
    if withdrawal is None:
        w.write(NULL)
    else:
        w.write(MAGIC)
        w.bytes16(str(withdrawal.get("address", "")).encode(), field="withdrawal address")
        w.bytes16(str(withdrawal.get("tag", "") or "").encode(), field="withdrawal tag")


def _encode(tx: dict, signatures: list[dict] | None) -> bytes:
    if not isinstance(tx, dict):
        raise InvalidTransaction(f"a transaction is a dict, not {type(tx).__name__}")
    version = tx.get("version", TX_VERSION)
    if version != TX_VERSION:
        raise InvalidTransaction(f"version {version!r} is not supported (only {TX_VERSION}, hash signatures)")
    inputs, outputs, references = tx.get("inputs") or [], tx.get("outputs") or [], tx.get("references") or []
    for name, items in (("inputs", inputs), ("outputs", outputs), ("references", references)):
        if not isinstance(items, list):
            raise InvalidTransaction(f"{name} must be a list")
        if len(items) > SLICE_COUNT_LIMIT:
            raise InvalidTransaction(f"{len(items)} {name}: at most {SLICE_COUNT_LIMIT}")
    w = _Writer()
    w.write(MAGIC + bytes([0, version]))
    w.write(_hex_bytes(tx.get("asset"), field="asset", size=32))
    w.int16(len(inputs), field="inputs count")
    for i, item in enumerate(inputs):
        _encode_input(w, item, i)
    w.int16(len(outputs), field="outputs count")
    for i, item in enumerate(outputs):
        _encode_output(w, item, i)
    w.int16(len(references), field="references count")
    for i, ref in enumerate(references):
        w.write(_hex_bytes(ref, field=f"references[{i}]", size=32))
    extra = _extra_bytes(tx.get("extra"))
    if len(extra) > EXTRA_SIZE_LIMIT:
        raise InvalidTransaction(f"extra is {len(extra)} bytes, more than {EXTRA_SIZE_LIMIT}")
    w.write(struct.pack(">I", len(extra)))
    w.write(extra)
    signatures = signatures or []
    w.int16(len(signatures), field="signatures count")
    for i, sig_map in enumerate(signatures):
        w.int16(len(sig_map), field=f"signatures[{i}] count")
        for index in sorted(sig_map):
            w.int16(int(index), field=f"signatures[{i}] signer index")
            w.write(_hex_bytes(sig_map[index], field=f"signatures[{i}][{index}]", size=64))
    return b"".join(w.parts)


def encode_transaction(tx: dict) -> str:
    """The raw transaction as hex; with ``tx["signatures"]`` when present (a decoded signed one)."""
    return _encode(tx, tx.get("signatures") if isinstance(tx, dict) else None).hex()


def payload_hash(tx: dict) -> bytes:
    """The message every input signs, and the transaction's hash: blake3 of the unsigned encoding."""
    return blake3_hash(_encode(tx, None))


def transaction_hash(tx: dict) -> str:
    return payload_hash(tx).hex()


# --- decoding -------------------------------------------------------------------------------
class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def read(self, size: int, what: str) -> bytes:
        if self.at + size > len(self.data):
            raise InvalidTransaction(f"truncated transaction: {what} needs {size} bytes at offset {self.at}, "
                                     f"only {len(self.data) - self.at} left")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def int16(self, what: str) -> int:
        return struct.unpack(">H", self.read(2, what))[0]

    def bytes16(self, what: str) -> bytes:
        return self.read(self.int16(f"length of {what}"), what)

    def integer(self, what: str) -> int:
        return int.from_bytes(self.bytes16(what), "big")

    def magic(self, what: str) -> bool:
        marker = self.read(2, what)
        if marker == MAGIC:
            return True
        if marker == NULL:
            return False
        raise InvalidTransaction(f"malformed {what} marker {marker.hex()} at offset {self.at - 2}")


def decode_transaction(raw_hex: str) -> dict:
    """The dict of a raw transaction (signed or not); raises InvalidTransaction saying what is wrong."""
    if not isinstance(raw_hex, str):
        raise InvalidTransaction(f"a raw transaction is a hex string, not {type(raw_hex).__name__}")
    try:
        data = bytes.fromhex(raw_hex.strip())
    except ValueError:
        raise InvalidTransaction("the raw transaction is not hex (odd length or a non-hex character)") from None
    r = _Reader(data)
    head = r.read(4, "magic and version")
    if head[:2] != MAGIC or head[2] != 0:
        raise InvalidTransaction(f"not a Mixin transaction: it starts with {head.hex()}, not 7777 00 05")
    version = head[3]
    if version != TX_VERSION:
        raise InvalidTransaction(f"transaction version {version} is not supported (only {TX_VERSION})")
    tx: dict = {"version": version, "asset": r.read(32, "asset").hex()}
    count = r.int16("inputs count")
    if count > SLICE_COUNT_LIMIT:
        raise InvalidTransaction(f"{count} inputs, more than {SLICE_COUNT_LIMIT}")
    inputs = []
    for i in range(count):
        item: dict = {"hash": r.read(32, f"inputs[{i}].hash").hex(), "index": r.int16(f"inputs[{i}].index")}
        if item["index"] > INPUT_INDEX_LIMIT:
            raise InvalidTransaction(f"inputs[{i}].index {item['index']} exceeds {INPUT_INDEX_LIMIT}")
        genesis = r.bytes16(f"inputs[{i}].genesis")
        if genesis:
            item["genesis"] = genesis.hex()
        if r.magic(f"inputs[{i}].deposit"):
            item["deposit"] = {
                "chain": r.read(32, "deposit chain").hex(),
                "asset_key": r.bytes16("deposit asset key").decode(errors="replace"),
                "transaction": r.bytes16("deposit transaction").decode(errors="replace"),
                "index": struct.unpack(">Q", r.read(8, "deposit index"))[0],
                "amount": units_to_amount(r.integer("deposit amount")),
            }
        if r.magic(f"inputs[{i}].mint"):
            item["mint"] = {
                "group": r.bytes16("mint group").decode(errors="replace"),
                "batch": struct.unpack(">Q", r.read(8, "mint batch"))[0],
                "amount": units_to_amount(r.integer("mint amount")),
            }
        inputs.append(item)
    tx["inputs"] = inputs
    count = r.int16("outputs count")
    if count > SLICE_COUNT_LIMIT:
        raise InvalidTransaction(f"{count} outputs, more than {SLICE_COUNT_LIMIT}")
    outputs = []
    for i in range(count):
        kind = r.read(2, f"outputs[{i}].type")
        if kind[0] != 0:
            raise InvalidTransaction(f"outputs[{i}].type {kind.hex()} is malformed")
        output: dict = {"type": kind[1], "amount": units_to_amount(r.integer(f"outputs[{i}].amount"))}
        nkeys = r.int16(f"outputs[{i}] keys count")
        if nkeys > SLICE_COUNT_LIMIT:
            raise InvalidTransaction(f"outputs[{i}] has {nkeys} keys, more than {SLICE_COUNT_LIMIT}")
        output["keys"] = [r.read(32, f"outputs[{i}].keys[{j}]").hex() for j in range(nkeys)]
        output["mask"] = r.read(32, f"outputs[{i}].mask").hex()
        output["script"] = r.bytes16(f"outputs[{i}].script").hex()
        if r.magic(f"outputs[{i}].withdrawal"):
            output["withdrawal"] = {"address": r.bytes16("withdrawal address").decode(errors="replace"),
                                    "tag": r.bytes16("withdrawal tag").decode(errors="replace")}
        outputs.append(output)
    tx["outputs"] = outputs
    count = r.int16("references count")
    if count > SLICE_COUNT_LIMIT:
        raise InvalidTransaction(f"{count} references, more than {SLICE_COUNT_LIMIT}")
    tx["references"] = [r.read(32, f"references[{i}]").hex() for i in range(count)]
    size = struct.unpack(">I", r.read(4, "extra length"))[0]
    if size > EXTRA_SIZE_LIMIT:
        raise InvalidTransaction(f"extra of {size} bytes, more than {EXTRA_SIZE_LIMIT}")
    tx["extra"] = r.read(size, "extra")
    count = r.int16("signatures count")
    if count == MAX_ENCODING_INT:
        raise InvalidTransaction("aggregated signatures (node transactions) are not supported here")
    signatures = []
    for i in range(min(count, SLICE_COUNT_LIMIT)):
        sig_map = {}
        for _ in range(r.int16(f"signatures[{i}] count")):
            index = r.int16(f"signatures[{i}] signer index")
            if index in sig_map:
                raise InvalidTransaction(f"signatures[{i}] repeats signer {index}")
            sig_map[index] = r.read(64, f"signatures[{i}][{index}]").hex()
        signatures.append(sig_map)
    if count > SLICE_COUNT_LIMIT:
        raise InvalidTransaction(f"{count} signature maps, more than {SLICE_COUNT_LIMIT}")
    tx["signatures"] = signatures
    if r.at != len(data):
        raise InvalidTransaction(f"{len(data) - r.at} unexpected bytes after the transaction (offset {r.at})")
    return tx


# --- signing --------------------------------------------------------------------------------
def sign_transaction(tx: dict, views: list[str], spend_private_key: str, *, signer_index: int = 0) -> str:
    """The signed raw transaction (hex): input ``i`` signed with ``views[i] + y``, y the spend key's scalar.

    ``views`` come from POST /safe/transaction/requests, one per input. Signatures already in ``tx``
    are replaced.
    """
    inputs = tx.get("inputs") or [] if isinstance(tx, dict) else []
    if not isinstance(views, list) or len(views) != len(inputs):
        raise InvalidTransaction(f"one view per input is needed: {len(inputs)} inputs, "
                                 f"{len(views) if isinstance(views, list) else 'no'} views")
    message = payload_hash(tx)
    y = spend_scalar(spend_private_key)
    signatures = []
    for i, view in enumerate(views):
        x = scalar_from_canonical(_hex_bytes(view, field=f"views[{i}]", size=32), field=f"views[{i}]")
        key = sodium.crypto_core_ed25519_scalar_add(x, y)
        signatures.append({signer_index: sign_with_scalar(key, message).hex()})
    return _encode(tx, signatures).hex()
