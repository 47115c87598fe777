"""Exchange calls the rest of the system makes through ccxt's unified API, with Decimal in and out.

ccxt's unified structures carry floats. Every money value leaves them through one boundary,
``exchange_decimal``: the exchange's own decimal text when ccxt kept it in the structure's raw
``info`` (found by value, under whatever key the exchange uses), else the float's shortest text,
which is exact for every figure of up to 15 significant digits (docs/decisions.md). Nothing is
computed on the floats.
"""
import logging
from dataclasses import dataclass
from decimal import Decimal

import ccxt

from .clients import exchange_client
from .dialects import LOOKUP_FETCH_ORDER, capabilities_missing, client_id_lookup, withdraw_client_id_param
from .errors import ExchangeSetupError, MissingCapabilities
from .models import ExchangeAccount

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DepositAddress:
    address: str
    network: str
    tag: str


def dec(value) -> Decimal | None:
    """A bare ccxt number (no structure around it, e.g. an order book level) as an exact Decimal, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError(f"not a number: {value!r}")
    return Decimal(value) if isinstance(value, (int, str)) else Decimal(repr(float(value)))


def _numeric_texts(info, found: list[tuple[float, str]] | None = None) -> list[tuple[float, str]]:
    """Every text in ``info`` (nested dicts and lists) that reads as a finite number, with its float."""
    found = [] if found is None else found
    for item in info.values() if type(info) is dict else info:
        kind = type(item)
        if kind is str:
            if item and (item[0] in _NUMBER_START):
                try:
                    number = float(item)
                except ValueError:
                    continue
                if number - number == 0:  # finite
                    found.append((number, item))
        elif kind is dict or kind is list:
            _numeric_texts(item, found)
    return found


_NUMBER_START = frozenset("0123456789-.")


class RawNumbers:
    """The numeric texts of one raw response, indexed once for many ``exchange_decimal`` reads
    (a balance: one per currency and field)."""

    def __init__(self, info):
        self.by_float: dict[float, set[Decimal]] = {}
        for number, text in _numeric_texts(info) if type(info) in (dict, list) else ():
            self.by_float.setdefault(number, set()).add(Decimal(text))

    def texts_of(self, value: float) -> set[Decimal]:
        return self.by_float.get(value, set())


def _texts_of(info, value: float) -> set[Decimal]:
    return {Decimal(text) for number, text in _numeric_texts(info) if number == value}


def exchange_decimal(structure, field, *, info=None) -> Decimal | None:
    """``structure[field]`` of a ccxt structure (order, trade, fee, balance, market) as an exact Decimal.

    When the raw response (``info``: the structure's own, or the one given, e.g. a trade's for its
    fee, or a RawNumbers of it) holds exactly one decimal value equal to the float, that text is the
    value: the exchange's own figure, whatever key the exchange gives it. Otherwise the float's
    shortest text. None when the field is absent.
    """
    value = structure.get(field) if isinstance(structure, dict) else structure[field]
    if not isinstance(value, float) or value == 0:
        return dec(value)
    raw = structure.get("info") if info is None and isinstance(structure, dict) else info
    if type(raw) in (dict, list) or isinstance(raw, RawNumbers):
        candidates = raw.texts_of(value) if isinstance(raw, RawNumbers) else _texts_of(raw, value)
        if len(candidates) == 1:
            return next(iter(candidates))
    return dec(value)


def fetch_by_client_id(client: ccxt.Exchange, symbol: str, client_order_id: str) -> dict | None:
    """The exchange's order with our client id, or None when the exchange says it does not exist.

    Through fetch_order with ccxt's unified ``clientOrderId`` where the exchange's ccxt class maps
    it (exchanges.dialects), else through the open and closed order lists. Any other error
    (network, timeout, rate limit) propagates: it is never read as "not found".
    """
    if client_id_lookup(client) == LOOKUP_FETCH_ORDER:
        try:
            return client.fetch_order(None, symbol, {"clientOrderId": client_order_id})
        except ccxt.OrderNotFound:
            return None
    listings = [client.fetch_open_orders, client.fetch_closed_orders]
    if client.has.get("fetchCanceledOrders"):  # where the closed list leaves cancelled orders out
        listings.append(client.fetch_canceled_orders)
    for listing in listings:
        for order in listing(symbol):
            if order.get("clientOrderId") == client_order_id:
                return order
    return None


def exchange_capabilities_check(*, exchange_id: str, sandbox: bool = False) -> None:
    """Raise MissingCapabilities naming, in one line, every ccxt capability the system needs that
    ``exchange_id`` lacks (or ExchangeSetupError for an unknown exchange or a missing sandbox)."""
    klass = getattr(ccxt, exchange_id, None) if exchange_id in ccxt.exchanges else None
    if klass is None:
        raise ExchangeSetupError(f"ccxt has no exchange {exchange_id!r}; use a ccxt id such as binance or okx")
    client = klass()
    missing = capabilities_missing(client)
    if missing:
        raise MissingCapabilities(exchange_id, missing)
    if sandbox and not client.urls.get("test"):
        raise ExchangeSetupError(f"{exchange_id} has no sandbox in ccxt; create the account without sandbox")


def exchange_account_create(*, label: str, exchange_id: str, api_key: str = "", api_secret: str = "",
                            api_passphrase: str = "", uid: str = "", sandbox: bool = False, base_url: str = "",
                            enabled: bool = True) -> ExchangeAccount:
    """A new exchange account, once its exchange is known to offer every capability the system uses."""
    exchange_capabilities_check(exchange_id=exchange_id, sandbox=sandbox)
    account = ExchangeAccount(label=label, exchange_id=exchange_id, api_key=api_key, uid=uid, sandbox=sandbox,
                              base_url=base_url, enabled=enabled)
    account.api_secret = api_secret
    account.api_passphrase = api_passphrase
    account.save()
    logger.info("exchange_account_created account_id=%s exchange_id=%s sandbox=%s", account.pk, exchange_id, sandbox)
    return account


def exchange_deposit_address(*, account_id: int, asset: str, network: str | None = None) -> DepositAddress:
    """The deposit address of ``asset`` (exchange currency code, e.g. "BTC") on the account."""
    client = exchange_client(account_id=account_id)
    params = {"network": network} if network else {}
    result = client.fetch_deposit_address(asset, params)
    address = DepositAddress(
        address=result["address"],
        network=result.get("network") or network or "",
        tag=result.get("tag") or "",
    )
    logger.info("exchange_deposit_address account_id=%s asset=%s network=%s", account_id, asset, address.network)
    return address


def exchange_deposit_status(*, account_id: int, asset: str, tx_id: str) -> str:
    """"pending", "confirmed" or "not_found" for the deposit ``tx_id`` of ``asset`` on the account."""
    client = exchange_client(account_id=account_id)
    if client.has.get("fetchDeposits"):
        deposits = client.fetch_deposits(asset)
    else:
        deposits = [t for t in client.fetch_deposits_withdrawals(asset) if t.get("type") == "deposit"]
    matching = [d for d in deposits if d.get("txid") == tx_id]
    if not matching:
        status = "not_found"
    elif any(d.get("status") == "ok" for d in matching):
        status = "confirmed"
    else:
        status = "pending"
    logger.info("exchange_deposit_status account_id=%s asset=%s tx_id=%s status=%s", account_id, asset, tx_id, status)
    return status


@dataclass(frozen=True)
class Withdrawal:
    """A withdrawal as the exchange reports it: ``status`` is ccxt's ("pending", "ok", "failed", "canceled");
    ``amount`` is what the recipient gets, ``fee`` what the exchange kept (both Decimal, None when not said)."""

    id: str
    status: str
    tx_id: str
    amount: Decimal | None
    fee: Decimal | None
    address: str


def _withdrawal(item: dict) -> Withdrawal:
    fee = item.get("fee") or {}
    return Withdrawal(id=str(item.get("id") or ""), status=str(item.get("status") or "pending"),
                      tx_id=str(item.get("txid") or ""), amount=exchange_decimal(item, "amount"),
                      fee=exchange_decimal(fee, "cost", info=item.get("info")) if fee.get("cost") is not None else None,
                      address=str(item.get("address") or ""))


def _withdrawal_capable(client: ccxt.Exchange) -> None:
    missing = [name for name in ("withdraw", "fetchWithdrawals") if not client.has.get(name)]
    if missing:
        raise MissingCapabilities(f"{client.id} (ccxt) lacks {', '.join(missing)}: no payout from this exchange")


def exchange_withdrawal_find(*, account_id: int, asset: str, client_id: str) -> Withdrawal | None:
    """The account's withdrawal of ``asset`` sent under our ``client_id``, or None if the exchange has none."""
    client = exchange_client(account_id=account_id)
    _withdrawal_capable(client)
    param = withdraw_client_id_param(client)
    if not param:
        raise MissingCapabilities(f"{client.id}: no withdrawal client id known (exchanges/dialects.py)")
    for item in client.fetch_withdrawals(asset, None, None, {param: client_id}):
        if str((item.get("info") or {}).get(param) or "") == client_id:
            return _withdrawal(item)
    return None


