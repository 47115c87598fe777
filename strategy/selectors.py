"""Strategy session reads."""
from django.db.models import QuerySet

from .models import SessionStatus, StrategySession


def session_list_due(*, now) -> QuerySet[StrategySession]:
    """Running sessions whose next run is due, oldest first."""
    return (
        StrategySession.objects.filter(status=SessionStatus.RUNNING, next_run_at__lte=now)
        .select_related("order")
        .order_by("next_run_at", "pk")
    )


def session_get_for_order(*, order_id) -> StrategySession | None:
    return StrategySession.objects.filter(order__order_id=order_id).first()
