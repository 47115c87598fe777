"""Every log line that concerns an order carries ``order_id=...``, whoever logs it.

A log-record factory (so it holds under Django's and Celery's own handlers alike) appends
`` order_id=<id>`` to a record that lacks one when the order is known:

- bound for the current task or call: a lifecycle job whose first argument is the order id
  (Celery ``task_prerun``/``task_postrun``), or ``with order_log_context(order_id):``;
- or named by the line itself in the project's own keys: a ledger reference ``ref=mm_order:<id>``
  or a strategy key ``strategy_key=mm:<id>`` (intents.ids.strategy_key).

``install()`` runs once per process from ``mmproject/__init__.py``.
"""
from __future__ import annotations

import contextvars
import logging
import re
from contextlib import contextmanager

_order_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("mm_log_order_id", default=None)
_NAMED = re.compile(r"\b(?:ref=mm_order:|strategy_key=mm:)([0-9a-fA-F-]{36})\b")
# Lifecycle jobs (mmproject/celery.py) whose first argument is an order id.
ORDER_ID_JOBS = frozenset({"check_payment_complete", "withdraw_to_exchange", "monitor_mixin_withdrawal",
                           "join_campaign", "start_mm", "stop_mm", "withdraw_to_user"})
_installed = False


@contextmanager
def order_log_context(order_id):
    """Lines logged inside (in this thread or task) carry ``order_id=<order_id>``; None binds nothing."""
    token = _order_id.set(str(order_id) if order_id else _order_id.get())
    try:
        yield
    finally:
        _order_id.reset(token)


def order_id_of_job(task_name: str, args) -> str | None:
    """The order id a lifecycle job is about, from its name and positional arguments."""
    return str(args[0]) if task_name in ORDER_ID_JOBS and args else None


def _order_id_for(record: logging.LogRecord) -> str | None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: logging reports it when the line is emitted
        return None
    if "order_id=" in message:
        return None
    bound = _order_id.get()
    if bound:
        return bound
    named = _NAMED.search(message)
    return named.group(1) if named else None


def install() -> None:
    """Wrap the log-record factory and bind lifecycle jobs' order ids (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        if isinstance(record.msg, str):
            order_id = _order_id_for(record)
            if order_id:
                record.msg = f"{record.getMessage()} order_id={order_id}"
                record.args = ()
        return record

    logging.setLogRecordFactory(factory)

    from celery.signals import task_postrun, task_prerun

    tokens = {}

    def bind(task_id=None, task=None, args=None, **kwargs):
        order_id = order_id_of_job(getattr(task, "name", ""), args)
        if order_id:
            tokens[task_id] = _order_id.set(order_id)

    def unbind(task_id=None, **kwargs):
        token = tokens.pop(task_id, None)
        if token is not None:
            try:
                _order_id.reset(token)
            except ValueError:  # set in another context (a pool that runs prerun elsewhere): nothing to undo here
                pass

    task_prerun.connect(bind, weak=False)
    task_postrun.connect(unbind, weak=False)
