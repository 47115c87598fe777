"""The memo codec: the wire format of existing clients, and every way a memo is refused."""
import hashlib
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.memo import (
    InvalidMemo, b58decode, b58encode, decode_memo, decode_snapshot_memo, encode_market_making_create_memo,
    encode_snapshot_memo,
)

pytestmark = pytest.mark.embedded


def _memo_from(payload: bytes) -> str:
    checksum = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    return b58encode(payload + checksum)


PAIR = uuid.UUID("11111111-2222-3333-4444-555555555555")
ORDER = uuid.UUID("66666666-7777-8888-9999-aaaaaaaaaaaa")
GOOD_PAYLOAD = bytes([1, 1, 1]) + PAIR.bytes + ORDER.bytes


def test_memo_is_base58_of_payload_and_double_sha256_checksum():
    # given the layout of DESIGN.md, built here by hand
    expected = _memo_from(GOOD_PAYLOAD)
    # when / then the codec produces the same text and reads it back
    assert encode_market_making_create_memo(PAIR, ORDER) == expected
    memo = decode_memo(expected)
    assert (memo.version, memo.trading_type, memo.action) == (1, 1, 1)
    assert (memo.pair_id, memo.order_id) == (PAIR, ORDER)


@given(st.uuids(), st.uuids())
def test_any_pair_and_order_round_trip(pair_id, order_id):
    memo = decode_memo(encode_market_making_create_memo(pair_id, order_id))
    assert (memo.pair_id, memo.order_id) == (pair_id, order_id)


@given(st.binary(max_size=64))
def test_base58_round_trips_bytes_with_leading_zeros(data):
    assert b58decode(b58encode(data)) == data


def test_base58_matches_the_bitcoin_alphabet_reference_vector():
    assert b58encode(b"Hello World!") == "2NEpo7TZRRrLZSi2U"
    assert b58encode(b"\0\0\x28\x7f\xb4\xcd") == "11233QC4"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("0OIl", "bad_base58"),
        (b58encode(b"\1\1\1"), "wrong_length"),
        (_memo_from(GOOD_PAYLOAD)[:-1] + ("2" if _memo_from(GOOD_PAYLOAD)[-1] != "2" else "3"), "bad_checksum"),
        (_memo_from(bytes([2, 1, 1]) + PAIR.bytes + ORDER.bytes), "wrong_version"),
        (_memo_from(bytes([1, 2, 1]) + PAIR.bytes + ORDER.bytes), "wrong_trading_type"),
        (_memo_from(bytes([1, 1, 2]) + PAIR.bytes + ORDER.bytes), "wrong_action"),
        (_memo_from(GOOD_PAYLOAD[:-1]), "wrong_length"),
        (_memo_from(GOOD_PAYLOAD + b"\0"), "wrong_length"),
        (_memo_from(b"\1\1"), "wrong_length"),
    ],
)
def test_bad_memo_is_refused_saying_which_check_failed(text, reason):
    with pytest.raises(InvalidMemo) as caught:
        decode_memo(text)
    assert caught.value.reason == reason
    assert reason in str(caught.value)


def test_snapshot_memo_is_hex_of_the_base58_text():
    hex_memo = encode_snapshot_memo(PAIR, ORDER)
    assert bytes.fromhex(hex_memo).decode() == encode_market_making_create_memo(PAIR, ORDER)
    assert decode_snapshot_memo(hex_memo).order_id == ORDER


def test_snapshot_memo_that_is_not_hex_is_refused():
    with pytest.raises(InvalidMemo) as caught:
        decode_snapshot_memo("zz-not-hex")
    assert caught.value.reason == "bad_hex"
