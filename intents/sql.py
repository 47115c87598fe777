"""The intents app's hand-written statements, by name: an executor batch's read and writes.

Table and column names come from the models, status values from their enums; the generic builders
(``case_by_id``, ``typed``, ``ModelColumns``) are in mmproject/sql.py. Why by hand: docs/decisions.md,
"Hand-written SQL". The claim's and release's statements are in intents/gates.py.
"""
from __future__ import annotations

from django.db import connection
from django.utils import timezone

from exchanges.models import ExchangeAccount
from ledger.amounts import to_db
from mmproject.sql import ModelColumns, case_by_id, typed

from .models import Intent, TrackedOrder
from .tracked_orders import EXCHANGE_FIELDS

_INTENT = ModelColumns(Intent)
_TRACKED = ModelColumns(TrackedOrder)
_ACCOUNT = ModelColumns(ExchangeAccount)
_BATCH_ENDS = (_INTENT.width, _INTENT.width + _TRACKED.width)


def read_batch(pks: list[int]) -> tuple[dict[int, Intent], dict[str, TrackedOrder], dict[int, ExchangeAccount]]:
    """The intents ``pks`` (by pk), their tracked orders (by client order id) and their accounts
    (by pk), in one statement rather than three querysets (docs/decisions.md, "Hand-written SQL")."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {_INTENT.columns('i')}, {_TRACKED.columns('t')}, {_ACCOUNT.columns('a')} FROM {_INTENT.name} i "
            f"LEFT JOIN {_TRACKED.name} t ON t.client_order_id = i.client_order_id "
            f"JOIN {_ACCOUNT.name} a ON a.id = i.account_id WHERE i.id IN ({', '.join(['%s'] * len(pks))})", pks)
        rows = cur.fetchall()
    intents, tracked, accounts = {}, {}, {}
    tracked_at, account_at = _BATCH_ENDS
    for row in rows:
        intent = _INTENT.load(row[:tracked_at])
        intents[intent.pk] = intent
        if row[tracked_at] is not None:
            order = _TRACKED.load(row[tracked_at:account_at])
            tracked[order.client_order_id] = order
        if intent.account_id not in accounts:
            accounts[intent.account_id] = _ACCOUNT.load(row[account_at:])
    return intents, tracked, accounts


def write_sent_at(pks: list[int], sent_at) -> None:
    """Set (or clear) ``sent_at`` of intents ``pks``."""
    if pks:
        with connection.cursor() as cur:
            cur.execute(f"UPDATE {_INTENT.name} SET sent_at = %s WHERE id IN ({', '.join(['%s'] * len(pks))})",
                        [connection.ops.adapt_datetimefield_value(sent_at), *pks])


def tracked_writes(rows: list[TrackedOrder]) -> list[tuple[str, list]]:
    """The statement saving the exchange's view (``tracked_orders.EXCHANGE_FIELDS``) of several tracked orders
    (none without rows)."""
    if not rows:
        return []
    vendor = connection.vendor
    adapt = connection.ops.adapt_datetimefield_value
    assert EXCHANGE_FIELDS == ("status", "filled", "exchange_order_id", "last_fill_at", "updated_at")
    pks = [r.pk for r in rows]
    parts = [case_by_id(pks, [getattr(r.status, "value", r.status) for r in rows]),
             case_by_id(pks, [to_db(r.filled, vendor) for r in rows], typed("numeric")),
             case_by_id(pks, [r.exchange_order_id for r in rows]),
             case_by_id(pks, [adapt(r.last_fill_at) for r in rows], typed("timestamp with time zone"))]
    now = timezone.now()
    for row in rows:
        row.updated_at = now
    return [(
        f"UPDATE {_TRACKED.name} SET status = {parts[0][0]}, filled = {parts[1][0]}, "
        f"exchange_order_id = {parts[2][0]}, last_fill_at = {parts[3][0]}, updated_at = %s "
        f"WHERE id IN ({', '.join(['%s'] * len(rows))})",
        [*parts[0][1], *parts[1][1], *parts[2][1], *parts[3][1], adapt(now), *pks],
    )]
