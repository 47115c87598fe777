"""The admin shows runs, their drifts and the baselines, read-only."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from reconciliation.models import BalanceBaseline, Drift, DriftKind, ReconciliationRun
from tests.factories import ExchangeAccountFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def run():
    account = ExchangeAccountFactory(label="rec-admin")
    now = timezone.now()
    run = ReconciliationRun.objects.create(trigger="command", started_at=now - timedelta(seconds=1), finished_at=now,
                                           ok=False, drift_count=1, balances_checked=1)
    Drift.objects.create(run=run, kind=DriftKind.BALANCE_CHANGED, account=account, asset="USDT",
                         expected=Decimal("1000"), actual=Decimal("874.5"), difference=Decimal("-125.5"),
                         detail="rec-admin holds 874.5 USDT")
    BalanceBaseline.objects.create(account=account, asset="USDT", difference=Decimal("985"),
                                   exchange_total=Decimal("1000"), ledger_total=Decimal("15"), set_at=now)
    return run


def test_admin_lists_runs_drifts_and_baselines_without_edit_controls(admin_client, run):
    page = admin_client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "rec-admin holds 874.5 USDT" in body and "-125.5" in body
    assert 'name="_save"' not in body  # read-only: no save button

    drifts = admin_client.get(reverse("admin:reconciliation_drift_changelist") + "?kind=balance_changed")
    assert drifts.status_code == 200 and "-125.5" in drifts.content.decode()
    baselines = admin_client.get(reverse("admin:reconciliation_balancebaseline_changelist"))
    assert baselines.status_code == 200 and "985" in baselines.content.decode()
    assert admin_client.get(reverse("admin:reconciliation_drift_add")).status_code == 403
