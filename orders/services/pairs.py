"""Market-making pairs: what an operator lists for users to pay into."""
from __future__ import annotations

import logging
import uuid

import ccxt
from django.db import transaction

from exchanges.clients import exchange_client
from exchanges.errors import ExchangeError, UnknownMarket
from exchanges.models import ExchangeAccount
from exchanges.precision import market_rules
from ledger.amounts import parse_amount
from ledger.errors import InvalidAmount
from ledger.services import asset_scale

from ..errors import InvalidOrderRequest
from ..models import MarketMakingPair

logger = logging.getLogger(__name__)


def _asset_id(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidOrderRequest(f"{field} must be a Mixin asset id (UUID), got {value!r}") from None


def _symbol_listed_check(account: ExchangeAccount, symbol: str) -> None:
    """Refuse a pair whose symbol the account's exchange does not list (its ccxt markets), in one line."""
    try:
        market_rules(exchange_client(account_id=account.pk), symbol)
    except UnknownMarket as exc:
        message = f"{symbol} cannot be traded on account {account.label!r}: {exc}"
    except (ccxt.BaseError, ExchangeError) as exc:
        message = (f"cannot check that {account.exchange_id} lists {symbol} (account {account.label!r}): "
                   f"{type(exc).__name__}: {exc}")
    else:
        return
    logger.warning("event=pair_refused symbol=%s account_id=%s reason=%s", symbol, account.pk, message)
    raise InvalidOrderRequest(message)


def pair_create(*, symbol: str, base_asset_id: str, quote_asset_id: str, exchange_account_id: int | None = None,
                exchange_id: str = "", base_network: str = "", quote_network: str = "",
                base_fee_asset_id: str = "", base_fee_amount="0", quote_fee_asset_id: str = "",
                quote_fee_amount="0", enabled: bool = True) -> MarketMakingPair:
    """Create a pair. ``symbol`` is the exchange symbol ``BASE/QUOTE``; its two codes are the
    exchange currencies the Mixin assets map to. The exchange comes from the account when given."""

    base_code, sep, quote_code = symbol.partition("/")
    if not sep or not base_code or not quote_code:
        raise InvalidOrderRequest(f"symbol must look like BASE/QUOTE, got {symbol!r}")
    base_asset_id = _asset_id(base_asset_id, "base_asset_id")
    quote_asset_id = _asset_id(quote_asset_id, "quote_asset_id")
    if base_asset_id == quote_asset_id:
        raise InvalidOrderRequest("base and quote must be different assets")
    account = None
    if exchange_account_id is not None:
        account = ExchangeAccount.objects.filter(pk=exchange_account_id).first()
        if account is None:
            raise InvalidOrderRequest(f"no exchange account {exchange_account_id}")
        exchange_id = exchange_id or account.exchange_id
        if account.enabled:
            _symbol_listed_check(account, symbol)
    if not exchange_id:
        raise InvalidOrderRequest("give an exchange account or an exchange id")
    fees = {}
    for leg, asset, amount in (("base_fee", base_fee_asset_id, base_fee_amount),
                               ("quote_fee", quote_fee_asset_id, quote_fee_amount)):
        asset = _asset_id(asset, f"{leg}_asset_id") if asset else ""
        try:
            value = parse_amount(amount, scale=asset_scale(asset) if asset else 8, field=f"{leg}_amount",
                                 allow_zero=True)
        except InvalidAmount as exc:
            raise InvalidOrderRequest(str(exc)) from None
        if value and not asset:
            raise InvalidOrderRequest(f"{leg}_amount needs {leg}_asset_id")
        fees.update({f"{leg}_asset_id": asset, f"{leg}_amount": value})
    with transaction.atomic():
        pair = MarketMakingPair.objects.create(
            exchange_account=account, exchange_id=exchange_id, symbol=symbol, base_asset_id=base_asset_id,
            quote_asset_id=quote_asset_id, base_exchange_asset=base_code.upper(),
            quote_exchange_asset=quote_code.upper(), base_network=base_network, quote_network=quote_network,
            enabled=enabled, **fees,
        )
    logger.info("event=pair_created pair_id=%s symbol=%s exchange_id=%s account_id=%s", pair.pair_id, symbol,
                exchange_id, exchange_account_id)
    return pair
