"""Exchange calls the rest of the system makes through ccxt, with Decimal in and out.

ccxt's unified structures carry floats; here every amount is read from the raw strings of
the exchange's response (``info``) or through ``Decimal(str(x))``, never computed on floats.
"""
import logging
from dataclasses import dataclass
from decimal import Decimal

import ccxt

from .clients import exchange_client

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DepositAddress:
    address: str
    network: str
    tag: str


def dec(value) -> Decimal | None:
    """A ccxt number as an exact Decimal (through its shortest text form), or None."""
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def fetch_by_client_id(client: ccxt.Exchange, symbol: str, client_order_id: str) -> dict | None:
    """The exchange's order with our client id, or None when the exchange says it does not exist.

    Any other error (network, timeout, rate limit) propagates: it is never read as "not found".
    """
    try:
        return client.fetch_order(None, symbol, {"origClientOrderId": client_order_id})
    except ccxt.OrderNotFound:
        return None


def exchange_deposit_address(*, account_id: int, asset: str, network: str | None = None) -> DepositAddress:
    """The deposit address of ``asset`` (exchange currency code, e.g. "BTC") on the account."""
    client = exchange_client(account_id=account_id)
    params = {"network": network} if network else {}
    result = client.fetch_deposit_address(asset, params)
    info = result.get("info") or {}
    address = DepositAddress(
        address=result["address"],
        network=result.get("network") or info.get("network") or network or "",
        tag=result.get("tag") or "",
    )
    logger.info("exchange_deposit_address account_id=%s asset=%s network=%s", account_id, asset, address.network)
    return address


def exchange_deposit_status(*, account_id: int, asset: str, tx_id: str) -> str:
    """"pending", "confirmed" or "not_found" for the deposit ``tx_id`` of ``asset`` on the account."""
    client = exchange_client(account_id=account_id)
    deposits = client.fetch_deposits(asset, None, None, {"txId": tx_id})
    matching = [d for d in deposits if (d.get("txid") or (d.get("info") or {}).get("txId")) == tx_id]
    if not matching:
        status = "not_found"
    elif any(d.get("status") == "ok" for d in matching):
        status = "confirmed"
    else:
        status = "pending"
    logger.info("exchange_deposit_status account_id=%s asset=%s tx_id=%s status=%s", account_id, asset, tx_id, status)
    return status
