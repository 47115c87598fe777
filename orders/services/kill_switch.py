"""The kill switch as an operator action: block new orders now, then stop every running order."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from intents.halt import halt_engaged, halt_set
from mmproject.jobs import enqueue_after_commit

from ..errors import OrderError
from ..models import MarketMakingOrder, OrderState
from ..outcomes import Outcome
from .lifecycle import order_stop

logger = logging.getLogger(__name__)


@dataclass
class KillReport:
    superseded: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)


def kill_switch_engage(*, reason: str, by: str, wait_s: float = 10) -> KillReport:
    """Engage the switch (no create is claimed or sent from this moment), then stop each running
    order the same way ``stop_mm`` does; an order not clear within ``wait_s`` is left to the job."""
    report = KillReport(superseded=halt_set(engaged=True, reason=reason, by=by))
    for order_id in MarketMakingOrder.objects.filter(state=OrderState.RUNNING).values_list("order_id", flat=True):
        try:
            outcome = order_stop(order_id=order_id, by=by, reason=f"kill switch: {reason}", wait_s=wait_s)
        except OrderError as exc:
            outcome = f"error: {exc}"
        if outcome == Outcome.STOPPING:
            enqueue_after_commit("stop_mm", str(order_id), f"kill switch: {reason}")
        report.outcomes[str(order_id)] = outcome
    logger.warning("event=kill_switch_engaged by=%s orders=%s", by, len(report.outcomes))
    return report


def kill_switch_release(*, by: str) -> None:
    halt_set(engaged=False, reason="released", by=by)


__all__ = ["KillReport", "halt_engaged", "kill_switch_engage", "kill_switch_release"]
