"""ledger/sql.py: each named statement run on every database it is for (the mutation statement on
PostgreSQL, the stepwise steps on both), so a misspelt table or column fails here."""
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from ledger import sql as ledger_sql
from ledger.amounts import to_db
from ledger.models import Account, Balance, LedgerEntry, Operation, Posting
from mmproject.sql import server_bound

from .helpers import fresh

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statement")

LEDGER_TESTED = {"mutation_sql", "create_balances_sql", "lock_balances_sql", "insert_missing_balances_sql",
                 "claim_key_sql", "update_balance_sql", "insert_postings_sql"}


def test_every_ledger_statement_has_a_test_here():
    builders = {name for name, f in vars(ledger_sql).items() if name.endswith("_sql") and callable(f)}
    assert builders == LEDGER_TESTED


def run(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def balances(user: str) -> dict[str, tuple[Decimal, Decimal]]:
    return {b.asset_id: (b.available, b.locked) for b in Balance.objects.filter(user_id=user)}


@on_postgres
def test_ledger_mutation_statement_on_postgres():
    user, base, quote = fresh("user"), fresh("base"), fresh("quote")
    now = timezone.now()
    run(ledger_sql.create_balances_sql(2), [user, base, now, user, quote, now])
    assert balances(user) == {base: (0, 0), quote: (0, 0)}

    def mutate(key, op, asset, amount, deltas, moves):
        params = [p for (a, d_available, d_locked) in deltas for p in (user, a, d_available, d_locked)]
        params += [key, op.value, amount, "test", "1", "hash", Jsonb({"n": 1}), now, user, asset, now]
        params += [p for (account, owner, a, value) in moves for p in (account.value, owner, a, value)]
        return server_bound(ledger_sql.mutation_sql(len(deltas), len(moves)), params, prepare=True, binary=False)

    # One key, two postings (a deposit): the locked rows before, and the entry's id.
    rows = mutate(fresh("dep"), Operation.CREDIT_DEPOSIT, quote, Decimal(10), [(quote, Decimal(10), 0)],
                  [(Account.EXTERNAL, "", quote, Decimal(-10)), (Account.USER_AVAILABLE, user, quote, Decimal(10))])
    entry = LedgerEntry.objects.get(pk=rows[0][4])
    assert [r[:4] for r in rows] == [(user, quote, 0, 0)]
    assert (entry.operation, entry.available_after, entry.locked_after, entry.details) == (
        Operation.CREDIT_DEPOSIT, 10, 0, {"n": 1})
    assert sorted(Posting.objects.filter(entry=entry).values_list("account", "amount")) == [
        (Account.EXTERNAL, -10), (Account.USER_AVAILABLE, 10)]

    # Two keys, four postings (a fill), in (user, asset) order.
    mutate(fresh("lock"), Operation.LOCK_FUNDS, quote, Decimal(4), [(quote, Decimal(-4), Decimal(4))],
           [(Account.USER_AVAILABLE, user, quote, Decimal(-4)), (Account.USER_LOCKED, user, quote, Decimal(4))])
    keys = sorted([(base, Decimal(0), Decimal(1)), (quote, Decimal(0), Decimal(-3))])
    rows = mutate(fresh("fill"), Operation.SETTLE_FILL, base, Decimal(1), keys,
                  [(Account.USER_LOCKED, user, base, Decimal(1)), (Account.EXCHANGE, "", base, Decimal(-1)),
                   (Account.USER_LOCKED, user, quote, Decimal(-3)), (Account.EXCHANGE, "", quote, Decimal(3))])
    assert [r[1] for r in rows] == [a for a, _, _ in keys] and rows[0][4] is not None
    assert balances(user) == {base: (0, 1), quote: (6, 1)}

    # A refusal (locked would go negative) writes nothing and returns no entry id.
    rows = mutate(fresh("unlock"), Operation.UNLOCK_FUNDS, quote, Decimal(2), [(quote, Decimal(2), Decimal(-2))],
                  [(Account.USER_LOCKED, user, quote, Decimal(-2)), (Account.USER_AVAILABLE, user, quote, Decimal(2))])
    assert rows[0][4] is None and balances(user)[quote] == (6, 1)


def test_ledger_stepwise_statements():
    """The SQLite path's steps (plain SQL, so they run on PostgreSQL too)."""
    vendor, user, asset = connection.vendor, fresh("user"), fresh("asset")
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    zero = to_db(Decimal(0), vendor)
    lock = ledger_sql.lock_balances_sql(1, vendor == "postgresql")
    assert run(lock, [user, asset]) == []
    for _ in range(2):  # the second insert conflicts and is skipped
        run(ledger_sql.insert_missing_balances_sql(1), [user, asset, zero, zero, now])
    [(_, _, balance_id, available, locked)] = run(lock, [user, asset])
    assert Decimal(available) == Decimal(locked) == 0

    key = fresh("dep")
    claim = [key, Operation.CREDIT_DEPOSIT.value, user, asset, to_db(Decimal(5), vendor), "", "", "hash",
             to_db(Decimal(5), vendor), zero, connection.ops.adapt_json_value({}, None), now]
    [(entry_id,)] = run(ledger_sql.claim_key_sql(), claim)
    assert run(ledger_sql.claim_key_sql(), claim) == []  # the key is taken
    run(ledger_sql.update_balance_sql(), [to_db(Decimal(5), vendor), zero, now, balance_id])
    run(ledger_sql.insert_postings_sql(2), [
        entry_id, Account.EXTERNAL.value, "", asset, to_db(Decimal(-5), vendor),
        entry_id, Account.USER_AVAILABLE.value, user, asset, to_db(Decimal(5), vendor)])
    assert balances(user) == {asset: (5, 0)}
    assert Posting.objects.filter(entry_id=entry_id).count() == 2
