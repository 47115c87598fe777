"""mmproject.sql: writes sent together, prepared statements on the hot paths, and server_bound's
cursor (PostgreSQL)."""
import psycopg
import pytest
from django.db import IntegrityError, ProgrammingError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exchanges.models import ExchangeAccount
from ledger import sql as ledger_sql
from mmproject.sql import explicit_prepare, prepared_statements, server_bound, write_together
from tests.ledger.helpers import fresh

pytestmark = pytest.mark.django_db

on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")


def prepared_texts() -> list[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cur.fetchall()]


def labels() -> list[str]:
    return sorted(ExchangeAccount.objects.values_list("label", flat=True))


@on_postgres
def test_inside_the_block_a_repeated_statement_is_prepared_once_and_outside_nothing_is(settings):
    connection.ensure_connection()
    raw = connection.connection
    before = set(prepared_texts())  # the connection may have served earlier tests
    threshold, factory = raw.prepare_threshold, raw.cursor_factory

    def new_texts(table_text):
        return [t for t in set(prepared_texts()) - before if table_text in t]

    # Outside any block: Django's client-side binding, nothing prepared however often it runs
    for _ in range(3):
        list(ExchangeAccount.objects.filter(label="a", exchange_id="outside"))
    assert not new_texts('"exchange_id" =')

    # Inside: the ORM's statement binds server side ($1) and is prepared from its second use, once
    with prepared_statements():
        for value in ("a", "b", "c"):
            list(ExchangeAccount.objects.filter(label=value, base_url="inside"))
    texts = new_texts('"base_url" =')
    assert len(texts) == 1 and "$1" in texts[0] and "$2" in texts[0]

    # After the block the connection is as it was
    assert (raw.prepare_threshold, raw.cursor_factory) == (threshold, factory)
    assert factory.__name__ == "Cursor"  # Django's client-side binding
    for _ in range(3):
        list(ExchangeAccount.objects.filter(label="a", api_key="after"))
    assert not new_texts('"api_key" =')


@on_postgres
def test_the_setting_turns_prepared_statements_off(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    with prepared_statements():
        for value in ("a", "b", "c"):
            list(ExchangeAccount.objects.filter(label=value))
    connection.ensure_connection()
    assert not explicit_prepare(connection.connection)
    assert not [t for t in prepared_texts() if "exchanges_exchangeaccount" in t]


@on_postgres
def test_an_explicitly_prepared_statement_of_the_runtime_is_prepared():
    # mmproject.sql.server_bound's own cursor asks for prepare=True; psycopg ignores it while the
    # connection's threshold is None (Django's default), which explicit_prepare lifts.
    from mmproject.sql import server_bound

    for n in range(2):
        assert server_bound("SELECT %s::int + 40", [n], prepare=True) == [(40 + n,)]
    assert [t for t in prepared_texts() if "+ 40" in t] == ["SELECT $1::int + 40"]
    assert connection.connection.prepare_threshold > 10**9  # nothing else is prepared on its own


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)  # outside any transaction, as the executor's release runs
def test_writes_together_return_the_last_rows_and_all_or_nothing_is_written():
    ExchangeAccount.objects.create(exchange_id="binance", label="taken")

    rows = write_together([
        ("UPDATE exchanges_exchangeaccount SET enabled = %s WHERE label = %s", [False, "taken"]),
        ("INSERT INTO exchanges_exchangeaccount (exchange_id, label, api_key, api_secret_encrypted, base_url, "
         "enabled, created_at, updated_at) VALUES (%s, %s, '', '', '', %s, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) "
         "RETURNING label", ["binance", "second", True]),
    ], returning=True)
    assert rows == [("second",)]
    assert labels() == ["second", "taken"]
    assert not ExchangeAccount.objects.get(label="taken").enabled

    # The last write fails (the label is taken): the first is not kept either
    with pytest.raises(IntegrityError):
        write_together([
            ("UPDATE exchanges_exchangeaccount SET enabled = %s WHERE label = %s", [True, "taken"]),
            ("INSERT INTO exchanges_exchangeaccount (exchange_id, label, api_key, api_secret_encrypted, base_url, "
             "enabled, created_at, updated_at) VALUES (%s, %s, '', '', '', %s, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
             ["binance", "taken", True]),
        ])
    assert not ExchangeAccount.objects.get(label="taken").enabled


@on_postgres
def test_server_bound_reuses_one_cursor_per_connection():
    server_bound("SELECT 1", [], prepare=False)
    cursor = connection._server_bound_cursor
    assert server_bound("SELECT %s::int", [2], prepare=False) == [(2,)]
    assert connection._server_bound_cursor is cursor
    # A cursor of another psycopg connection (as after a reconnect) is not used: a new one is made.
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port", "password")}) as other:
        connection._server_bound_cursor = psycopg.Cursor(other)
        assert server_bound("SELECT %s::int", [3], prepare=False) == [(3,)]
        assert connection._server_bound_cursor.connection is connection.connection


@on_postgres
def test_server_bound_raises_djangos_errors():
    with pytest.raises(ProgrammingError):
        server_bound("SELECT no_such_column FROM no_such_table", [], prepare=False)


@on_postgres
def test_server_bound_logs_its_statement_and_wraps_integrity_errors():
    user, asset, now = fresh("user"), fresh("asset"), timezone.now()
    sql = f"INSERT INTO {ledger_sql.BALANCE} ({ledger_sql.BALANCE_COLUMNS}) VALUES (%s, %s, 0, 0, %s)"
    with CaptureQueriesContext(connection) as captured:
        assert server_bound(sql, [user, asset, now], prepare=False, fetch=False) == 1
    assert [q["sql"] for q in captured.captured_queries] == [sql]
    with pytest.raises(IntegrityError):
        server_bound(sql, [user, asset, now], prepare=False, fetch=False)
