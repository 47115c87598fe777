"""Mixin Safe transactions (orders.providers.mixin_safe) against the official SDKs' published vectors.

Vectors copied from:
- MixinNetwork/bot-api-nodejs-client test/mixin/safe.test.ts at b9024ebf24cbad8b38d71e0256d6be2a0eb69f21
  ("Test for safe transaction signature": encode + sign; "Test for safe transaction unmarshal": decode);
- MixinNetwork/mixin common/encoding_test.go (TestEncoding: a withdrawal and a node-accept transaction,
  decoded and re-encoded byte for byte), crypto/key_test.go (TestKey) and crypto/signature_test.go
  (TestSignature), at 413771e9ff0946173df179ee2da2286a3bea37ba.
"""
import os
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orders.providers.mixin_safe import (
    InvalidTransaction, blake3_hash, decode_transaction, derive_ghost_public_key, derive_ghost_view,
    encode_transaction, payload_hash, public_key, scalar_from_uniform, sign_transaction, sign_with_scalar,
    spend_public_key, verify_signature,
)

pytestmark = pytest.mark.embedded

# --- bot-api-nodejs-client test/mixin/safe.test.ts ------------------------------------------------
NODE_RAW_UNSIGNED = (
    "77770005b9f49cf777dc4d03bc54cd1367eebca319f8603ea1ce18910d09e2c540c630d80001c513ffcc684e9585c76bd76245aa7d2d"
    "ef3b9f147422b59ab91db7852c9d97dd000000000000000000010000000405f5e1000001a6c306c3137c2bf4a8bfc95ea5165f777702"
    "0916aa36ee6ec394beb9a1e6a164286d4f092015ea327ba12145edd40ddede1bdd80f777c249128d38176e352a130003fffe01000000"
    "0000000009746573742d6d656d6f0000"
)
NODE_RAW_SIGNED = (
    "77770005b9f49cf777dc4d03bc54cd1367eebca319f8603ea1ce18910d09e2c540c630d80001c513ffcc684e9585c76bd76245aa7d2d"
    "ef3b9f147422b59ab91db7852c9d97dd000000000000000000010000000405f5e1000001a6c306c3137c2bf4a8bfc95ea5165f777702"
    "0916aa36ee6ec394beb9a1e6a164286d4f092015ea327ba12145edd40ddede1bdd80f777c249128d38176e352a130003fffe01000000"
    "0000000009746573742d6d656d6f000100010000fde63b999d519394b3ba8a99a9f1d44bc91c2ee73d472d2085fa2229257328891590"
    "42b126b4436766d6d3308ee541c50fc1b9b8b83701ac534c68e7f4d0f50c"
)
NODE_VIEWS = ["0164ba23d5aa1953132bc0bf5d12d0af7e66de2ba8773701ef135e015f24bb0b"]
NODE_SPEND_KEY = ("7fb3893475a82c85e2b3c8a9a9232eddb36651ac32fa98ae83e6c2f33fb1be84"
                  "dea64fa32b3b01f9a059142c0e9535a57b69f676790ae64f6d52f9a06d90f11e")


def node_tx(**changes):
    tx = {
        "version": 5,
        "asset": "b9f49cf777dc4d03bc54cd1367eebca319f8603ea1ce18910d09e2c540c630d8",
        "extra": b"test-memo",
        "inputs": [{"hash": "c513ffcc684e9585c76bd76245aa7d2def3b9f147422b59ab91db7852c9d97dd", "index": 0}],
        "outputs": [{
            "type": 0, "amount": "1",
            "keys": ["a6c306c3137c2bf4a8bfc95ea5165f7777020916aa36ee6ec394beb9a1e6a164"],
            "mask": "286d4f092015ea327ba12145edd40ddede1bdd80f777c249128d38176e352a13",
            "script": "fffe01",
        }],
        "references": [],
    }
    tx.update(changes)
    return tx


