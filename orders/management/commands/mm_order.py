"""``mm_order create ...``: create an order intent; prints order id, memo and required amounts as JSON."""
import json

from django.core.exceptions import ValidationError

from mmproject.cli import OperatorCommand, UsageError, uuid_argument
from orders.errors import OrderError
from orders.selectors import order_summary
from orders.services import order_create


# Options passed to order_create only when given.
STRATEGY_OPTIONS = ("order_level_spread", "inventory_skew_enabled", "inventory_target_base_pct",
                    "inventory_range_multiplier", "hanging_orders_enabled", "order_refresh_tolerance_pct",
                    "max_order_age_s")


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
        create.add_argument("--bid-spread", required=True, help="fraction, e.g. 0.001")
        create.add_argument("--ask-spread", required=True, help="fraction, e.g. 0.001")
        create.add_argument("--order-amount", required=True, help="base amount per order")
        create.add_argument("--order-refresh-time", type=int, default=15, help="seconds")
        create.add_argument("--number-of-layers", type=int, default=1)
        create.add_argument("--amount-change-per-layer", default="0")
        create.add_argument("--amount-change-type", default="fixed", choices=["fixed", "percentage"])
        create.add_argument("--price-source-type", default="mid_price")
        create.add_argument("--ceiling-price")
        create.add_argument("--floor-price")
        # Left out, the service's defaults apply (the strategy's behaviour before these were exposed).
        create.add_argument("--order-level-spread", help="fraction between layers (default: the bid spread)")
        create.add_argument("--inventory-skew-enabled", action="store_true", default=None,
                            help="skew buy and sell amounts towards the inventory target")
        create.add_argument("--inventory-target-base-pct", help="fraction of the value held in base (default 0.5)")
        create.add_argument("--inventory-range-multiplier", help="skew band in ladder amounts (default 1)")
        create.add_argument("--hanging-orders-enabled", action="store_true", default=None,
                            help="keep an order on the book once an opposite order has filled")
        create.add_argument("--order-refresh-tolerance-pct",
                            help="fraction within which an order is kept rather than replaced (default 0)")
        create.add_argument("--max-order-age-s", type=int, help="seconds before an order is replaced (default: none)")
        show = sub.add_parser("show", help="an order's summary and its state history")
        show.add_argument("order_id", type=uuid_argument, help="the order id (UUID)")

    def handle(self, *args, action, **o):
        if action == "show":
            self.stdout.write(json.dumps(self._show(o["order_id"]), sort_keys=True))
            return
        order = order_create(
            user_id=o["user"], pair_id=o["pair"], base_amount=o["base_amount"], quote_amount=o["quote_amount"],
            bid_spread=o["bid_spread"], ask_spread=o["ask_spread"], order_amount=o["order_amount"],
            order_refresh_time=o["order_refresh_time"], number_of_layers=o["number_of_layers"],
            amount_change_per_layer=o["amount_change_per_layer"], amount_change_type=o["amount_change_type"],
            price_source_type=o["price_source_type"], ceiling_price=o["ceiling_price"],
            floor_price=o["floor_price"], by="command:mm_order",
            **{name: o[name] for name in STRATEGY_OPTIONS if o[name] is not None},
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
