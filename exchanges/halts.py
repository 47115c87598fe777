"""An exchange account's halt: the state that stops every session on the account after the exchange
answered with an error the policy classes ``halt`` (exchanges.policy: API key revoked, account
suspended), and the operator's resume once the cause is fixed.

Only the account's state is here; what a halt does to intents and orders (unsent creates superseded,
open orders left or stopped) is intents.halt.account_halt, which calls ``account_halt_set``.
"""
from __future__ import annotations

import logging

from django.utils import timezone

from .models import ExchangeAccount

logger = logging.getLogger(__name__)

REASON_MAX = 500


def account_halt_set(*, account_id: int, reason: str) -> bool:
    """Halt the account unless it is halted already (the first reason is kept); True when this call
    halted it. Logs ``event=account_halted`` (critical): the alert an operator acts on."""
    reason = reason[:REASON_MAX] or "halted"
    halted = ExchangeAccount.objects.filter(pk=account_id, halted_at__isnull=True).update(
        halted_at=timezone.now(), halt_reason=reason)
    if halted:
        logger.critical("event=account_halted account_id=%s reason=%s", account_id, reason)
    return bool(halted)


def account_resume(*, label: str, by: str) -> bool:
    """Clear the account's halt: its sessions plan and send again from the next tick. False when it
    was not halted. Raises ExchangeAccount.DoesNotExist for an unknown label."""
    account = ExchangeAccount.objects.get(label=label)
    resumed = ExchangeAccount.objects.filter(pk=account.pk, halted_at__isnull=False).update(
        halted_at=None, halt_reason="")
    if resumed:
        logger.warning("event=account_resumed account_id=%s label=%s by=%s was=%s", account.pk, label, by,
                       account.halt_reason)
    return bool(resumed)


def halted_accounts() -> list[dict]:
    """The halted accounts, oldest halt first: id, label, exchange, since when and why."""
    return [
        {"account_id": pk, "label": label, "exchange_id": exchange_id, "halted_at": at.isoformat(), "reason": reason}
        for pk, label, exchange_id, at, reason in ExchangeAccount.objects.filter(halted_at__isnull=False)
        .order_by("halted_at", "pk").values_list("pk", "label", "exchange_id", "halted_at", "halt_reason")
    ]
