"""``mm_lifecycle_diagram``: print the order state diagram (Mermaid) generated from the FSM."""
from django.core.management.base import BaseCommand

from orders.diagram import state_diagram


class Command(BaseCommand):
    help = "Print the MarketMakingOrder state diagram (Mermaid), generated from the FSM transitions."

    def handle(self, *args, **options):
        self.stdout.write(state_diagram(), ending="")
