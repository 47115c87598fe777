"""The ids that tie a strategy's intents and exchange orders to their order: the strategy key
(one per market-making order) and the client order ids we give the exchange."""
from __future__ import annotations

import hashlib


def strategy_key(order_id) -> str:
    return f"mm:{order_id}"


def order_id_of(key: str) -> str:
    return key.split(":", 1)[1]


def client_order_prefix(order_id) -> str:
    """Every exchange order of one session carries this prefix (stop finds untracked ones by it)."""
    return f"mm{str(order_id).replace('-', '')[:12]}"


def client_order_id_for(order_id, intent_id: str) -> str:
    """Deterministic client order id of a create intent: prefix + 16 hex of the intent id (30 chars)."""
    return client_order_prefix(order_id) + hashlib.sha256(intent_id.encode()).hexdigest()[:16]
