"""ledger_audit (command and selector): a clean ledger passes; every kind of drift is named."""
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from ledger import services
from ledger.selectors import audit_ledger

from .helpers import fresh

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def run_audit(*args):
    from io import StringIO

    out = StringIO()
    try:
        call_command("ledger_audit", *args, stdout=out)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue()


@pytest.fixture
def ledger_with_activity(user, asset):
    quote = fresh("quote")
    services.credit_deposit(user_id=user, asset_id=asset, amount=10, idempotency_key=fresh("d"))
    services.credit_deposit(user_id=user, asset_id=quote, amount=1000, idempotency_key=fresh("d"))
    services.lock_funds(user_id=user, asset_id=quote, amount=500, idempotency_key=fresh("l"))
    services.settle_fill(user_id=user, exchange="x", trade_id=fresh("t"), side="buy", base_asset_id=asset,
                         quote_asset_id=quote, base_amount=1, quote_amount=100, fee_amount="0.1")
    services.debit_fee(user_id=user, asset_id=asset, amount="0.5", idempotency_key=fresh("f"))
    return user, asset, quote


def test_clean_ledger_passes_with_a_summary(ledger_with_activity):
    user, asset, quote = ledger_with_activity
    code, out = run_audit()
    assert code == 0, out
    assert "ledger_audit: OK" in out
    assert "DRIFT" not in out
    report = audit_ledger()
    assert report.ok and report.balances_checked >= 2 and report.assets_checked >= 2
    # system accounts are derived by sum: the exchange received 100 quote and paid 1 base
    assert report.system_balances[("exchange", quote)] == Decimal(100)
    assert report.system_balances[("exchange", asset)] == Decimal(-1)
    assert report.system_balances[("fees", quote)] == Decimal("0.1")
    assert report.system_balances[("fees", asset)] == Decimal("0.5")


def test_json_report(ledger_with_activity):
    code, out = run_audit("--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True and report["drifts"] == []


def test_balance_edited_behind_the_ledgers_back_is_named_and_exits_1(ledger_with_activity):
    user, asset, _ = ledger_with_activity
    value = "9.00000001" if connection.vendor == "sqlite" else Decimal("9.00000001")
    with connection.cursor() as cur:
        cur.execute("UPDATE ledger_balance SET available = %s WHERE user_id = %s AND asset_id = %s",
                    [value, user, asset])
    code, out = run_audit()
    assert code == 1
    assert f"DRIFT balance {user}:{asset} available=9.00000001" in out
    assert "1 drift(s)" in out


def test_unbalanced_entry_is_named(ledger_with_activity):
    # A posting written outside the services (raw SQL, as a bug or an attacker would) unbalances
    # its entry and its asset: both are named.
    user, asset, _ = ledger_with_activity
    entry_id = services.credit_deposit(user_id=user, asset_id=asset, amount=1, idempotency_key=fresh("d")).entry.pk
    amount = "0.3" if connection.vendor == "sqlite" else Decimal("0.3")
    with connection.cursor() as cur:
        cur.execute("INSERT INTO ledger_posting (entry_id, account, user_id, asset_id, amount) "
                    "VALUES (%s, 'fees', '', %s, %s)", [entry_id, asset, amount])
    report = audit_ledger()
    assert not report.ok
    assert any(d.startswith(f"entry {entry_id}: {asset} postings sum to 0.3") for d in report.drifts), report.drifts
    assert any(d.startswith(f"asset {asset}: postings sum to 0.3") for d in report.drifts), report.drifts
