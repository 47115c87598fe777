"""Exchange calls the rest of the system makes through ccxt, with Decimal in and out.

ccxt's unified structures carry floats; here every amount is read from the raw strings of
the exchange's response (``info``) or through ``Decimal(str(x))``, never computed on floats.
"""
import logging
from dataclasses import dataclass
from decimal import Decimal

import ccxt

from .clients import exchange_client
from .precision import LimitOrder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DepositAddress:
    address: str
    network: str
    tag: str


@dataclass(frozen=True)
class ExchangeOrder:
    """An order as the exchange reports it; amounts exact."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    status: str  # ccxt's unified status: open, closed, canceled, expired, rejected
    price: Decimal
    amount: Decimal
    filled: Decimal
    raw_status: str


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


def _dec(value) -> Decimal:
    return Decimal(0) if value is None or value == "" else Decimal(str(value))


def _exchange_order(order: dict) -> ExchangeOrder:
    info = order.get("info") or {}
    return ExchangeOrder(
        id=str(order["id"]),
        client_order_id=order.get("clientOrderId") or info.get("clientOrderId") or "",
        symbol=order["symbol"],
        side=order["side"],
        status=order["status"],
        price=_dec(info.get("price", order.get("price"))),
        amount=_dec(info.get("origQty", order.get("amount"))),
        filled=_dec(info.get("executedQty", order.get("filled"))),
        raw_status=str(info.get("status", "")),
    )


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


def exchange_order_create(*, account_id: int, order: LimitOrder, client_order_id: str) -> ExchangeOrder:
    """Place a prepared limit order (see precision.limit_order_prepare) with our client order id."""
    client = exchange_client(account_id=account_id)
    logger.info("exchange_order_create account_id=%s client_order_id=%s symbol=%s side=%s amount=%s price=%s",
                account_id, client_order_id, order.symbol, order.side, order.amount, order.price)
    result = client.create_order(order.symbol, "limit", order.side, format(order.amount, "f"), format(order.price, "f"),
                                 {"newClientOrderId": client_order_id})
    return _exchange_order(result)


def exchange_order_fetch(*, account_id: int, symbol: str, order_id: str | None = None,
                         client_order_id: str | None = None) -> ExchangeOrder:
    """An order by exchange id or by our client order id (raises ccxt.OrderNotFound when absent)."""
    client = exchange_client(account_id=account_id)
    params = {"origClientOrderId": client_order_id} if client_order_id else {}
    return _exchange_order(client.fetch_order(order_id, symbol, params))


def exchange_order_cancel(*, account_id: int, symbol: str, order_id: str | None = None,
                          client_order_id: str | None = None) -> ExchangeOrder:
    client = exchange_client(account_id=account_id)
    params = {"origClientOrderId": client_order_id} if client_order_id else {}
    logger.info("exchange_order_cancel account_id=%s symbol=%s order_id=%s client_order_id=%s", account_id, symbol,
                order_id, client_order_id)
    return _exchange_order(client.cancel_order(order_id, symbol, params))
