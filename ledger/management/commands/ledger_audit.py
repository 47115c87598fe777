"""ledger_audit: prove every balance equals the sum of its postings; exit 1 naming each drift."""
import json
import sys

from ledger.selectors import audit_ledger
from mmproject.cli import OperatorCommand


class Command(OperatorCommand):
    help = (
        "Recompute every user balance and every asset's total from the ledger postings. "
        "Prints a summary; exits 1 and names each drift if any balance differs from its "
        "postings, an asset's postings do not sum to zero, or an entry is unbalanced; exits 2 on bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        report = audit_ledger()
        if options["json"]:
            self.stdout.write(json.dumps({
                "ok": report.ok,
                "drifts": report.drifts,
                "balances_checked": report.balances_checked,
                "assets_checked": report.assets_checked,
                "entries_checked": report.entries_checked,
                "system_balances": [
                    {"account": account, "asset_id": asset_id, "amount": str(amount)}
                    for (account, asset_id), amount in sorted(report.system_balances.items())
                ],
            }, indent=2))
        else:
            self.stdout.write(
                f"ledger_audit: {report.balances_checked} balances, {report.assets_checked} assets, "
                f"{report.entries_checked} entries checked"
            )
            for (account, asset_id), amount in sorted(report.system_balances.items()):
                self.stdout.write(f"  system {account} {asset_id}: {amount}")
            for drift in report.drifts:
                self.stdout.write(f"DRIFT {drift}")
            self.stdout.write("ledger_audit: OK" if report.ok else f"ledger_audit: {len(report.drifts)} drift(s)")
        if not report.ok:
            sys.exit(1)