NODE_MULTISIG_RAW = (
    "77770005f3bed3e0f6738938c8988eb8853c5647baa263901deb217ee53586d5de831f3b0001b5ecd453883aebc2a0dfe6c3f005c06c"
    "59156b70c532c363c7dff6ca4329d0ed00000000000000000002000000022710000b3720de3095a80e5778c266471193a9404cbbf876"
    "f7e66c6c5f9126cb4624f2b097bdc4ccdcaf213abe138aeaf7e65df0a207be975ebe30ab136b128676989a235d877764ed21f4b96d66"
    "f81e4ceb0896d81aee81f74065a08e80a0b09d48ebadb10ce899bd793a9741cab5d7a3e4385fd920244847de1a7af86a40db7d584bbe"
    "a5af14afffbc0cd3014c6f1370df394780966f440dca4acbdcf4102defe325972ebe24a114a331d5fff0d19ac4340801f7cd0d39c46f"
    "f71c801ae774a8d91f36051312e4daf0b6a32f4b286de370db381ccb7a30c8fb10a74fe0b88388b3ee8791b828cf0ee8ff9a5ab96cd6"
    "a4332a6c758339875026af7ba41670ea50e5930d746e35b89fc88259d46a45f5ab5b6a6aaed73d78a3711d633e23a017e922c6471ac4"
    "57e96bee19665a179c820897aab4c4ed16b79da142dc6458b7ff66094a803c86daadbc99dbfc3d218fb85fefdc8f0e98180579658195"
    "98a892b647a00f65d0daa2de9d547edd3a300a3c366e4cbdc3d38b841b84bba748e9d788e0f9f8e90003fffe0200000000000405f5b9"
    "f0000b6886794f8ad4b99fe21eb6b80342bdabb5789e124d860831acb7ba70968ebefd9492fbec7993349bdb64fa1e9df89913eac212"
    "1cd24894f609305af12ee89913b268eed77794fa0caf1391c7c2dc9eda9d94fda92d75b66f09d41133057e92e2fb645be1cd74429d65"
    "cc082aaaaa7803ba7192daf5a77361b35b346293da3eb24449ab5ec302fa2279ccb27b2f25269daff0dbd3d377d729dfe480ff63b0fe"
    "e84b7392595e645d58f1a1f28781bd05a781305263a81afca8e599f1e7c45458d5c6bf5b4c81bc4872de98a2099364f3013119f715c1"
    "20ad3fb663abdd9e25fa60cce3eb4f9d6546b18fff2fd145860ed8819f7b75edb8e3a8542942e078541de3125ceb37b571249808e18f"
    "10fd53ed8abd6eb438ab4ec98f57766b0e3e74834e4f9121fab9e57e3ad4dd8eb73e017eaaf142d2a5d4beddafe8bc5198a90efe91e7"
    "69a91c5af97d7972bd38a984f66b060dd5a24c8fc8d2ce9969fe689d258916c295b730f477c2a605e9044da395575a0d9f395c890f1d"
    "70a40be812a04922710003fffe0200000000000000136d756c7469736967732d746573742d6d656d6f0000"
)

# --- mixin common/encoding_test.go TestEncoding ---------------------------------------------------
KERNEL_WITHDRAWAL_RAW = (
    "777700052dc0ab2919c77daea5cfc0b37a2beea02142e8fdc4f60409fd40b256bb13ea290007eff98bbf1fd4632380b3f81bec40b54c"
    "eaa5d10e181b2c9e141da28b3d13c5460001000000000000a348712f7881be7a7bec9935d46578fd612a96e1cd0ac0f83520e2c0db0e"
    "98e2000100000000000030ad61194c5c3c19c0397d3ae98fb25ea4ead720fd49a86f2ab7b6db888ea61b00010000000000005981c0b5"
    "df48c066b4b3858ea949990c82cc27e030127d9eda70ff57fe9d9feb0001000000000000ad2fccec444b26794a13fb52f71348308de2"
    "0f72a6dc4544195cef79f60910660001000000000000c817d2cac077b5ab21af4166f7451d9678a836db3f709b2903a971bf763b7f89"
    "0001000000000000a4df50c83ed97db449ec856d660f4b0ef1f888bf2824800cf1bcf71418b32e580001000000000000000200a10006"
    "0417bce6c8000000000000000000000000000000000000000000000000000000000000000000000000007777006b344b45397734746e"
    "65417472324257736d6877693645624231436257716779424248326f4367397677676e39346e5a5a4d6379694c7655347a596b627770"
    "3277754e4a595651556b77795a46664e3846726238345178556770673174656e574c61647834554552583270480000000000053be744"
    "043b00012f4d6a6fd5720be42930533d2efd2f5659f6179ea0e677edad599ef1dc6293b8ae2ebb91eac8ceb937f92c7dd5ffdb577b65"
    "06c6fbe0f2c7baf35d399dbc7bab0003fffe01000000000000001581a154c4107e519774e8784192b35a93ef68fff6ee0000"
)
KERNEL_NODE_ACCEPT_RAW = (
    "77770005a99c2e0e2b1da4d648755ef19bd95139acbbe6564cfb06dec7cd34931ca72cdc0001c19d51beba90c20ff538a32ab262ce6e"
    "32e59f03b5bfe6d8e6fe2b2544ba43b60000000000000000000100a40005e8d4a5100000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000040cf0926f381bb17668ef4b4eab6243d4b437ae6d2372623b74f41a55972"
    "77495556515cbc346d8b639386c1e22239d032bb6f09f8b6f2ea5a3a19b41fe0bdd1de0000"
)


