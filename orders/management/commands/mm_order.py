"""``mm_order create ...``: create an order intent; prints order id, memo and required amounts as JSON."""
import json

from django.core.exceptions import ValidationError

from mmproject.cli import OperatorCommand, UsageError, uuid_argument
from orders.errors import OrderError
from orders.selectors import order_summary
from orders.services import order_create
from strategy import params as order_params


class Command(OperatorCommand):
    help = ("Market-making orders. `create` makes an order intent in payment_pending and prints its id, memo and "
            "required amounts as JSON; `show` prints an order and its state history as JSON. Exit 2 on bad "
            "input (unknown order, unknown or disabled pair, invalid amount).")
    domain_errors = (OrderError,)

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create an order intent")
        create.add_argument("--user", required=True, help="Mixin user id of the payer")
        create.add_argument("--pair", required=True, type=uuid_argument, help="pair id (UUID)")
        create.add_argument("--base-amount", required=True)
        create.add_argument("--quote-amount", required=True)
        # One option per strategy parameter (--bid-spread for bid_spread ...), checked as strategy.params
        # declares it; one left out is not passed, so the parameter's default applies.
        for param in order_params.PARAMS:
            args, kwargs = param.argument()
            create.add_argument(*args, **kwargs)
        show = sub.add_parser("show", help="an order's summary and its state history")
        show.add_argument("order_id", type=uuid_argument, help="the order id (UUID)")

    def handle(self, *args, action, **o):
        if action == "show":
            self.stdout.write(json.dumps(self._show(o["order_id"]), sort_keys=True))
            return
        order = order_create(
            user_id=o["user"], pair_id=o["pair"], base_amount=o["base_amount"], quote_amount=o["quote_amount"],
            by="command:mm_order",
            **{name: o[name] for name in order_params.PARAM_NAMES if o[name] is not None},
        )
        self.stdout.write(json.dumps(order_summary(order=order), sort_keys=True))

    @staticmethod
    def _show(order_id: str) -> dict:
        from orders.models import MarketMakingOrder

        try:
            order = MarketMakingOrder.objects.select_related("pair", "payment").get(order_id=order_id)
        except (MarketMakingOrder.DoesNotExist, ValueError, ValidationError):
            raise UsageError(f"no market-making order {order_id}") from None
        summary = order_summary(order=order)
        summary["reason"] = order.reason
        summary["history"] = [
            {"at": t.at.isoformat(), "from": t.from_state, "to": t.to_state, "by": t.by, "reason": t.reason}
            for t in order.transitions.order_by("at", "id")
        ]
        return summary
