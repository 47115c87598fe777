"""``demo_status [--json]``: the live view of the newest demo order, once."""
import json

from django.core.management.base import BaseCommand

from demo.selectors import demo_view
from demo.view import render_screen


class Command(BaseCommand):
    help = "Show the demo order: state, open orders, fills, inventory, PnL, tick latency, intents in flight."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, **options):
        view = demo_view()
        if options["json"]:
            self.stdout.write(json.dumps(view, sort_keys=True))
            return
        self.stdout.write(render_screen(view, header=[]), ending="")