def test_encode_matches_the_nodejs_sdk_vector():
    assert encode_transaction(node_tx()) == NODE_RAW_UNSIGNED


def test_extra_as_text_is_encoded_as_utf8_like_the_nodejs_sdk():
    assert encode_transaction(node_tx(extra="test-memo")) == NODE_RAW_UNSIGNED


def test_sign_matches_the_nodejs_sdk_vector():
    assert sign_transaction(node_tx(), NODE_VIEWS, NODE_SPEND_KEY) == NODE_RAW_SIGNED
    # the 32-byte seed alone (the Go SDK's form of the spend key) signs the same
    assert sign_transaction(node_tx(), NODE_VIEWS, NODE_SPEND_KEY[:64]) == NODE_RAW_SIGNED


def test_signature_verifies_against_the_ghost_key_of_the_spent_output():
    # the input's one-time public key is (view + y) * G; the kernel checks the signature against it
    from nacl.bindings import crypto_core_ed25519_scalar_add

    from orders.providers.mixin_safe import spend_scalar

    signed = decode_transaction(NODE_RAW_SIGNED)
    key = public_key(crypto_core_ed25519_scalar_add(bytes.fromhex(NODE_VIEWS[0]), spend_scalar(NODE_SPEND_KEY)))
    assert verify_signature(key.hex(), payload_hash(signed), signed["signatures"][0][0])
    assert not verify_signature(spend_public_key(NODE_SPEND_KEY), payload_hash(signed), signed["signatures"][0][0])


def test_decode_matches_the_nodejs_sdk_multisig_vector():
    tx = decode_transaction(NODE_MULTISIG_RAW)
    assert tx["asset"] == "f3bed3e0f6738938c8988eb8853c5647baa263901deb217ee53586d5de831f3b"
    assert tx["extra"] == b"multisigs-test-memo"
    assert tx["inputs"] == [{"hash": "b5ecd453883aebc2a0dfe6c3f005c06c59156b70c532c363c7dff6ca4329d0ed", "index": 0}]
    first, second = tx["outputs"]
    assert (first["type"], first["amount"], first["script"]) == (0, "0.0001", "fffe02")
    assert first["mask"] == "d0daa2de9d547edd3a300a3c366e4cbdc3d38b841b84bba748e9d788e0f9f8e9"
    assert first["keys"][0] == "3720de3095a80e5778c266471193a9404cbbf876f7e66c6c5f9126cb4624f2b0"
    assert first["keys"][-1] == "3c86daadbc99dbfc3d218fb85fefdc8f0e9818057965819598a892b647a00f65"
    assert len(first["keys"]) == len(second["keys"]) == 11
    assert (second["amount"], second["script"]) == ("0.9999", "fffe02")
    assert second["mask"] == "c295b730f477c2a605e9044da395575a0d9f395c890f1d70a40be812a0492271"
    assert second["keys"][0] == "6886794f8ad4b99fe21eb6b80342bdabb5789e124d860831acb7ba70968ebefd"
    assert second["keys"][-1] == "e769a91c5af97d7972bd38a984f66b060dd5a24c8fc8d2ce9969fe689d258916"
    assert tx["signatures"] == [] and tx["references"] == []
    assert encode_transaction(tx) == NODE_MULTISIG_RAW


