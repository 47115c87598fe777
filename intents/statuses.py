"""The life of an exchange order as we track it: one list of statuses for the database, the
tracked-order owner (intents.tracked_orders) and the pure diff (strategy.order_diff)."""
from __future__ import annotations

from enum import Enum


class TrackedStatus(str, Enum):
    """An exchange order's life (DESIGN.md, STYLE.md point 6)."""

    PENDING_CREATE = "pending_create"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELLED = "cancelled"
    FAILED = "failed"
    LOST = "lost"


ACTIVE_STATUSES = frozenset(
    {TrackedStatus.PENDING_CREATE, TrackedStatus.OPEN, TrackedStatus.PARTIALLY_FILLED, TrackedStatus.PENDING_CANCEL}
)
FINAL_STATUSES = frozenset({TrackedStatus.FILLED, TrackedStatus.CANCELLED, TrackedStatus.LOST, TrackedStatus.FAILED})
