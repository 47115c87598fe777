"""Order lifecycle reads."""
from __future__ import annotations

import uuid

from django.db.models import Count, QuerySet

from intents.ids import strategy_key
from intents.models import TrackedFill
from ledger.amounts import canonical

from .models import MarketMakingOrder, MarketMakingPair, OrderState, Refund, RefundStatus, Snapshot


def order_summary(*, order: MarketMakingOrder) -> dict:
    """What a client needs to pay an order: id, memo, state, deadline and each required leg."""
    payment = order.payment
    return {
        "order_id": str(order.order_id),
        "pair_id": str(order.pair.pair_id),
        "user_id": order.user_id,
        "state": order.state,
        "memo": order.memo,
        "expires_at": order.expires_at.isoformat(),
        "required": [
            {"leg": leg, "asset_id": asset, "amount": canonical(required), "received": canonical(received)}
            for leg, asset, required, received in payment.legs()
        ],
    }


def lifecycle_status() -> dict:
    """Counts an operator watches: orders per state, snapshots per outcome, refunds per status."""
    def counts(qs, field):
        return {row[field]: row["n"] for row in qs.values(field).annotate(n=Count("id")).order_by(field)}

    return {
        "orders": {state: 0 for state in OrderState.values} | counts(MarketMakingOrder.objects, "state"),
        "snapshots": counts(Snapshot.objects, "outcome"),
        "refunds": counts(Refund.objects, "status"),
        "refunds_pending": list(
            Refund.objects.filter(status=RefundStatus.PENDING).order_by("created_at").values_list("key", flat=True)[:50]
        ),
    }


def pair_list_enabled() -> QuerySet:
    """The pairs that take new orders, by symbol."""
    return MarketMakingPair.objects.filter(enabled=True).order_by("symbol", "pair_id")


def order_list_of_user(*, user_id: str) -> QuerySet:
    """The orders a Mixin user pays for, newest first (with their pairs)."""
    return MarketMakingOrder.objects.filter(user_id=user_id).select_related("pair").order_by("-created_at", "-id")


def order_get_of_user(*, user_id: str, order_id) -> MarketMakingOrder | None:
    """The order ``order_id`` when ``user_id`` pays for it (with its pair, payment and refunds); None for
    another user's order, an unknown one or an id that is not a UUID."""
    try:
        order_id = uuid.UUID(str(order_id))
    except ValueError:
        return None
    return (order_list_of_user(user_id=user_id).select_related("payment")
            .prefetch_related("refunds", "payouts").filter(order_id=order_id).first())


def order_history(*, order: MarketMakingOrder, fills_limit: int = 200) -> dict:
    """What happened to an order, as its rows record it: state transitions, strategy parameter changes and
    payments received (oldest first), and its exchange fills (the newest ``fills_limit``, with their count)."""
    fills = TrackedFill.objects.filter(strategy_key=strategy_key(order.order_id))
    return {
        "order_id": order.order_id,
        "transitions": list(order.transitions.order_by("at", "id")),
        "param_changes": list(order.param_changes.order_by("at", "id")),
        "payments": list(Snapshot.objects.filter(order=order).order_by("received_at", "id")),
        "fills": list(fills.order_by("-traded_at_ms", "-id")[:fills_limit]),
        "fills_count": fills.count(),
        "fills_limit": fills_limit,
    }
