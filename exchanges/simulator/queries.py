"""Hand-written SQL of the simulator's per-request path: credentials, the in-flight gauge, order rows.

Every order request (create, cancel, lookup) runs a handful of small statements; building them
with the ORM cost several times the CPU of the database round trip itself, and the simulator
shares its machine with what it is benchmarked against. Each function here is one statement
(writes of one transaction go together as one on PostgreSQL), the same text on PostgreSQL and
SQLite (both quote identifiers with double quotes; RETURNING only where the SQLite has it, as
the ORM does), and rows come back as model instances with the values the ORM would give
(mmproject.sql.ModelColumns). Everything else of the simulator stays on the ORM.
"""
import json
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, connection

from ledger.amounts import AmountField, to_db
from mmproject.sql import ModelColumns, quote, write_together

from ..models import (
    OPEN_ORDER_STATUSES,
    SimAccount,
    SimBalance,
    SimConcurrency,
    SimMarket,
    SimOrder,
)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


# The request path never reads last_step_at: it stays deferred (loaded on access).
_MARKET = ModelColumns(SimMarket, exclude=("last_step_at",))
_ORDER_MARKET = ModelColumns(SimMarket, only=("id", "exchange_symbol", "base", "quote"))
_ORDER = ModelColumns(SimOrder)
_BALANCE = ModelColumns(SimBalance)
_ACCOUNT = quote(SimAccount._meta.db_table)
_GAUGE = quote(SimConcurrency._meta.db_table)
_OPEN = ", ".join(f"'{status.value}'" for status in OPEN_ORDER_STATUSES)
_INSERTED_ORDER_FIELDS = [f for f in _ORDER.fields if f.attname != "id"]


def _db(value):
    """An amount as a cursor takes it (what AmountField.get_db_prep_value gives)."""
    return to_db(value if isinstance(value, Decimal) else Decimal(value), connection.vendor)


