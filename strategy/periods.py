"""Tick periods: how long one is, and the slot (start of its period) a moment falls in."""
from __future__ import annotations

from datetime import datetime

from django.conf import settings


def tick_period_ms() -> int:
    return max(int(settings.STRATEGY_TICK_SIZE_MS), 1)


def period_start_ms(now: datetime) -> int:
    """The tick's slot: the start of its period in epoch milliseconds.

    Kept in milliseconds, not as a period number, so slots stay increasing when
    STRATEGY_TICK_SIZE_MS changes (a period number would fall when the period grows, and every
    later tick would look already run).
    """
    now_ms = int(now.timestamp() * 1000)
    return now_ms - now_ms % tick_period_ms()
