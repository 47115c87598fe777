"""The market-making memo codec: the wire format existing clients put on their payments.

``base58(payload + checksum)`` with the Bitcoin alphabet; payload = version (1 byte),
trading type (1 byte, 1 = market making), action (1 byte, 1 = create), pair UUID (16 bytes),
order UUID (16 bytes); checksum = first 4 bytes of sha256(sha256(payload)). A snapshot
carries the hex encoding of that base58 text.
"""
from __future__ import annotations

import binascii
import hashlib
import uuid
from dataclasses import dataclass

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {char: i for i, char in enumerate(ALPHABET)}

VERSION = 1
TRADING_TYPE_MARKET_MAKING = 1
ACTION_CREATE = 1
PAYLOAD_LENGTH = 3 + 16 + 16
CHECKSUM_LENGTH = 4


class InvalidMemo(ValueError):
    """A memo that is not a valid market-making create memo; ``reason`` says which check failed."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"invalid memo ({reason}): {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Memo:
    version: int
    trading_type: int
    action: int
    pair_id: uuid.UUID
    order_id: uuid.UUID


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, rem = divmod(number, 58)
        chars.append(ALPHABET[rem])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(chars))


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        try:
            number = number * 58 + _INDEX[char]
        except KeyError:
            raise InvalidMemo("bad_base58", f"character {char!r} is not in the base58 alphabet") from None
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading_ones = len(text) - len(text.lstrip("1"))
    return b"\0" * leading_ones + body


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:CHECKSUM_LENGTH]


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def encode_market_making_create_memo(pair_id, order_id) -> str:
    """The memo a client puts on the payment of order ``order_id`` on pair ``pair_id``."""
    payload = (
        bytes([VERSION, TRADING_TYPE_MARKET_MAKING, ACTION_CREATE])
        + _as_uuid(pair_id).bytes
        + _as_uuid(order_id).bytes
    )
    return b58encode(payload + _checksum(payload))


def decode_memo(text: str) -> Memo:
    """Decode a base58 memo, or raise InvalidMemo naming the failed check."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidMemo("empty", "the memo is empty")
    raw = b58decode(text.strip())
    if len(raw) <= CHECKSUM_LENGTH:
        raise InvalidMemo("wrong_length", f"{len(raw)} bytes is too short to carry a checksum")
    payload, checksum = raw[:-CHECKSUM_LENGTH], raw[-CHECKSUM_LENGTH:]
    if _checksum(payload) != checksum:
        raise InvalidMemo("bad_checksum", "the checksum does not match the payload")
    if payload[0] != VERSION:
        raise InvalidMemo("wrong_version", f"version {payload[0]}, expected {VERSION}")
    if len(payload) < 3:
        raise InvalidMemo("wrong_length", f"payload of {len(payload)} bytes, expected {PAYLOAD_LENGTH}")
    if payload[1] != TRADING_TYPE_MARKET_MAKING:
        raise InvalidMemo("wrong_trading_type", f"trading type {payload[1]}, expected {TRADING_TYPE_MARKET_MAKING}")
    if payload[2] != ACTION_CREATE:
        raise InvalidMemo("wrong_action", f"action {payload[2]}, expected {ACTION_CREATE}")
    if len(payload) != PAYLOAD_LENGTH:
        raise InvalidMemo("wrong_length", f"payload of {len(payload)} bytes, expected {PAYLOAD_LENGTH}")
    return Memo(
        version=payload[0],
        trading_type=payload[1],
        action=payload[2],
        pair_id=uuid.UUID(bytes=payload[3:19]),
        order_id=uuid.UUID(bytes=payload[19:35]),
    )


def decode_snapshot_memo(memo_hex: str) -> Memo:
    """Decode the memo field of a snapshot: hex of the base58 text."""
    try:
        text = binascii.unhexlify((memo_hex or "").strip()).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidMemo("bad_hex", "the snapshot memo is not hex of ASCII text") from None
    return decode_memo(text)


def encode_snapshot_memo(pair_id, order_id) -> str:
    """The hex form a snapshot carries for this order's memo."""
    return encode_market_making_create_memo(pair_id, order_id).encode("ascii").hex()
