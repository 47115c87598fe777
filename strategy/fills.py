"""Fills: every trade of our tracked orders recorded once and settled into the ledger, so an order's
ledger position follows the exchange."""
from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import ccxt
from django.db.models import Max, Q
from django.utils import timezone

from exchanges.clients import exchange_client
from exchanges.dialects import trades_page
from exchanges.services import exchange_decimal
from intents.ids import order_id_of
from intents.models import OPEN_TRACKED_STATUSES, TrackedFill, TrackedOrder
from ledger.errors import LedgerError, UnknownExchangeCurrency
from ledger.selectors import exchange_currency_asset
from ledger.services import settle_fill

from .order_rows import ORDER_REF, order_for_fills

logger = logging.getLogger(__name__)


FILL_OVERLAP_MS = 60_000


def fills_record(*, account_id: int, symbol: str, client: ccxt.Exchange | None = None,
                 strategy_key: str | None = None) -> int:
    """Record every new trade of our tracked orders on one market once, and settle it into the ledger.

    Trades are fetched from a little before the newest one recorded (or the oldest tracked order),
    so nothing between two runs is missed; the unique (account, symbol, trade id) and the ledger
    key ``fill:{exchange}:{trade_id}`` make seeing a trade twice harmless.
    """
    client = client or exchange_client(account_id=account_id)
    recent = timezone.now() - timedelta(days=1)
    tracked = TrackedOrder.objects.filter(account_id=account_id, symbol=symbol).exclude(exchange_order_id="").filter(
        Q(status__in=OPEN_TRACKED_STATUSES) | Q(updated_at__gte=recent))
    if strategy_key:
        tracked = tracked.filter(strategy_key=strategy_key)
    by_exchange_id = {t.exchange_order_id: t for t in tracked}
    if not by_exchange_id:
        return 0
    newest = TrackedFill.objects.filter(account_id=account_id, symbol=symbol).aggregate(m=Max("traded_at_ms"))["m"]
    if newest is not None:
        since = newest - FILL_OVERLAP_MS
    else:
        since = int(min(t.created_at for t in by_exchange_id.values()).timestamp() * 1000) - FILL_OVERLAP_MS
    recorded = 0
    page = trades_page(client)  # a full page means there may be more: the exchange's own page size
    while True:
        trades = client.fetch_my_trades(symbol, since=since, limit=page)
        for trade in trades:
            order = by_exchange_id.get(str(trade.get("order")))
            if order is not None and _fill_save(account_id, symbol, order, trade):
                recorded += 1
        newest_seen = max((int(t["timestamp"]) for t in trades), default=since)
        if len(trades) < page or newest_seen <= since:
            break
        since = newest_seen
    return recorded


def _fill_save(account_id: int, symbol: str, order: TrackedOrder, trade: dict) -> bool:
    fee = trade.get("fee") or {}
    fill, created = TrackedFill.objects.get_or_create(
        account_id=account_id, symbol=symbol, trade_id=str(trade["id"]),
        defaults=dict(
            tracked_order=order, strategy_key=order.strategy_key, side=trade["side"],
            price=exchange_decimal(trade, "price"), amount=exchange_decimal(trade, "amount"),
            cost=exchange_decimal(trade, "cost"),
            fee=exchange_decimal(fee, "cost", info=trade.get("info")) or Decimal(0),
            fee_currency=fee.get("currency") or "",
            traded_at_ms=int(trade["timestamp"]),
        ),
    )
    if fill.ledger_entry_id is None:
        try:
            fill_settle(fill=fill)
        except (LedgerError, ValueError) as exc:
            TrackedFill.objects.filter(pk=fill.pk).update(settle_error=str(exc)[:2000])
            logger.error("event=fill_settle_failed strategy_key=%s trade_id=%s error=%s", fill.strategy_key,
                         fill.trade_id, exc)
    return created


def fill_settle(*, fill: TrackedFill) -> int:
    """Settle one fill against its order's locked funds (fee included); returns the ledger entry id.

    Exchange currency codes map to the pair's Mixin asset ids; a fee in any other currency (e.g.
    BNB) settles in the asset ledger.ExchangeCurrency maps it to on this exchange, as a fee debt of
    the order (ledger.services.settle_fill). An unmapped one raises UnknownExchangeCurrency: the
    fill stays unsettled with the error recorded, logged as an alert, and the exchange's balances
    move without the ledger (reconciliation reports it) until an operator maps the currency.
    """
    order = order_for_fills(order_id_of(fill.strategy_key))
    pair = order.pair
    account = order.exchange_account
    assets = {pair.base_exchange_asset.upper(): pair.base_asset_id, pair.quote_exchange_asset.upper(): pair.quote_asset_id}
    fee_asset = None
    if fill.fee:
        code = fill.fee_currency.upper()
        fee_asset = assets.get(code) or (exchange_currency_asset(exchange_id=account.exchange_id, code=code)
                                         if code else None)
        if fee_asset is None:
            logger.error("event=fee_currency_unmapped order_id=%s account_id=%s exchange_id=%s trade_id=%s fee=%s "
                         "currency=%s", order.order_id, account.pk, account.exchange_id, fill.trade_id, fill.fee,
                         fill.fee_currency or "-")
            raise UnknownExchangeCurrency(
                f"fee {fill.fee} {fill.fee_currency or '(no currency)'} of trade {fill.trade_id} on {account.label} "
                f"cannot settle: {fill.fee_currency or 'the empty code'} is neither the pair's base "
                f"{pair.base_exchange_asset} nor quote {pair.quote_exchange_asset}, and no exchange currency maps "
                f"{account.exchange_id}:{code or '?'} to a Mixin asset (add it in the admin under Ledger > Exchange "
                f"currencies); the whole fill is unsettled until then")
    result = settle_fill(
        user_id=order.user_id, exchange=f"{account.exchange_id}-{account.pk}",
        trade_id=f"{fill.symbol.replace('/', '')}-{fill.trade_id}", side=fill.side,
        base_asset_id=pair.base_asset_id, quote_asset_id=pair.quote_asset_id,
        base_amount=fill.amount, quote_amount=fill.cost, fee_asset_id=fee_asset, fee_amount=fill.fee,
        fee_owed=fee_asset not in (None, pair.base_asset_id, pair.quote_asset_id),
        ref_type=ORDER_REF, ref_id=str(order.order_id),
    )
    TrackedFill.objects.filter(pk=fill.pk).update(ledger_entry_id=result.entry.pk, settle_error="")
    logger.info("event=fill_settled order_id=%s trade_id=%s side=%s amount=%s price=%s fee=%s %s applied=%s",
                order.order_id, fill.trade_id, fill.side, fill.amount, fill.price, fill.fee, fill.fee_currency,
                result.applied)
    return result.entry.pk
