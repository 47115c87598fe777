"""The reconcile command: summary and drifts with numbers, --json, exit 0 clean, 1 on drift, 2 on bad arguments."""
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, ManagementUtility, call_command
from django.utils import timezone

from intents.models import IntentStatus
from reconciliation import selectors
from reconciliation.models import ReconciliationRun
from tests.factories import IntentFactory
from tests.reconciliation.conftest import cancel_behind_our_back, sim_shift_balance, sim_total

pytestmark = [pytest.mark.embedded]


def manage(*args) -> int:
    """Run ``manage.py reconcile *args`` as the command line does (argument parsing, sys.exit); its status."""
    try:
        ManagementUtility(["manage.py", "reconcile", *args]).execute()
    except SystemExit as exited:
        return exited.code
    return 0


def test_reconcile_exit_status_is_0_when_clean_1_on_drift_2_on_bad_arguments(quoting, sim, capsys):
    # Given a clean state: a summary, OK, status 0
    assert manage() == 0
    out = capsys.readouterr().out
    assert "1 account(s), 4 order(s), 2 balance(s), 0 intent(s) in flight checked" in out
    assert out.rstrip().endswith("reconcile: OK") and "DRIFT" not in out

    # Given an order cancelled behind our back: the drift with its numbers, status 1
    account, order = quoting
    victim = cancel_behind_our_back(sim, account, order)
    assert manage() == 1
    out = capsys.readouterr().out
    assert (f"DRIFT tracked_not_open account={account.label} symbol=BTC/USDT client_order_id={victim.client_order_id} "
            f"expected={victim.amount.normalize()} actual=0 difference=-{victim.amount.normalize()}: ") in out
    assert out.rstrip().endswith("reconcile: 1 drift(s)")

    # Given an argument it does not know: status 2, saying so
    assert manage("--bogus") == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    # and --help explains the drift kinds and the exit status
    assert manage("--help") == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 no drift, 1 any drift, 2 bad arguments" in help_text and "--set-baseline" in help_text


def test_reconcile_json_reports_each_drift_with_numbers_and_exits_1(quoting, sim, capsys):
    # Given an order cancelled behind our back and 7.25 USDT more on the exchange
    account, order = quoting
    victim = cancel_behind_our_back(sim, account, order)
    sim_shift_balance("USDT", Decimal("7.25"))

    with pytest.raises(SystemExit) as exited:
        call_command("reconcile", "--json")

    assert exited.value.code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["counts"]["drifts"] == 2
    drifts = {d["kind"]: d for d in report["drifts"]}
    assert drifts["tracked_not_open"]["client_order_id"] == victim.client_order_id
    assert drifts["tracked_not_open"]["expected"] == str(victim.amount.normalize())
    usdt = drifts["balance_changed"]
    assert (usdt["asset"], usdt["account"], usdt["difference"]) == ("USDT", account.label, "7.25")
    assert Decimal(usdt["actual"]) == sim_total("USDT")
    assert Decimal(usdt["expected"]) == sim_total("USDT") - Decimal("7.25")
    assert ReconciliationRun.objects.get(pk=report["run_id"]).drift_count == 2


@pytest.mark.django_db
def test_a_run_that_fails_exits_3_and_keeps_what_it_found(monkeypatch):
    # Given a stuck intent, and the balance check failing on a bug (the ledger read raising)
    IntentFactory(cancel=True, intent_id="mm:c:stuck", status=IntentStatus.IN_FLIGHT,
                  lease_until=timezone.now() - timedelta(minutes=5))

    def broken():
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr(selectors, "ledger_positions", broken)

    # When the command runs: a CommandError with status 3 (what manage.py exits with), saying why
    with pytest.raises(CommandError) as failed:
        call_command("reconcile")
    assert failed.value.returncode == 3 and "crashed: ZeroDivisionError: planted bug" in str(failed.value)
    # and the run is stored as failed, with the drift found before the crash
    run = ReconciliationRun.objects.get()
    assert (run.ok, run.error, run.drift_count) == (False, "ZeroDivisionError: planted bug", 1)
    assert run.drifts.get().intent_id == "mm:c:stuck"