def _fetchall(sql: str, params) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _execute(sql: str, params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- Credentials and the in-flight gauge ------------------------------------------------------

_ACCOUNT_BY_KEY_SQL = f"SELECT id, api_secret_encrypted, faults FROM {_ACCOUNT} WHERE api_key = %s"


def account_by_key(api_key: str) -> tuple[int, str, dict] | None:
    """(id, encrypted secret, faults) of the account with ``api_key``, or None."""
    rows = _fetchall(_ACCOUNT_BY_KEY_SQL, [api_key])
    if not rows:
        return None
    account_id, token, faults = rows[0]
    return account_id, token, _json(faults) or {}


_GAUGE_SET = (
    "in_flight = in_flight + 1, max_in_flight = CASE WHEN max_in_flight > in_flight "
    "THEN max_in_flight ELSE in_flight + 1 END"
)
_STARTED_SQL = f"UPDATE {_GAUGE} SET {_GAUGE_SET} WHERE account_id = %s"
_FINISHED_SQL = f"UPDATE {_GAUGE} SET in_flight = in_flight - 1 WHERE account_id = %s"
# One statement: count the request only if the account still has exactly these credentials
# (the ones the signature was checked with), and read its faults.
_STARTED_IF_CREDENTIALS_SQL = (
    f"UPDATE {_GAUGE} SET {_GAUGE_SET} WHERE account_id = %s AND EXISTS (SELECT 1 FROM {_ACCOUNT} a "
    f"WHERE a.id = %s AND a.api_key = %s AND a.api_secret_encrypted = %s) "
    f"RETURNING (SELECT a.faults FROM {_ACCOUNT} a WHERE a.id = %s)"
)


def request_started(account_id: int) -> None:
    _execute(_STARTED_SQL, [account_id])


def request_finished(account_id: int) -> None:
    _execute(_FINISHED_SQL, [account_id])


def _returning() -> bool:
    """Whether the database returns rows from INSERT and UPDATE (SQLite from 3.35)."""
    return connection.features.can_return_columns_from_insert


def request_started_if_credentials(account_id: int, api_key: str, token: str) -> dict | None:
    """Count an order request of the account when its key and encrypted secret are still these.

    Returns the account's faults when counted; None (nothing counted) when the credentials
    changed, the account is gone or it has no gauge row.
    """
    params = [account_id, account_id, api_key, token]
    if not _returning():
        with connection.cursor() as cursor:
            cursor.execute(_STARTED_IF_CREDENTIALS_SQL.partition(" RETURNING ")[0], params)
            if cursor.rowcount != 1:
                return None
        row = account_by_key(api_key)
        return row[2] if row else {}
    rows = _fetchall(_STARTED_IF_CREDENTIALS_SQL, [*params, account_id])
    if not rows:
        return None
    return _json(rows[0][0]) or {}


# --- Markets ----------------------------------------------------------------------------------

_MARKET_SQL = f"SELECT {_MARKET.columns('m')} FROM {_MARKET.name} m WHERE m.exchange_symbol = %s"


def market_by_exchange_symbol(exchange_symbol: str) -> SimMarket | None:
    rows = _fetchall(_MARKET_SQL, [exchange_symbol])
    return _MARKET.load(rows[0]) if rows else None


# --- Accounts, balances -----------------------------------------------------------------------

_ACCOUNT_SQL = f"SELECT id FROM {_ACCOUNT} WHERE id = %s"
_ACCOUNT_AND_MARKET_SQL = (
    f"SELECT {_MARKET.columns('m')} FROM {_ACCOUNT} a LEFT JOIN {_MARKET.name} m ON m.exchange_symbol = %s "
    f"WHERE a.id = %s"
)
_NO_ACCOUNT = "SimAccount matching query does not exist."


def _lock(of: str) -> str:
    """The row-lock clause. SQLite has none: it only reads the row, and its write transactions
    start with BEGIN IMMEDIATE, so they already hold the database's one write lock."""
    return f" FOR UPDATE{of}" if connection.features.has_select_for_update else ""


def lock_account(account_id: int) -> None:
    """Lock the account row for this transaction, as select_for_update() does."""
    if not _fetchall(_ACCOUNT_SQL + _lock(""), [account_id]):
        raise SimAccount.DoesNotExist(_NO_ACCOUNT)


def lock_account_and_market(account_id: int, exchange_symbol: str) -> SimMarket | None:
    """Lock the account row (as ``lock_account``) and read the market ``exchange_symbol`` (not locked)."""
    rows = _fetchall(_ACCOUNT_AND_MARKET_SQL + _lock(" OF a"), [exchange_symbol, account_id])
    if not rows:
        if market_by_exchange_symbol(exchange_symbol) is None:
            return None  # as before the two were read together: an unknown symbol is refused first
        raise SimAccount.DoesNotExist(_NO_ACCOUNT)
    return _MARKET.load(rows[0]) if rows[0][0] is not None else None


_BALANCES_SQL = (
    f"SELECT {_BALANCE.columns('b')} FROM {_BALANCE.name} b WHERE b.account_id = %s AND b.asset IN (%s, %s)"
)
# The balances and, in one more row whose columns are all NULL, whether the client order id
# is taken by an open order of the account.
_BALANCES_AND_DUPLICATE_SQL = (
    f"{_BALANCES_SQL} UNION ALL SELECT {', '.join(['NULL'] * _BALANCE.width)} WHERE EXISTS (SELECT 1 FROM "
    f"{_ORDER.name} o WHERE o.account_id = %s AND o.client_order_id = %s AND o.status IN ({_OPEN}))"
)


def _balance_rows(rows) -> dict[str, SimBalance]:
    balances = {}
    for row in rows:
        balance = _BALANCE.load(row)
        balances[balance.asset] = balance
    return balances


def balances(account_id: int, base: str, quote: str) -> dict[str, SimBalance]:
    """The account's existing balance rows of the two assets of a market, by asset."""
    return _balance_rows(_fetchall(_BALANCES_SQL, [account_id, base, quote]))


def balances_and_duplicate(account_id: int, base: str, quote: str,
                           client_order_id: str) -> tuple[dict[str, SimBalance], bool]:
    """As ``balances``, and whether an open order of the account already has ``client_order_id``."""
    rows = _fetchall(_BALANCES_AND_DUPLICATE_SQL, [account_id, base, quote, account_id, client_order_id])
    found = [row for row in rows if row[0] is not None]
    return _balance_rows(found), len(found) < len(rows)


_SAVE_BALANCE_SQL = f"UPDATE {_BALANCE.name} SET free = %s, locked = %s WHERE id = %s"


def _save_balance(balance: SimBalance) -> tuple[str, list]:
    return _SAVE_BALANCE_SQL, [_db(balance.free), _db(balance.locked), balance.pk]


def save_balances(balances: list[SimBalance]) -> None:
    if balances:
        write_together([_save_balance(balance) for balance in balances])


# --- Orders -----------------------------------------------------------------------------------

_INSERT_ORDER_SQL = (
    f"INSERT INTO {_ORDER.name} ({', '.join(quote(f.column) for f in _INSERTED_ORDER_FIELDS)}) "
    f"VALUES ({', '.join(['%s'] * len(_INSERTED_ORDER_FIELDS))}) RETURNING id"
)


def insert_order(order: SimOrder, *, balances: list[SimBalance] = ()) -> None:
    """INSERT the new ``order`` (every field set in memory) and set its primary key; write ``balances`` with it."""
    values = [_db(value) if isinstance(field, AmountField) else value
              for field, value in ((f, getattr(order, f.attname)) for f in _INSERTED_ORDER_FIELDS)]
    if _returning():
        rows = write_together([*(_save_balance(b) for b in balances), (_INSERT_ORDER_SQL, values)], returning=True)
        order.pk = rows[0][0]
    else:
        save_balances(list(balances))
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_ORDER_SQL.partition(" RETURNING ")[0], values)
            order.pk = cursor.lastrowid
    order._state.adding = False
    order._state.db = DEFAULT_DB_ALIAS


