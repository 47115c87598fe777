"""Order lifecycle reads."""
from __future__ import annotations

from django.db.models import Count

from ledger.amounts import canonical

from .models import MarketMakingOrder, OrderState, Refund, RefundStatus, Snapshot


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
