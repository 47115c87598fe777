"""``stop_mm ORDER_ID``: stop a market-making order (the same service as the task and the admin action)."""
import json

from django.core.management.base import CommandError

from mmproject.cli import OperatorCommand, uuid_argument
from orders.errors import IllegalTransition, OrderNotFound
from orders.outcomes import Outcome
from orders.services import order_stop


class Command(OperatorCommand):
    help = ("Stop a running market-making order: stop its strategy session, cancel its exchange orders, unlock its "
            "funds, set stopped. Exit 0 stopped (or already stopped), 1 still stopping after --wait, 2 bad input "
            "(not a UUID, unknown order, an order that cannot be stopped from its state).")
    domain_errors = (OrderNotFound, IllegalTransition)

    def add_arguments(self, parser):
        parser.add_argument("order_id", type=uuid_argument, help="the order id (UUID)")
        parser.add_argument("--reason", default="stopped by operator (stop_mm command)")
        parser.add_argument("--wait", type=float, default=60.0,
                            help="seconds to keep cancelling and confirming before giving up (default 60)")
        parser.add_argument("--json", action="store_true", help='print {"order_id": ..., "outcome": ...}')

    def handle(self, *args, order_id, reason, wait, **options):
        outcome = order_stop(order_id=order_id, by="command:stop_mm", reason=reason, wait_s=wait)
        if options["json"]:
            self.stdout.write(json.dumps({"order_id": order_id, "outcome": outcome}))
        if outcome == Outcome.STOPPING:
            raise CommandError(f"order {order_id}: orders are still open or in flight on the exchange after "
                               f"{wait:g}s; the order stays 'stopping' (run stop_mm again, or see the logs)")
        if not options["json"]:
            self.stdout.write(f"order {order_id}: {'stopped' if outcome == 'stopped' else 'already stopped'}")
