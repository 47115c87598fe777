"""``poll_snapshots``: read new snapshots from the Mixin provider (cursor persisted), once or in a loop."""
import time

from django.core.management.base import BaseCommand, CommandError

from orders.errors import ProviderError
from orders.providers import get_payment_provider
from orders.services.intake import snapshots_poll


class Command(BaseCommand):
    help = "Poll the Mixin API for the bot's new snapshots and queue their processing."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=0,
                            help="seconds between polls; 0 polls once and exits")

    def handle(self, *args, interval, **options):
        provider = get_payment_provider("mixin")
        while True:
            try:
                result = snapshots_poll(provider=provider)
            except ProviderError as exc:
                if not interval:
                    raise CommandError(str(exc)) from None
                self.stderr.write(f"poll failed, retrying in {interval}s: {exc}")
            else:
                self.stdout.write(f"snapshots: {result.received} received, {result.new} new, "
                                  f"{result.malformed} malformed; cursor {result.cursor or '(start)'}")
            if not interval:
                return
            time.sleep(interval)
