"""``mm_payout ORDER_ID [--keep]``: pay a stopped order's funds out to its user (withdraw from the exchange to
the bot, confirm arrival, transfer), or keep them on the exchange (no payout until asked)."""
import json

from mmproject.cli import OperatorCommand, uuid_argument
from orders.errors import IllegalTransition, OrderNotFound, PayoutNotPossible
from orders.models import MarketMakingOrder
from orders.services.payout import payout_keep, payout_request


class Command(OperatorCommand):
    help = ("Pay a stopped order out to its user: the withdraw_to_user job withdraws each asset from the exchange "
            "to the bot's deposit address, confirms arrival and transfers it (each step once). --keep holds the "
            "funds on the exchange instead (a running order: after its stop too). Exit 0 done or queued, 2 bad "
            "input (not a UUID, unknown order, an order that cannot be paid out from its state).")
    domain_errors = (OrderNotFound, IllegalTransition, PayoutNotPossible)

    def add_arguments(self, parser):
        parser.add_argument("order_id", type=uuid_argument, help="the order id (UUID)")
        parser.add_argument("--keep", action="store_true", help="keep the funds on the exchange: no payout")
        parser.add_argument("--json", action="store_true", help='print {"order_id": ..., "outcome": ...}')

    def handle(self, *args, order_id, keep, **options):
        if keep:
            payout_keep(order_id=order_id, by="command:mm_payout")
            outcome = "kept"
        else:
            payout_request(order_id=order_id, by="command:mm_payout")
            outcome = "queued"
        state = MarketMakingOrder.objects.values_list("state", flat=True).get(order_id=order_id)
        if options["json"]:
            self.stdout.write(json.dumps({"order_id": order_id, "outcome": outcome, "state": state}))
        elif keep:
            self.stdout.write(f"order {order_id} ({state}): funds kept on the exchange; `mm_payout {order_id}` "
                              "pays them out")
        else:
            self.stdout.write(f"order {order_id}: {state}; withdraw_to_user queued (see the order's payouts in "
                              "the admin)")
