"""``mm_status [--json]``: orders per state, snapshots per outcome, refunds per status, halted exchange accounts."""
import json

from exchanges.halts import halted_accounts
from mmproject.cli import OperatorCommand
from orders.selectors import lifecycle_status


class Command(OperatorCommand):
    help = "Show the order lifecycle at a glance: orders per state, snapshots per outcome, refunds per status."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, **options):
        status = lifecycle_status()
        status["halted_accounts"] = halted_accounts()
        if options["json"]:
            self.stdout.write(json.dumps(status, sort_keys=True))
            return
        for section in ("orders", "snapshots", "refunds"):
            counts = status[section]
            self.stdout.write(f"{section}: " + (", ".join(f"{k}={v}" for k, v in counts.items()) or "none"))
        if status["refunds_pending"]:
            self.stdout.write("pending refunds: " + ", ".join(status["refunds_pending"]))
        for row in status["halted_accounts"]:  # mm_account resume LABEL, once the cause is fixed
            self.stdout.write(f"HALTED exchange account {row['label']} since {row['halted_at']}: {row['reason']}")
