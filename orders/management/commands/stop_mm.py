"""``stop_mm ORDER_ID``: stop a market-making order (the same service as the task and the admin action)."""
from django.core.management.base import BaseCommand, CommandError

from orders.errors import IllegalTransition, OrderNotFound
from orders.services import order_stop


class Command(BaseCommand):
    help = "Stop a running market-making order: stop its strategy session, unlock its funds, set stopped."

    def add_arguments(self, parser):
        parser.add_argument("order_id")
        parser.add_argument("--reason", default="stopped by operator (stop_mm command)")
        parser.add_argument("--wait", type=float, default=60.0,
                            help="seconds to keep cancelling and confirming before giving up (default 60)")

    def handle(self, *args, order_id, reason, wait, **options):
        try:
            outcome = order_stop(order_id=order_id, by="command:stop_mm", reason=reason, wait_s=wait)
        except (OrderNotFound, IllegalTransition) as exc:
            raise CommandError(str(exc)) from None
        if outcome == "stopping":
            raise CommandError(f"order {order_id}: orders are still open or in flight on the exchange after "
                               f"{wait:g}s; the order stays 'stopping' (run stop_mm again, or see the logs)")
        self.stdout.write(f"order {order_id}: {'stopped' if outcome == 'stopped' else 'already stopped'}")