_SAVE_CLOSED_ORDER_SQL = f"UPDATE {_ORDER.name} SET status = %s, updated_ms = %s, locked_remaining = %s WHERE id = %s"


def save_order_status(order: SimOrder, *, balances: list[SimBalance] = ()) -> None:
    """Write ``status``, ``updated_ms`` and ``locked_remaining`` of ``order`` (a cancel), and ``balances``."""
    values = [order.status, order.updated_ms, _db(order.locked_remaining), order.pk]
    write_together([*(_save_balance(b) for b in balances), (_SAVE_CLOSED_ORDER_SQL, values)])


def _find_order_sql(*, by_client_id: bool, balances: bool) -> str:
    """The market of a symbol, the account's order in it (by id, or the newest with a client id) and,
    with ``balances``, the account's balance rows of the market's assets: one row per balance (at least one).

    Parameters: account id, order id | (account id, client order id), [account id], symbol.
    """
    order_id = "%s"
    if by_client_id:
        order_id = (f"(SELECT o2.id FROM {_ORDER.name} o2 WHERE o2.market_id = m.id AND o2.account_id = %s "
                    f"AND o2.client_order_id = %s ORDER BY o2.id DESC LIMIT 1)")
    columns = f"{_ORDER_MARKET.columns('m')}, {_ORDER.columns('o')}"
    joins = f"LEFT JOIN {_ORDER.name} o ON o.market_id = m.id AND o.account_id = %s AND o.id = {order_id}"
    if balances:
        columns += f", {_BALANCE.columns('b')}"
        joins += f" LEFT JOIN {_BALANCE.name} b ON b.account_id = %s AND b.asset IN (m.base, m.quote)"
    return f"SELECT {columns} FROM {_MARKET.name} m {joins} WHERE m.exchange_symbol = %s"


_FIND_ORDER_SQL = {(by_client_id, balances): _find_order_sql(by_client_id=by_client_id, balances=balances)
                   for by_client_id in (False, True) for balances in (False, True)}


def find_order(*, account_id: int, exchange_symbol: str, order_id=None, client_order_id=None,
               balances: bool = False) -> tuple[SimMarket | None, SimOrder | None, dict[str, SimBalance]]:
    """The market ``exchange_symbol`` (None: no such market), the account's order in it by exchange id,
    else the newest with the client id (None: none), and with ``balances`` the account's balance rows
    of the market's assets.

    The market has its symbols and assets loaded (the other fields load on access); the order's
    ``market`` is it.
    """
    by_client_id = order_id is None
    params = [account_id, *((account_id, client_order_id) if by_client_id else (order_id,))]
    if balances:
        params.append(account_id)
    rows = _fetchall(_FIND_ORDER_SQL[by_client_id, balances], [*params, exchange_symbol])
    if not rows:
        return None, None, {}
    market_width, order_end = _ORDER_MARKET.width, _ORDER_MARKET.width + _ORDER.width
    market = _ORDER_MARKET.load(rows[0][:market_width])
    order = None
    if rows[0][market_width] is not None:
        order = _ORDER.load(rows[0][market_width:order_end])
        order.market = market
    found = _balance_rows(row[order_end:] for row in rows if balances and row[order_end] is not None)
    return market, order, found
