"""``poll_snapshots``: read new snapshots from the Mixin provider (cursor persisted), once or in a loop."""
import time

from django.core.management.base import BaseCommand, CommandError

from orders.errors import ProviderError
from orders.services.polling import snapshots_poll_leased


class Command(BaseCommand):
    help = "Poll the Mixin API for the bot's new snapshots and queue their processing."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=0,
                            help="seconds between polls; 0 polls once and exits")

    def handle(self, *args, interval, **options):
        while True:
            try:
                # Under the poller's lease: never beside beat's poll_mixin_snapshots on the same page.
                result = snapshots_poll_leased(holder="command:poll_snapshots")
            except ProviderError as exc:
                if not interval:
                    raise CommandError(str(exc)) from None
                self.stderr.write(f"poll failed, retrying in {interval}s: {exc}")
            else:
                if result is None:
                    self.stdout.write("snapshots: another poller holds the lease (beat's poll_mixin_snapshots); "
                                      "nothing read")
                    if not interval:
                        return
                    time.sleep(interval)
                    continue
                self.stdout.write(f"snapshots: {result.received} received, {result.new} new, "
                                  f"{result.malformed} malformed; cursor {result.cursor or '(start)'}")
            if not interval:
                return
            time.sleep(interval)
