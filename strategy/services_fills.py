"""Settling recorded fills into the ledger, so an order's ledger position follows the exchange."""
from __future__ import annotations

import logging

from intents.models import TrackedFill
from ledger.services import settle_fill

logger = logging.getLogger(__name__)



def fill_settle(*, fill: TrackedFill) -> int:
    """Settle one fill against its order's locked funds (fee included); returns the ledger entry id.

    Exchange currency codes map to the pair's Mixin asset ids; a fee in any other currency
    cannot be settled and raises ValueError (recorded on the fill, reported by reconciliation).
    """
    from orders.models import ORDER_REF, MarketMakingOrder

    from .runtime import order_id_of

    order = MarketMakingOrder.objects.select_related("pair", "exchange_account").get(
        order_id=order_id_of(fill.strategy_key))
    pair = order.pair
    assets = {pair.base_exchange_asset.upper(): pair.base_asset_id, pair.quote_exchange_asset.upper(): pair.quote_asset_id}
    fee_asset = None
    if fill.fee:
        fee_asset = assets.get(fill.fee_currency.upper())
        if fee_asset is None:
            raise ValueError(f"fee currency {fill.fee_currency!r} of trade {fill.trade_id} is neither "
                             f"{pair.base_exchange_asset} nor {pair.quote_exchange_asset}")
    account = order.exchange_account
    result = settle_fill(
        user_id=order.user_id, exchange=f"{account.exchange_id}-{account.pk}",
        trade_id=f"{fill.symbol.replace('/', '')}-{fill.trade_id}", side=fill.side,
        base_asset_id=pair.base_asset_id, quote_asset_id=pair.quote_asset_id,
        base_amount=fill.amount, quote_amount=fill.cost, fee_asset_id=fee_asset, fee_amount=fill.fee,
        ref_type=ORDER_REF, ref_id=str(order.order_id),
    )
    TrackedFill.objects.filter(pk=fill.pk).update(ledger_entry_id=result.entry.pk, settle_error="")
    logger.info("event=fill_settled order_id=%s trade_id=%s side=%s amount=%s price=%s fee=%s %s applied=%s",
                order.order_id, fill.trade_id, fill.side, fill.amount, fill.price, fill.fee, fill.fee_currency,
                result.applied)
    return result.entry.pk
