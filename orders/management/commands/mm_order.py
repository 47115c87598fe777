"""``mm_order create ...``: create an order intent; prints order id, memo and required amounts as JSON.
``mm_order edit ORDER_ID --bid-spread ...``: change strategy parameters of an order; prints what changed.
``mm_order show ORDER_ID``: the order and its state history."""
import argparse
import json

from django.core.exceptions import ValidationError

from mmproject.cli import OperatorCommand, UsageError, uuid_argument
from orders.errors import OrderError
from orders.selectors import order_summary
from orders.services import order_create, order_params_update
from strategy import params as order_params


class Command(OperatorCommand):
    help = ("Market-making orders. `create` makes an order intent in payment_pending and prints its id, memo and "
            "required amounts as JSON; `edit` changes strategy parameters of an order that is not finished "
            "and prints its parameters and the changes recorded as JSON; `show` prints an order, its polling job "
            "chain and its state history as JSON. Exit 2 on bad input (unknown or finished order, unknown or disabled "
            "pair, invalid amount or parameter).")
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
            create.add_argument(*args, **_escaped_help(kwargs))
        edit = sub.add_parser("edit", help="change strategy parameters of an order that is not finished (from its "
                                           "strategy's next run); only the options given are changed")
        edit.add_argument("order_id", type=uuid_argument, help="the order id (UUID)")
        edit.add_argument("--reason", default="", help="why, recorded with each change")
        for param in order_params.PARAMS:
            edit.add_argument(param.option, **_escaped_help(_edit_option(param)))
        show = sub.add_parser("show", help="an order's summary and its state history")
        show.add_argument("order_id", type=uuid_argument, help="the order id (UUID)")

    def handle(self, *args, action, **o):
        if action == "show":
            self.stdout.write(json.dumps(self._show(o["order_id"]), sort_keys=True))
            return
        if action == "edit":
            self.stdout.write(json.dumps(self._edit(o), sort_keys=True))
            return
        order = order_create(
            user_id=o["user"], pair_id=o["pair"], base_amount=o["base_amount"], quote_amount=o["quote_amount"],
            by="command:mm_order",
            **{name: o[name] for name in order_params.PARAM_NAMES if o[name] is not None},
        )
        self.stdout.write(json.dumps(order_summary(order=order), sort_keys=True))

    @staticmethod
    def _edit(o: dict) -> dict:
        # An option left out is absent (argparse.SUPPRESS), so an empty value can mean "none".
        changes = {name: o[name] for name in order_params.PARAM_NAMES if name in o}
        if not changes:
            raise UsageError("edit: give at least one parameter option (e.g. --bid-spread 0.001); see --help")
        update = order_params_update(order_id=o["order_id"], changes=changes, by="command:mm_order",
                                     reason=o["reason"])
        return update.summary()

    @staticmethod
    def _show(order_id: str) -> dict:
        from orders.models import MarketMakingOrder

        try:
            order = MarketMakingOrder.objects.select_related("pair", "payment").get(order_id=order_id)
        except (MarketMakingOrder.DoesNotExist, ValueError, ValidationError):
            raise UsageError(f"no market-making order {order_id}") from None
        summary = order_summary(order=order)
        summary["reason"] = order.reason
        # The order's polling job chain (orders.services.chains): which job, how many polls, alive until when.
        summary["job"] = {"name": order.job_name, "chain": order.job_chain, "attempts": order.job_attempts,
                          "lease_until": order.job_lease_until.isoformat() if order.job_lease_until else None}
        summary["history"] = [
            {"at": t.at.isoformat(), "from": t.from_state, "to": t.to_state, "by": t.by, "reason": t.reason}
            for t in order.transitions.order_by("at", "id")
        ]
        return summary


def _edit_option(param: order_params.Param) -> dict:
    """``mm_order edit``'s option of a parameter: ``create``'s, never required and absent unless given;
    a flag takes an explicit value too (``--hanging-orders-enabled false``)."""
    _, kwargs = param.argument()
    kwargs.pop("required", None)
    kwargs["default"] = argparse.SUPPRESS
    kwargs["help"] = param.help_text or param.name.replace("_", " ")
    if param.null:
        kwargs["help"] += " (empty: none)"
    if param.kind is order_params.Kind.BOOLEAN:
        del kwargs["action"]
        kwargs.update(nargs="?", const=True, metavar="true|false", type=lambda text: _flag(param, text))
    return kwargs


def _flag(param: order_params.Param, text: str) -> bool:
    try:
        return param.from_text(text)
    except order_params.ParamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _escaped_help(kwargs: dict) -> dict:
    # argparse formats help with %: the schema's "0.1%" would break --help.
    return {**kwargs, "help": kwargs["help"].replace("%", "%%")}
