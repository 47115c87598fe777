"""Ledger admin: balances and entries are searchable and read-only, even for a superuser."""
import pytest
from django.urls import reverse

from ledger import services
from ledger.models import Balance, LedgerEntry

from .helpers import fresh

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def two_users(asset):
    alice, bob = fresh("alice"), fresh("bob")
    a = services.credit_deposit(user_id=alice, asset_id=asset, amount=3, idempotency_key=fresh("alice-key"),
                                ref_type="snapshot", ref_id=fresh("snap"))
    b = services.credit_deposit(user_id=bob, asset_id=asset, amount=4, idempotency_key=fresh("bob-key"),
                                ref_type="order", ref_id=fresh("ord"))
    return a.entry, b.entry


@pytest.mark.parametrize("field", ["user_id", "idempotency_key", "ref_id"])
def test_entries_are_searchable_by_user_key_and_ref(admin_client, two_users, field):
    alice_entry, bob_entry = two_users
    response = admin_client.get(reverse("admin:ledger_ledgerentry_changelist"), {"q": getattr(alice_entry, field)})
    assert response.status_code == 200
    page = response.content.decode()
    assert alice_entry.idempotency_key in page
    assert bob_entry.idempotency_key not in page


def test_balances_are_searchable_by_user_and_asset(admin_client, two_users, asset):
    alice_entry, bob_entry = two_users
    response = admin_client.get(reverse("admin:ledger_balance_changelist"), {"q": alice_entry.user_id})
    page = response.content.decode()
    assert alice_entry.user_id in page and bob_entry.user_id not in page
    response = admin_client.get(reverse("admin:ledger_balance_changelist"), {"q": asset})
    page = response.content.decode()
    assert alice_entry.user_id in page and bob_entry.user_id in page


@pytest.mark.parametrize("model", [LedgerEntry, Balance])
def test_nobody_adds_changes_or_deletes_through_the_admin(admin_client, two_users, model):
    alice_entry, _ = two_users
    obj = model.objects.get(pk=alice_entry.pk) if model is LedgerEntry else model.objects.get(
        user_id=alice_entry.user_id)
    name = model._meta.model_name
    assert admin_client.get(reverse(f"admin:ledger_{name}_add")).status_code == 403
    assert admin_client.get(reverse(f"admin:ledger_{name}_change", args=[obj.pk])).status_code == 200  # view only
    response = admin_client.post(reverse(f"admin:ledger_{name}_change", args=[obj.pk]), {"amount": "999"})
    assert response.status_code == 403
    assert admin_client.post(reverse(f"admin:ledger_{name}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()
    assert services.get_balance(user_id=alice_entry.user_id, asset_id=alice_entry.asset_id).available == 3
