"""``mm_resume``: the sweeper; re-dispatch every lifecycle job the database says is due."""
import json

from django.core.management.base import BaseCommand

from orders.errors import TransferUncertain
from orders.services.resume import lifecycle_sweep


class Command(BaseCommand):
    help = ("Re-queue the next job of every order and snapshot waiting on one (after a broker outage) "
            "and send pending refunds: what the beat's resume_market_making does every MM_SWEEP_INTERVAL_S. "
            "Safe to run at any time: every job is idempotent, a polling chain that is alive is left alone, "
            "and one sweep runs at a time. Exit 0 swept, 1 another sweep is running or a refund's outcome "
            "is uncertain (run again later).")

    def handle(self, *args, **options):
        try:
            counts = lifecycle_sweep(holder="command:mm_resume")
        except TransferUncertain as exc:
            self.stderr.write(f"a refund's outcome is uncertain, run again later: {exc}")
            raise SystemExit(1) from None
        if counts is None:
            self.stderr.write("another sweep is running (the beat's resume_market_making or mm_resume); "
                              "nothing was done, run again later")
            raise SystemExit(1)
        self.stdout.write(json.dumps(counts, sort_keys=True))
