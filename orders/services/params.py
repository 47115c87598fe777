"""Editing the strategy parameters of an order that is not finished: checked as at creation, recorded.

The order's row is the record of its parameters and the strategy cycle reads it on every run
(``strategy.order_rows``), so a change written here is what the session's next run quotes with; the
session is woken so that run is the next tick. ``order_refresh_time`` is the session's cadence too.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from django.db import transaction

from intents.ids import strategy_key
from ledger.amounts import canonical
from strategy import params as order_params
from strategy import pure_mm
from strategy.services import session_set_cadence, sessions_wake

from ..errors import InvalidParamChange, OrderFinished
from ..models import MarketMakingOrder, OrderState, ParamChange
from .transitions import order_lock

logger = logging.getLogger(__name__)

# Nothing runs for these any more: a parameter of theirs would never be read again.
FINISHED_STATES = (OrderState.STOPPED, OrderState.PAYING_OUT, OrderState.PAID_OUT, OrderState.REFUNDED,
                   OrderState.FAILED)
# The key of a problem of the whole set (as the order-create API's).
WHOLE_SET = "non_field_errors"


@dataclass(frozen=True)
class ParamsUpdate:
    """An edit's outcome: the order as it is now and the changes recorded (none: every value given
    was already the order's)."""

    order: MarketMakingOrder
    changes: tuple[ParamChange, ...]

    def summary(self) -> dict:
        """JSON-able: the order's id and state, every parameter's value, and the changes recorded."""
        return {
            "order_id": str(self.order.order_id),
            "state": self.order.state,
            "params": order_params_json(self.order),
            "changes": [{"name": c.name, "old": c.old_value, "new": c.new_value, "by": c.by, "reason": c.reason,
                         "at": c.at.isoformat()} for c in self.changes],
        }


def order_params_json(order: MarketMakingOrder) -> dict[str, Any]:
    """Every strategy parameter of ``order`` as the JSON API takes it (decimals as strings)."""
    return {name: _json(getattr(order, name)) for name in order_params.PARAM_NAMES}


def _json(value):
    return canonical(value) if isinstance(value, Decimal) else value


def param_value_text(value) -> str:
    """A parameter's value as a change records it: none, true/false, a decimal without trailing zeros."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return canonical(value) if isinstance(value, Decimal) else str(value)


def param_changes_clean(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Each named parameter's new value checked on its own (``strategy.params``); ``InvalidParamChange``
    names every unknown parameter and every bad value at once."""
    errors: dict[str, list[str]] = {}
    cleaned = {}
    for name, value in changes.items():
        if name not in order_params.BY_NAME:
            errors[name] = [f"{name} is not a strategy parameter"]
            continue
        try:
            cleaned[name] = order_params.clean(name, value)
        except order_params.ParamError as exc:
            errors[name] = [str(exc)]
    if errors:
        raise InvalidParamChange(errors)
    return cleaned


def order_params_update(*, order_id, changes: Mapping[str, Any], by: str, reason: str = "") -> ParamsUpdate:
    """Change strategy parameters of an order that is not finished, in one transaction: lock the order,
    check the values as order creation does (each on its own, then the whole set as the strategy would
    build it), write them and record each changed one (``ParamChange``). A value equal to the order's is
    not a change and is not recorded. A new ``order_refresh_time`` is also the session's cadence from
    its next run; after commit the session is woken, so its next run (the next tick) uses the new values.

    Raises ``OrderNotFound``, ``OrderFinished`` (stopped, refunded, failed) or ``InvalidParamChange``;
    in each case nothing is changed.
    """
    cleaned = param_changes_clean(changes)
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state in FINISHED_STATES:
            raise OrderFinished(
                f"order {order.order_id} is {order.state}: its strategy no longer runs, so its parameters "
                "cannot be changed", order_id=str(order.order_id), state=order.state)
        old = {name: getattr(order, name) for name in cleaned}
        changed = [name for name, value in cleaned.items() if value != old[name]]
        if not changed:
            return ParamsUpdate(order=order, changes=())
        for name in changed:
            setattr(order, name, cleaned[name])
        try:
            order_params.params_for(order)
        except pure_mm.StrategyInputError as exc:
            raise InvalidParamChange({WHOLE_SET: [f"the strategy refuses these parameters: {exc}"]}) from None
        order.save(update_fields=[*changed, "updated_at"])
        recorded = ParamChange.objects.bulk_create([
            ParamChange(order=order, name=name, old_value=param_value_text(old[name]),
                        new_value=param_value_text(cleaned[name]), by=by, reason=reason)
            for name in changed])
        if "order_refresh_time" in changed:
            session_set_cadence(order_id=order.order_id, cadence_s=order.order_refresh_time)
        key = strategy_key(order.order_id)
        transaction.on_commit(lambda: sessions_wake([key]))
    logger.info("event=order_params_updated order_id=%s by=%s changed=%s reason=%r", order.order_id, by,
                ",".join(f"{c.name}:{c.old_value}->{c.new_value}" for c in recorded), reason)
    return ParamsUpdate(order=order, changes=tuple(recorded))
