"""``stop_mm ORDER_ID``: stop a market-making order (the same service as the task and the admin action)."""
from django.core.management.base import BaseCommand, CommandError

from orders.errors import IllegalTransition, OrderNotFound
from orders.services import order_stop


class Command(BaseCommand):
    help = "Stop a running market-making order: stop its strategy session, unlock its funds, set stopped."

    def add_arguments(self, parser):
        parser.add_argument("order_id")
        parser.add_argument("--reason", default="stopped by operator (stop_mm command)")

    def handle(self, *args, order_id, reason, **options):
        try:
            outcome = order_stop(order_id=order_id, by="command:stop_mm", reason=reason)
        except (OrderNotFound, IllegalTransition) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"order {order_id}: {'stopped' if outcome == 'stopped' else 'already stopped'}")
