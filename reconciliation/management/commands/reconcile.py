"""reconcile: compare ledger and tracked orders with the exchanges; exit 1 naming each drift."""
import json
import sys

from django.core.management.base import CommandError

from mmproject.cli import OperatorCommand
from reconciliation.errors import ReconciliationCrashed
from reconciliation.selectors import run_report
from reconciliation.services import reconcile_run


class Command(OperatorCommand):
    help = (
        "Reconcile our state with the exchanges, once. Per enabled exchange account: tracked orders we "
        "believe are open but the exchange does not list open (tracked_not_open), open exchange orders "
        "carrying a session's client-id prefix that we do not track (untracked_open), orders the trackers "
        "saw closed since the last run without any cancel of ours (cancelled_externally), the exchange's "
        "balance total minus what the ledger says the orders on the account hold, compared with its "
        "stored baseline (balance_changed); and intents in flight past their lease (stuck_intent). "
        "An exchange that cannot be read is reported as unreachable. The run and its drifts are stored "
        "(admin: Reconciliation). Exit status: 0 no drift, 1 any drift, 2 bad arguments, 3 the run itself "
        "failed (error stored with the run). "
        "See docs/reconciliation.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the run and its drifts as JSON")
        parser.add_argument(
            "--set-baseline", action="store_true",
            help="accept every balance difference (exchange total - ledger positions) seen now as the new "
                 "baseline, after a change was explained (e.g. the operator moved float); orders and intents "
                 "are still checked",
        )

    def handle(self, *args, **options):
        try:
            run = reconcile_run(trigger="command", set_baseline=options["set_baseline"])
        except ReconciliationCrashed as exc:
            raise CommandError(f"{exc} (what it found before is stored with the run)", returncode=3) from exc
        report = run_report(run)
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(
                f"reconcile run {run.pk}: {run.accounts_checked} account(s), {run.orders_checked} order(s), "
                f"{run.balances_checked} balance(s), {run.intents_checked} intent(s) in flight checked; "
                f"{run.baselines_set} baseline(s) set in {report['duration_s']}s"
            )
            for drift in report["drifts"]:
                numbers = " ".join(f"{k}={drift[k]}" for k in ("expected", "actual", "difference")
                                   if drift[k] is not None)
                where = " ".join(f"{k}={drift[k]}" for k in ("account", "symbol", "asset", "client_order_id",
                                                               "intent_id") if drift[k])
                self.stdout.write(f"DRIFT {drift['kind']} {where} {numbers}: {drift['detail']}")
            self.stdout.write("reconcile: OK" if run.ok else f"reconcile: {run.drift_count} drift(s)")
        if not run.ok:
            sys.exit(1)
