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
- ``explicit_prepare(raw)``: for code that runs its own psycopg cursor and passes ``prepare=True``
  (the ledger's mutation, the strategy's due-sessions read): whether to, and the connection made
  ready for it (psycopg ignores ``prepare=True`` while the threshold is None, Django's default).

``DATABASE_PREPARED_STATEMENTS=false`` turns both off (a pooler in transaction mode older than
PgBouncer 1.21, or without ``max_prepared_statements``). SQLite: nothing changes.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

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
