"""What the strategy reads of the market-making order it runs: its parameters, pair, account and
user, and the ledger reference its funds are held under.

The one place the strategy layer reads the orders app (docs/decisions.md, "The strategy reads its
order's row"): the order is the record of its strategy parameters, so the strategy reads them
there rather than keeping a second copy that could drift. Nothing here writes an order.
"""
from __future__ import annotations

from orders.models import ORDER_REF, MarketMakingOrder, MarketMakingPair, OrderState

__all__ = ["ORDER_REF", "MarketMakingOrder", "MarketMakingPair", "OrderState", "order_for_fills", "order_cadence_s"]


def order_for_fills(order_id) -> MarketMakingOrder:
    """The order with its pair and exchange account, for settling a fill of it."""
    return MarketMakingOrder.objects.select_related("pair", "exchange_account").get(order_id=order_id)


def order_cadence_s(order: MarketMakingOrder) -> int:
    """Seconds between two strategy runs of the order."""
    return order.order_refresh_time