def exchange_withdraw(*, account_id: int, asset: str, amount: Decimal, address: str, tag: str = "",
                      network: str = "", client_id: str) -> Withdrawal:
    """Withdraw ``amount`` of ``asset`` (exchange currency code) to ``address``/``tag`` once per ``client_id``:
    a withdrawal the exchange already has under that id is returned, not sent again. ``amount`` is what
    leaves the account; the exchange's fee comes out of it."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, got {type(amount).__name__}")
    existing = exchange_withdrawal_find(account_id=account_id, asset=asset, client_id=client_id)
    if existing is not None:
        logger.info("exchange_withdrawal_exists account_id=%s asset=%s client_id=%s id=%s status=%s", account_id,
                    asset, client_id, existing.id, existing.status)
        return existing
    client = exchange_client(account_id=account_id)
    params = {withdraw_client_id_param(client): client_id}
    if tag:
        params["tag"] = tag
    if network:
        params["network"] = network
    result = client.withdraw(asset, str(amount), address, params)
    logger.info("exchange_withdrawal_sent account_id=%s asset=%s amount=%s address=%s client_id=%s id=%s",
                account_id, asset, amount, address, client_id, result.get("id"))
    found = exchange_withdrawal_find(account_id=account_id, asset=asset, client_id=client_id)
    return found or _withdrawal(result)
