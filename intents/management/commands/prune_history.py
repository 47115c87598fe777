"""prune_history: delete finished intents and closed, unfilled tracked orders past the retention."""
import json

from intents.retention import history_prune
from mmproject.cli import OperatorCommand, UsageError


class Command(OperatorCommand):
    help = (
        "Delete the intents finished (done, failed, superseded) and the tracked orders closed without a "
        "fill (cancelled, failed, lost) more than --days ago (default STRATEGY_HISTORY_RETENTION_DAYS; "
        "0 keeps everything). Active intents, open orders and orders with fills are never deleted. The "
        "prune_history task runs the same every STRATEGY_HISTORY_PRUNE_INTERVAL_S."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="retention in days (0: delete nothing)")
        parser.add_argument("--max-seconds", type=float, default=600.0,
                            help="stop after this long; a later run goes on from there")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, days, max_seconds, **options):
        if days is not None and days < 0:
            raise UsageError(f"--days must be 0 or more, not {days}")
        if max_seconds <= 0:
            raise UsageError(f"--max-seconds must be positive, not {max_seconds}")
        report = history_prune(days=days, max_seconds=max_seconds)
        result = {"cutoff": report.cutoff.isoformat() if report.cutoff else None,
                  "intents_deleted": report.intents_deleted,
                  "tracked_orders_deleted": report.tracked_orders_deleted, "complete": report.complete}
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        if report.cutoff is None:
            self.stdout.write("retention is off (0 days): nothing deleted")
            return
        self.stdout.write(f"deleted {report.intents_deleted} intents and {report.tracked_orders_deleted} tracked "
                          f"orders older than {result['cutoff']}"
                          + ("" if report.complete else " (time budget reached: run again to go on)"))
