"""``demo_setup --exchange-url URL [--json]``: the demo's login, exchange account, pair and paid order."""
import json
import os

from django.core.management.base import BaseCommand, CommandError

from demo.errors import DemoError
from demo.services import demo_setup
from exchanges.management.commands.exchange_simulator import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    SIMULATOR_EXCHANGES,
    simulator_exchange_id,
)


class Command(BaseCommand):
    help = ("Set up the local demo (idempotent): an operator superuser (DEMO_ADMIN_USER / DEMO_ADMIN_PASSWORD), "
            "an exchange account on the simulator at --exchange-url (SIM_API_KEY / SIM_API_SECRET; ccxt id from "
            "--exchange-id or MM_DEMO_EXCHANGE, default binance), the BTC/USDT "
            "pair, and a demo order paid with local snapshots through ingest_snapshots.")

    def add_arguments(self, parser):
        parser.add_argument("--exchange-url", required=True, help="the exchange simulator's root, e.g. http://127.0.0.1:8700")
        parser.add_argument("--exchange-id", choices=SIMULATOR_EXCHANGES, default=None,
                            help="the ccxt class the demo account trades through (MM_DEMO_EXCHANGE; default binance)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, exchange_url, exchange_id, **options):
        try:
            result = demo_setup(exchange_url=exchange_url, exchange_id=exchange_id or simulator_exchange_id(),
                                api_key=os.environ.get("SIM_API_KEY") or DEFAULT_API_KEY,
                                api_secret=os.environ.get("SIM_API_SECRET") or DEFAULT_API_SECRET)
        except DemoError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), sort_keys=True))
            return
        self.stdout.write(f"demo order {result.order_id} ({'created' if result.order_created else 'reused'}, "
                          f"{result.state}); snapshots: {result.snapshots}")
        self.stdout.write(f"exchange account {result.exchange_account!r} ({result.exchange_id}) -> "
                          f"{result.exchange_url}")
        self.stdout.write(f"admin login: {result.admin_user} / {result.admin_password}")
