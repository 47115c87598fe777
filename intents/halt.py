"""The kill switch: a setting or a database flag that blocks every new exchange order at once.

Checked where an intent is claimed and again just before a create is sent; cancels still go
through. Engaging it supersedes every create intent that was not sent yet.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mmproject.sql import column

from . import tracked_orders
from .models import Intent, IntentKind, IntentStatus, TradingHalt

logger = logging.getLogger(__name__)

GLOBAL = "global"  # the name of the kill switch's one row


def halt_row_sql(alias: str = "h") -> tuple[str, list]:
    """A query finding the engaged kill-switch row, and its parameters: one definition for
    ``halt_engaged`` and for the statement an executor runs before a create, which folds it into
    its session check (strategy.selectors.sessions_accepting_orders)."""
    table = connection.ops.quote_name(TradingHalt._meta.db_table)
    name, engaged = (column(TradingHalt, alias, field) for field in ("name", "engaged"))
    return f"SELECT 1 FROM {table} {alias} WHERE {name} = %s AND {engaged} = %s", [GLOBAL, True]


def halt_engaged() -> bool:
    if settings.STRATEGY_KILL_SWITCH:
        return True
    sql, params = halt_row_sql()
    # By hand: the ORM's exists() cost ~4x this (docs/decisions.md, "Figures behind the hot paths").
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone() is not None


def halt_set(*, engaged: bool, reason: str = "", by: str = "") -> int:
    """Engage or release the kill switch; returns how many unsent creates were superseded."""
    with transaction.atomic():
        TradingHalt.objects.update_or_create(name=GLOBAL, defaults={"engaged": engaged, "reason": reason,
                                                                      "changed_by": by})
        superseded = 0
        if engaged:
            unsent = list(Intent.objects.filter(kind=IntentKind.CREATE, status=IntentStatus.NEW)
                          .values_list("client_order_id", flat=True))
            superseded = Intent.objects.filter(kind=IntentKind.CREATE, status=IntentStatus.NEW).update(
                status=IntentStatus.SUPERSEDED, finished_at=timezone.now(), last_error="kill switch engaged")
            tracked_orders.cancel_unsent(unsent)
    logger.warning("event=kill_switch engaged=%s by=%s reason=%s superseded=%s", engaged, by, reason, superseded)
    return superseded