def test_decode_of_the_signed_vector_round_trips():
    tx = decode_transaction(NODE_RAW_SIGNED)
    assert tx["signatures"] == [{0: NODE_RAW_SIGNED[-128:]}]
    assert encode_transaction(tx) == NODE_RAW_SIGNED
    unsigned = dict(tx, signatures=[])
    assert encode_transaction(unsigned) == NODE_RAW_UNSIGNED
    assert {k: v for k, v in tx.items() if k != "signatures"} == {
        **node_tx(), "outputs": [dict(node_tx()["outputs"][0])]}


def test_kernel_withdrawal_vector_decodes_and_re_encodes_byte_for_byte():
    raw = KERNEL_WITHDRAWAL_RAW
    tx = decode_transaction(raw)
    withdrawal = tx["outputs"][0]
    assert withdrawal["type"] == 0xA1 and withdrawal["keys"] == [] and withdrawal["mask"] == "00" * 32
    assert withdrawal["withdrawal"] == {
        "address": "4KE9w4tneAtr2BWsmhwi6EbB1CbWqgyBBH2oCg9vwgn94nZZMcyiLvU4zYkbwp2wuNJYVQUkwyZFfN8Frb84QxUgpg1"
                   "tenWLadx4UERX2pH", "tag": ""}
    assert len(tx["inputs"]) == 7 and tx["outputs"][1]["script"] == "fffe01"
    assert encode_transaction(tx) == raw


def test_kernel_binary_extra_vector_round_trips():
    tx = decode_transaction(KERNEL_NODE_ACCEPT_RAW)
    assert tx["extra"].hex() == ("cf0926f381bb17668ef4b4eab6243d4b437ae6d2372623b74f41a5597277495556515cbc346d8b6"
                                 "39386c1e22239d032bb6f09f8b6f2ea5a3a19b41fe0bdd1de")
    assert tx["outputs"][0]["type"] == 0xA4 and tx["outputs"][0]["amount"] == "10000"
    assert encode_transaction(tx) == KERNEL_NODE_ACCEPT_RAW


def test_kernel_key_and_signature_vectors():
    seed = bytes(range(1, 65))
    key = scalar_from_uniform(seed)
    assert key.hex() == "c91e0907d114fd83c1edc396490bb2dafa43c19815b0354e70dc80c317c3cb0a"
    assert public_key(key).hex() == "36bb0e309e7e9a82f1527df2c6b0e48181589097fe90c1282c558207ea27ce66"
    msg1, msg2 = blake3_hash(seed[:32]), blake3_hash(seed[32:])
    sig1, sig2 = sign_with_scalar(key, msg1).hex(), sign_with_scalar(key, msg2).hex()
    assert sig1 == ("ca22e4ad608bad7638072e420ff5dd45eeb82c8e732e67580413066edf4cb8c0"
                    "e2e6642f9e08b698a553a51e5719610b55d5afd1a9b9f3c69c6c60434dd55707")
    assert sig2 == ("ae7bde216edf1f6b00d1d87a584b8ec433913ee7028d075b3a11aec13aea86ed"
                    "472bb45976100d9e679180d1a7afce352304347fefe6bd64b407097c6f887208")
    pub = public_key(key).hex()
    assert verify_signature(pub, msg1, sig1) and verify_signature(pub, msg2, sig2)
    assert not verify_signature(pub, msg2, sig1)


def test_ghost_key_sender_and_receiver_agree():
    # the kernel's TestGhostKey: H(r*A)*G + B == (H(a*R) + b)*G
    from nacl.bindings import crypto_core_ed25519_scalar_add

    a, b, r = (scalar_from_uniform(os.urandom(64)) for _ in range(3))
    ghost = derive_ghost_public_key(r, public_key(a), public_key(b), 3)
    view = derive_ghost_view(public_key(r), a, 3)
    assert public_key(crypto_core_ed25519_scalar_add(view, b)) == ghost
    assert derive_ghost_view(public_key(r), a, 4) != view


@settings(max_examples=60, deadline=None)
@given(units=st.lists(st.integers(min_value=1, max_value=10**17), min_size=1, max_size=4),
       extra=st.binary(max_size=300), n_inputs=st.integers(min_value=1, max_value=3),
       tag=st.text(max_size=10))
