"""The reconcile command: summary and drifts with numbers, --json, exit 0 clean, 1 on drift, 2 on bad arguments."""
import json
import subprocess
import sys
from decimal import Decimal

import pytest
from django.core.management import call_command

from reconciliation.models import ReconciliationRun
from tests.reconciliation.conftest import cancel_behind_our_back, sim_shift_balance, sim_total

MANAGE = [sys.executable, "manage.py", "reconcile"]


def test_clean_reconcile_prints_a_summary_and_exits_0(quoting, capsys):
    call_command("reconcile")  # no SystemExit: exit status 0

    out = capsys.readouterr().out
    assert "1 account(s), 4 order(s), 2 balance(s), 0 intent(s) in flight checked" in out
    assert out.rstrip().endswith("reconcile: OK") and "DRIFT" not in out


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


@pytest.mark.slow
def test_command_exit_status_in_a_process(quoting, sim, child_env):
    # Given a drift (an order cancelled behind our back), the command in its own process exits 1
    account, order = quoting
    victim = cancel_behind_our_back(sim, account, order)
    drift = subprocess.run(MANAGE, env=child_env, capture_output=True, text=True, timeout=120)
    assert drift.returncode == 1, drift.stderr[-2000:]
    assert f"DRIFT tracked_not_open account={account.label} symbol=BTC/USDT client_order_id={victim.client_order_id}" \
        in drift.stdout
    assert "reconcile: 1 drift(s)" in drift.stdout

    # and with an argument it does not know, it exits 2 saying so
    bad = subprocess.run([*MANAGE, "--bogus"], env=child_env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unrecognized arguments: --bogus" in bad.stderr
