"""``mm_resume``: the sweeper; re-dispatch every lifecycle job the database says is due."""
import json

from django.core.management.base import BaseCommand

from orders.errors import TransferUncertain
from orders.services.resume import lifecycle_resume


class Command(BaseCommand):
    help = ("Re-queue the next job of every order and snapshot waiting on one (after a broker outage) "
            "and send pending refunds. Safe to run at any time: every job is idempotent.")

    def handle(self, *args, **options):
        try:
            counts = lifecycle_resume()
        except TransferUncertain as exc:
            self.stderr.write(f"a refund's outcome is uncertain, run again later: {exc}")
            raise SystemExit(1) from None
        self.stdout.write(json.dumps(counts, sort_keys=True))
