"""The kill switch: a setting or a database flag that blocks every new exchange order at once; and
the halt of one exchange account, which blocks that account's new orders the same way.

The kill switch is checked where an intent is claimed and again just before a create is sent;
cancels still go through. Engaging it supersedes every create intent that was not sent yet.

An account halts when the exchange answers one of its requests with an error the policy classes
``halt`` (exchanges.policy: API key revoked, account suspended). Its state is the account's own
(exchanges.halts); here is what the halt does to the account's work: its creates not sent yet are
superseded, the strategy plans nothing for its sessions (strategy.sql.due_sessions_sql) and the
executor's last check refuses its creates (``halt_row_sql(account=...)``, folded into the session
check); cancels still go through. Its open orders stay on the exchange, or, with
``STRATEGY_HALT_OPEN_ORDERS=cancel``, each order with one open is stopped through the stop path
(``stop_mm``). An operator resumes it (``mm_account resume LABEL``, the admin's action).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from exchanges.halts import account_halt_set
from exchanges.models import ExchangeAccount
from mmproject.jobs import enqueue_after_commit
from mmproject.sql import column

from . import tracked_orders
from .ids import order_id_of, strategy_key
from .models import Intent, IntentKind, IntentStatus, TrackedOrder, TradingHalt

logger = logging.getLogger(__name__)

GLOBAL = "global"  # the name of the kill switch's one row


def halt_row_sql(alias: str = "h", *, account: str | None = None) -> tuple[str, list]:
    """A query finding the engaged kill-switch row, and its parameters: one definition for
    ``halt_engaged`` and for the statement an executor runs before a create, which folds it into
    its session check (strategy.selectors.sessions_accepting_orders). With ``account`` (the SQL of an
    exchange account id in the enclosing statement, e.g. ``o.exchange_account_id``) it also finds
    that account halted (``account_halted_sql``)."""
    table = connection.ops.quote_name(TradingHalt._meta.db_table)
    name, engaged = (column(TradingHalt, alias, field) for field in ("name", "engaged"))
    sql = f"SELECT 1 FROM {table} {alias} WHERE {name} = %s AND {engaged} = %s"
    if account is not None:
        sql = f"{sql} UNION ALL {account_halted_sql(account)}"
    return sql, [GLOBAL, True]


def account_halted_sql(account: str, alias: str = "ha") -> str:
    """A query finding the exchange account ``account`` (SQL of its id in the enclosing statement)
    halted: a lookup by primary key, no parameters."""
    table = connection.ops.quote_name(ExchangeAccount._meta.db_table)
    return (f"SELECT 1 FROM {table} {alias} WHERE {column(ExchangeAccount, alias, 'id')} = {account} "
            f"AND {column(ExchangeAccount, alias, 'halted_at')} IS NOT NULL")


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


def _no_session(order_id: str) -> None:
    return None


# The strategy layer's "this order's session takes no new order from now on" (strategy.stop.session_stop_begin),
# registered in StrategyConfig.ready. Here rather than in intents.hooks, which imports this module: the halt's
# cancel path is its only caller.
_stop_begin: Callable[[str], None] = _no_session


def register_stop_begin(stop_begin: Callable[[str], None]) -> None:
    global _stop_begin
    _stop_begin = stop_begin


def account_halt(*, account_id: int, reason: str) -> bool:
    """Halt the exchange account after a ``halt`` error (see the module's docstring); True when this
    call halted it, False when it was halted already (nothing more is done then)."""
    with transaction.atomic():
        if not account_halt_set(account_id=account_id, reason=reason):
            return False
        unsent = Intent.objects.filter(account_id=account_id, kind=IntentKind.CREATE, status=IntentStatus.NEW)
        client_ids = list(unsent.values_list("client_order_id", flat=True))
        superseded = unsent.update(status=IntentStatus.SUPERSEDED, finished_at=timezone.now(),
                                   last_error="exchange account halted")
        tracked_orders.cancel_unsent(client_ids)
        stopping = []
        if settings.STRATEGY_HALT_OPEN_ORDERS == "cancel":
            stopping = sorted({order_id_of(key) for key in TrackedOrder.objects.filter(
                account_id=account_id, status__in=tracked_orders.ON_BOOK, strategy_key__startswith=strategy_key(""),
            ).values_list("strategy_key", flat=True)})
            for order_id in stopping:
                # Recorded first: a stop_mm the broker loses leaves a stopping session the sweeper finishes.
                _stop_begin(order_id)
                enqueue_after_commit("stop_mm", order_id, f"exchange account halted: {reason[:200]}")
    logger.warning("event=account_halt_applied account_id=%s superseded=%s open_orders=%s stopping=%s",
                   account_id, superseded, settings.STRATEGY_HALT_OPEN_ORDERS, len(stopping))
    return True