def test_encode_decode_round_trip(units, extra, n_inputs, tag):
    outputs = [{"type": 0, "amount": str(Decimal(u) / 10**8), "keys": [os.urandom(32).hex()],
                "mask": os.urandom(32).hex(), "script": "fffe01"} for u in units]
    outputs.append({"type": 0xA1, "amount": "0.1", "keys": [], "mask": "00" * 32, "script": "",
                    "withdrawal": {"address": "bc1qexample", "tag": tag}})
    tx = {"version": 5, "asset": os.urandom(32).hex(), "extra": extra, "references": [os.urandom(32).hex()],
          "inputs": [{"hash": os.urandom(32).hex(), "index": i} for i in range(n_inputs)], "outputs": outputs}
    raw = encode_transaction(tx)
    decoded = decode_transaction(raw)
    assert encode_transaction(decoded) == raw
    assert [Decimal(o["amount"]) for o in decoded["outputs"][:-1]] == [Decimal(u) / 10**8 for u in units]
    assert decoded["extra"] == extra and decoded["outputs"][-1]["withdrawal"]["tag"] == tag


# --- bad input ------------------------------------------------------------------------------------
def test_a_float_amount_is_refused_clearly():
    tx = node_tx()
    tx["outputs"][0]["amount"] = 1.0
    with pytest.raises(InvalidTransaction, match=r"outputs\[0\]\.amount must be .* not float"):
        encode_transaction(tx)


@pytest.mark.parametrize("amount, message", [
    ("0.000000001", "more than 8 decimal places"), ("-1", "negative"), ("abc", "not a decimal number"),
    ("NaN", "not a finite number"),
])
def test_bad_amounts_are_refused(amount, message):
    tx = node_tx()
    tx["outputs"][0]["amount"] = amount
    with pytest.raises(InvalidTransaction, match=message):
        encode_transaction(tx)


def test_wrong_hex_is_refused():
    with pytest.raises(InvalidTransaction, match="not hex"):
        decode_transaction(NODE_RAW_UNSIGNED[:-1] + "z")
    with pytest.raises(InvalidTransaction, match="not hex"):
        decode_transaction(NODE_RAW_UNSIGNED[:-1])  # odd length
    with pytest.raises(InvalidTransaction, match="not a Mixin transaction"):
        decode_transaction("8888" + NODE_RAW_UNSIGNED[4:])
    with pytest.raises(InvalidTransaction, match="version 4 is not supported"):
        decode_transaction("77770004" + NODE_RAW_UNSIGNED[8:])
    with pytest.raises(InvalidTransaction, match=r"asset .* not hex"):
        encode_transaction(node_tx(asset="zz" * 32))
    with pytest.raises(InvalidTransaction, match="asset must be 32 bytes"):
        encode_transaction(node_tx(asset="ab" * 31))


def test_every_truncation_is_refused_and_trailing_bytes_too():
    for cut in range(0, len(NODE_RAW_SIGNED) - 2, 2):
        with pytest.raises(InvalidTransaction):
            decode_transaction(NODE_RAW_SIGNED[:cut])
    with pytest.raises(InvalidTransaction, match=r"truncated transaction: signatures\[0\]\[0\] needs 64 bytes"):
        decode_transaction(NODE_RAW_SIGNED[:-2])
    with pytest.raises(InvalidTransaction, match="1 unexpected bytes after the transaction"):
        decode_transaction(NODE_RAW_SIGNED + "00")


def test_signing_needs_one_canonical_view_per_input_and_a_hex_key():
    with pytest.raises(InvalidTransaction, match="1 inputs, 2 views"):
        sign_transaction(node_tx(), NODE_VIEWS * 2, NODE_SPEND_KEY)
    with pytest.raises(InvalidTransaction, match="not a canonical ed25519 scalar"):
        sign_transaction(node_tx(), ["ff" * 32], NODE_SPEND_KEY)
    with pytest.raises(InvalidTransaction, match="spend private key must be hex"):
        sign_transaction(node_tx(), NODE_VIEWS, "not-a-key")
    with pytest.raises(InvalidTransaction, match="must be 32 or 64 bytes"):
        sign_transaction(node_tx(), NODE_VIEWS, "ab" * 20)
