"""Fewer round trips and no re-planning on PostgreSQL for the hot paths' hand-written SQL.

``write_together``: writes of one transaction sent as one statement (data-modifying CTEs).
``ModelColumns``: a model's columns in a hand-written SELECT, and its rows back as instances.

Prepared statements on Django's PostgreSQL connection, opted into per block or per statement.

Django's psycopg cursors bind parameters client side (the values are quoted into the statement's
text) and leave prepared statements off, for the sake of connection poolers. Every statement is
then parsed, analysed and planned by PostgreSQL on every call: on the intents path (claim, execute,
release) and the simulator's order requests that was ~40% of PostgreSQL's CPU, as much as running
the statements (docs/benchmarks.md, run 8).

- ``prepared_statements()``: inside the block every statement on the connection, the ORM's
  included, binds server side (the text carries ``$n`` placeholders, so a statement has the same
  text whatever its values) and is prepared from its second use on that connection (psycopg keeps
  up to 100 per connection, least recently used dropped). Used around the hot paths only: server
  side binding caps a statement at 65,535 parameters (a bulk insert of thousands of rows elsewhere
  would fail) and needs every parameter's type to be inferable, which the hot paths' statements
  are written for and tested with.
- ``explicit_prepare(raw)``: for ``server_bound``, which runs its own psycopg cursor and passes
  ``prepare=True`` (the ledger's mutation, the strategy's due-sessions read): whether to, and the
  connection made ready for it (psycopg ignores ``prepare=True`` while the threshold is None,
  Django's default).

``DATABASE_PREPARED_STATEMENTS=false`` turns both off (a pooler in transaction mode older than
PgBouncer 1.21, or without ``max_prepared_statements``). SQLite: nothing changes.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager, nullcontext
from datetime import datetime
from enum import Enum

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

NEVER_AUTO = 2**31  # a threshold no statement reaches: only what asks for it (prepare=True) is prepared
PREPARE_FROM_USE = 1  # inside a block: prepared on its second execution, so one-off statements are not


def enabled(db) -> bool:
    return db.vendor == "postgresql" and settings.DATABASE_PREPARED_STATEMENTS


def explicit_prepare(raw) -> bool:
    """Whether statements on psycopg connection ``raw`` may be prepared; if so, ``prepare=True`` works on it."""
    if not settings.DATABASE_PREPARED_STATEMENTS:
        return False
    if raw.prepare_threshold is None:
        raw.prepare_threshold = NEVER_AUTO
    return True


@contextmanager
def prepared_statements(using: str = DEFAULT_DB_ALIAS):
    """Inside the block, statements on connection ``using`` bind server side and are prepared
    from their second use (PostgreSQL, unless DATABASE_PREPARED_STATEMENTS is false)."""
    db = connections[using]
    if not enabled(db):
        yield
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    db.ensure_connection()
    raw = db.connection
    saved = raw.cursor_factory, raw.prepare_threshold
    raw.cursor_factory, raw.prepare_threshold = ServerBindingCursor, PREPARE_FROM_USE
    try:
        yield
    finally:
        # The same psycopg connection even if Django replaced it meanwhile (then the new one never changed).
        raw.cursor_factory, raw.prepare_threshold = saved


def write_together(statements: list[tuple[str, list]], *, returning: bool = False, using: str = DEFAULT_DB_ALIAS):
    """Run writes of one transaction in order: on PostgreSQL as one statement (data-modifying
    CTEs; one round trip, atomic by itself), elsewhere one by one in a transaction (the caller's
    when there is one).

    Only the last statement may return rows (``returning``: fetch and return them). The statements
    must not read each other's rows, nor write the same row: a CTE's writes are invisible to its
    siblings, and two updates of one row in one statement leave only one of them.
    """
    db = connections[using]
    if db.vendor == "postgresql" and len(statements) > 1:
        head = ", ".join(f"w{n} AS ({sql})" for n, (sql, _) in enumerate(statements[:-1]))
        statements = [(f"WITH {head} {statements[-1][0]}", [p for _, params in statements for p in params])]
    with transaction.atomic(using=using, savepoint=False) if len(statements) > 1 else nullcontext():
        with db.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
            return cursor.fetchall() if returning else None


def quote(name: str) -> str:
    """An identifier quoted as PostgreSQL and SQLite both read it."""
    return f'"{name}"'


class ModelColumns:
    """A model's columns in a hand-written SELECT (``columns``) and rows of them back as instances
    (``load``), with the values the ORM would give: the backend's and the field's converters (exact
    Decimals of AmountField, SQLite's text datetimes as aware datetimes, JSON). Unselected fields
    (``only``, ``exclude``) are deferred: they load on access. For statements that read several
    models at once, where a queryset would cost a statement per model and more CPU building
    each one than running it."""

    def __init__(self, model, *, only=None, exclude=()):
        self.model = model
        self.name = quote(model._meta.db_table)
        self.fields = [f for f in model._meta.concrete_fields
                       if (only is None or f.attname in only) and f.attname not in exclude]
        self.attnames = [f.attname for f in self.fields]
        self.width = len(self.fields)
        self._cols = [f.get_col(model._meta.db_table) for f in self.fields]
        self._converters: dict[str, list] = {}  # by vendor: the converters read no per-connection state

    def columns(self, alias: str) -> str:
        return ", ".join(f"{alias}.{quote(f.column)}" for f in self.fields)

    def _converters_of(self, db) -> list:
        converters = self._converters.get(db.vendor)
        if converters is None:
            converters = self._converters[db.vendor] = [
                tuple(db.ops.get_db_converters(col) + col.get_db_converters(db)) for col in self._cols]
        return converters

    def load(self, values, using: str = DEFAULT_DB_ALIAS):
        """The instance of row ``values`` (in ``fields`` order)."""
        db = connections[using]
        converted = []
        for value, converters, col in zip(values, self._converters_of(db), self._cols):
            if value is not None:
                for convert in converters:
                    value = convert(value, col, db)
            converted.append(value)
        return self.model.from_db(using, self.attnames, converted)


# --- Generic statement builders for the apps' named statements (<app>/sql.py) -----------------
def column(model, alias: str, name: str) -> str:
    """``alias."column"`` of the field ``name`` of ``model``, for the hand-written statements."""
    return f"{alias}.{connection.ops.quote_name(model._meta.get_field(name).column)}"

def server_bound(sql: str, params: list, *, prepare: bool, fetch: bool = True, binary: bool = True,
                 using: str = DEFAULT_DB_ALIAS) -> list[tuple] | int:
    """PostgreSQL: run ``sql`` on Django's connection ``using`` (so in its transaction) through a
    server-side-binding psycopg cursor: parameters travel apart from the statement (arrays in
    binary, where Django's client-side cursor quotes every element into the text).

    - ``prepare``: the statement is parsed and planned once per connection (unless
      DATABASE_PREPARED_STATEMENTS is false: ``explicit_prepare``); only for statements whose plan
      does not depend on the size of an array parameter: a generic plan cannot see it, and for the
      cycle's read by strategy keys it chose to filter every unclaimed intent against the whole
      list (~7 ms at 100 keys and 4,000 creates) instead of the index on (strategy_key, status).
    - ``binary``: results in binary (text timestamps were parsed in Python: ~7 ms for 4,000 rows).
    - Returns the rows, or with ``fetch=False`` how many rows the statement changed.

    As from Django's own cursors: errors are django.db's (``wrap_database_errors``), and the
    statement is listed in ``connection.queries`` (and counted by django_assert_num_queries) when
    queries are logged. One psycopg cursor per connection is kept and reused: a new cursor per
    call sets its adapters up again, ~75 us of client CPU per call instead of ~58 us for a
    prepared statement of the ledger's ~20 parameters (varchar, numeric, timestamptz, jsonb).
    """
    db = connections[using]
    db.ensure_connection()
    started = time.perf_counter()
    raw = db.connection
    cur = db.__dict__.get("_server_bound_cursor")  # the wrapper is per thread; its connection may be new
    if cur is None or cur.connection is not raw:
        cur = db._server_bound_cursor = psycopg.Cursor(raw)
    with db.wrap_database_errors:
        cur.execute(sql, params, prepare=prepare and explicit_prepare(raw), binary=binary)
        rows = cur.fetchall() if fetch else cur.rowcount
    if db.queries_logged:
        db.queries_log.append({"sql": sql, "time": f"{time.perf_counter() - started:.3f}"})
    return rows

def among(model, field: str, values, db_type: str = "text"):
    """A filter ``field IN values`` over many values: one array parameter on PostgreSQL.

    Thousands of separate parameters cost more to compile and bind (client-side, in psycopg)
    than the statement costs to run. ``= ANY(array)`` rather than ``IN (SELECT unnest(...))``:
    PostgreSQL hashes a constant array, whereas the join form, when its statistics are stale
    after a burst of inserts, became a nested loop comparing every new intent with every id.
    """
    values = list(values)
    if connection.vendor == "postgresql":
        qn = connection.ops.quote_name
        column = f"{qn(model._meta.db_table)}.{qn(model._meta.get_field(field).column)}"
        return RawSQL(f"{column} = ANY(%s::{db_type}[])", [values], output_field=BooleanField())
    return Q(**{f"{field}__in": values})

def column_default(field, now: datetime):
    """What an insert that omits ``field`` writes: ``now`` for auto_now(_add) fields, else the
    field's default as ``bulk_create`` takes it ("" for a non-null text field without one)."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    default = field.get_default()
    return default.value if isinstance(default, Enum) else default

def insert_ignoring_conflicts(model, rows: list[dict], now: datetime) -> None:
    """Insert ``rows`` (field values by attname), skipping conflicting rows, as
    ``bulk_create(ignore_conflicts=True)`` does.

    Omitted fields take their (constant) default; auto_now and auto_now_add fields take ``now``.
    On PostgreSQL: one ``INSERT ... SELECT FROM unnest(...)`` with one array per column, no
    model instances and a statement that does not grow with the number of rows.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        insert_from_json(model, rows, now)
        return
    columns, selects, params = [], [], []
    constant_columns, constant_selects, constants = [], [], []
    given = set().union(*rows)  # the fields some row names; every other column is its default throughout
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        default = column_default(field, now)
        name = field.attname
        column = connection.ops.quote_name(field.column)
        db_type = field.db_type(connection)
        if name in given:
            values = [row.get(name, default) for row in rows]
            first = values[0]
            # (count() compares in C; the type check tells 1 from Decimal("1") and True.)
            constant = values.count(first) == len(values) and all(type(v) is type(first) for v in values)
        else:
            values, first, constant = None, default, True
        if constant:
            # The same value in every row (a default, a status, the time): one parameter, not an array.
            constant_columns.append(column)
            constant_selects.append(f"%b::{db_type}")
            constants.append(first)
        else:
            columns.append(column)
            selects.append(f"%b::{db_type}[]")
            params.append(values)
    # Server-side binding: the arrays travel in binary, where Django's client-side cursor would
    # quote every element as text.
    table = connection.ops.quote_name(model._meta.db_table)
    source = f"unnest({', '.join(selects)})" if selects else "generate_series(1, %b::int)"
    if not selects:
        params.append(len(rows))
    server_bound(
        f"INSERT INTO {table} ({', '.join(columns + constant_columns)}) "
        f"SELECT {'u.*' if selects else ''}{', ' if selects and constant_selects else ''}"
        f"{', '.join(constant_selects)} FROM {source} AS u ON CONFLICT DO NOTHING",
        constants + params,  # in the order of their placeholders: the SELECT list, then FROM
        prepare=False, fetch=False,
    )

def insert_from_json(model, rows: list[dict], now: datetime) -> None:
    """SQLite: the rows as one JSON parameter (an array per row) read back with ``json_each``, so
    the insert is one statement at any size, as on PostgreSQL; ``bulk_create`` split it into one
    statement per ~50 rows (Django's 999-parameter cap for SQLite), 86 for a tick of 4,000 intents.
    Values are what each field gives the database (amounts as fixed text, times as text)."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    defaults = {field.attname: column_default(field, now) for field in fields}
    prep = [(field.attname, field.get_db_prep_value) for field in fields]
    values = [[to_db_value(row.get(name, defaults[name]), connection, prepared=False) for name, to_db_value in prep]
              for row in rows]
    qn = connection.ops.quote_name
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT OR IGNORE INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
            f"SELECT {', '.join(f'json_extract(value, {chr(39)}$[{i}]{chr(39)})' for i in range(len(fields)))} "
            "FROM json_each(%s)",
            [json.dumps(values)],
        )

def typed(sql_type: str) -> str:
    """A placeholder cast to ``sql_type`` on PostgreSQL (so a CASE whose values are all NULL, or all
    text, still reads as the column's type), plain on SQLite."""
    return f"CAST(%s AS {sql_type})" if connection.vendor == "postgresql" else "%s"

def case_by_id(pks: list[int], values: list, value_sql: str = "%s", otherwise: str = "") -> tuple[str, list]:
    """``CASE id WHEN pk THEN value ... [ELSE otherwise] END`` and its parameters: one value per row
    of a multi-row UPDATE."""
    whens = " ".join([f"WHEN %s THEN {value_sql}"] * len(pks))
    return (f"CASE id {whens}{f' ELSE {otherwise}' if otherwise else ''} END",
            [p for pk, value in zip(pks, values) for p in (pk, value)])
