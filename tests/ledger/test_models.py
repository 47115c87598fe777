"""The database keeps the ledger's invariants even when Python is bypassed."""
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.utils import DatabaseError

from ledger import services
from ledger.errors import ImmutableEntry
from ledger.models import Balance, LedgerEntry, Posting

from .helpers import fresh

pytestmark = pytest.mark.django_db



@pytest.fixture
def entry(user, asset):
    return services.credit_deposit(user_id=user, asset_id=asset, amount=5, idempotency_key=fresh("dep")).entry


@pytest.mark.embedded
def test_entry_and_posting_cannot_be_changed_through_the_model(entry):
    stored = LedgerEntry.objects.get(pk=entry.pk)
    stored.amount = Decimal(500)
    with pytest.raises(ImmutableEntry, match="append-only; it cannot be changed"):
        stored.save()
    with pytest.raises(ImmutableEntry, match="cannot be deleted"):
        stored.delete()
    posting = Posting.objects.filter(entry_id=entry.pk).first()
    posting.amount = Decimal(1)
    with pytest.raises(ImmutableEntry):
        posting.save()
    with pytest.raises(ImmutableEntry):
        posting.delete()
    # the returned entry object is also a stored row, not a new one to insert
    with pytest.raises(ImmutableEntry):
        entry.save()
    assert LedgerEntry.objects.get(pk=entry.pk).amount == 5


@pytest.mark.embedded
def test_entries_and_postings_cannot_be_changed_through_querysets(entry):
    with pytest.raises(ImmutableEntry, match="cannot be updated"):
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=Decimal(500))
    with pytest.raises(ImmutableEntry, match="cannot be deleted"):
        LedgerEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(ImmutableEntry):
        Posting.objects.filter(entry_id=entry.pk).update(amount=Decimal(0))
    with pytest.raises(ImmutableEntry):
        Posting.objects.all().delete()
    assert Posting.objects.filter(entry_id=entry.pk).count() == 2


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_ledgerentry SET amount = 500 WHERE id = %s",
        "DELETE FROM ledger_ledgerentry WHERE id = %s",
        "UPDATE ledger_posting SET amount = 0 WHERE entry_id = %s",
        "DELETE FROM ledger_posting WHERE entry_id = %s",
    ],
)
def test_postgres_trigger_refuses_raw_update_and_delete(entry, sql):
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql, [entry.pk])
    assert LedgerEntry.objects.get(pk=entry.pk).amount == 5
    assert Posting.objects.filter(entry_id=entry.pk).count() == 2


@pytest.mark.embedded
@pytest.mark.parametrize("column", ["available", "locked"])
def test_check_constraint_refuses_a_negative_balance_written_by_raw_sql(user, asset, entry, column):
    balance = Balance.objects.get(user_id=user, asset_id=asset)
    value = "-0.00000001" if connection.vendor == "sqlite" else Decimal("-0.00000001")
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"UPDATE ledger_balance SET {column} = %s WHERE id = %s", [value, balance.pk])
    balance.refresh_from_db()
    assert (balance.available, balance.locked) == (5, 0)


@pytest.mark.embedded
def test_check_constraint_refuses_a_negative_balance_saved_through_the_orm(user, asset, entry):
    balance = Balance.objects.get(user_id=user, asset_id=asset)
    balance.available = Decimal(-1)
    with pytest.raises(IntegrityError), transaction.atomic():
        balance.save()


@pytest.mark.embedded
def test_idempotency_key_is_unique_in_the_database(entry):
    stored = LedgerEntry.objects.get(pk=entry.pk)
    stored.pk = None
    stored._state.adding = True
    with pytest.raises(IntegrityError), transaction.atomic():
        stored.save()


@pytest.mark.embedded
def test_one_balance_row_per_user_and_asset(user, asset, entry):
    with pytest.raises(IntegrityError), transaction.atomic():
        Balance.objects.create(user_id=user, asset_id=asset)
