"""The error policy: what to do after a ccxt error, keyed by ccxt's error classes (never message text).

The table is searched along the exception's class hierarchy, so a leaf class (RequestTimeout)
wins over its parents (NetworkError, OperationFailed). Each row gives the action for a read
and for a write (order create/cancel): a write whose outcome is unknown (timeout, 5xx, broken
connection, exchange-side internal error) is *ambiguous* and must be looked up by client order
id before anything else; it is never resent blindly. A network error is never "order not found".
"""
import enum
from dataclasses import dataclass

import ccxt
from celery.utils.time import get_exponential_backoff_interval


class Action(enum.StrEnum):
    RETRY = "retry"  # nothing happened on the exchange; try again after a backoff
    LOOKUP = "lookup"  # ambiguous write: look the order up by client order id before anything else
    GONE = "gone"  # the order no longer exists on the exchange (filled or cancelled)
    FATAL = "fatal"  # this intent cannot succeed as asked; mark it failed, the strategy re-plans
    HALT = "halt"  # stop the strategy and alert an operator (credentials, market, account state)


class Operation(enum.StrEnum):
    READ = "read"
    CREATE = "create"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Rule:
    read: Action
    create: Action
    cancel: Action

    def for_operation(self, operation: Operation) -> Action:
        return getattr(self, operation.value)


def _all(action: Action) -> Rule:
    return Rule(action, action, action)


# Leaf classes first where they differ from their parents; every ccxt class resolves to a row.
POLICY: dict[type, Rule] = {
    # The request was refused before it was processed: safe to repeat after a pause.
    ccxt.RateLimitExceeded: _all(Action.RETRY),
    ccxt.DDoSProtection: _all(Action.RETRY),
    ccxt.OnMaintenance: _all(Action.RETRY),
    ccxt.InvalidNonce: _all(Action.RETRY),  # clock skew / receive window: the signed request was refused
    # Outcome unknown: a write may have happened.
    ccxt.RequestTimeout: Rule(Action.RETRY, Action.LOOKUP, Action.LOOKUP),
    ccxt.ExchangeNotAvailable: Rule(Action.RETRY, Action.LOOKUP, Action.LOOKUP),
    ccxt.NetworkError: Rule(Action.RETRY, Action.LOOKUP, Action.LOOKUP),
    ccxt.BadResponse: Rule(Action.RETRY, Action.LOOKUP, Action.LOOKUP),
    ccxt.CancelPending: Rule(Action.RETRY, Action.LOOKUP, Action.LOOKUP),
    ccxt.OperationFailed: Rule(Action.RETRY, Action.LOOKUP, Action.LOOKUP),
    # The order is not (or no longer) on the exchange.
    ccxt.OrderNotFound: Rule(Action.GONE, Action.FATAL, Action.GONE),
    # An order with our client id exists already: find it rather than place another.
    ccxt.DuplicateOrderId: Rule(Action.FATAL, Action.LOOKUP, Action.FATAL),
    # This order cannot be placed as asked (funds, filters, post-only would take...).
    ccxt.InsufficientFunds: _all(Action.FATAL),
    ccxt.InvalidOrder: _all(Action.FATAL),
    ccxt.BadRequest: _all(Action.FATAL),
    ccxt.ArgumentsRequired: _all(Action.FATAL),
    ccxt.NotSupported: _all(Action.FATAL),
    ccxt.NoChange: _all(Action.FATAL),
    # Nothing will work until a person acts.
    ccxt.BadSymbol: _all(Action.HALT),
    ccxt.AuthenticationError: _all(Action.HALT),  # incl. PermissionDenied, AccountSuspended
    ccxt.MarketClosed: _all(Action.HALT),
    ccxt.RestrictedLocation: _all(Action.HALT),
    ccxt.ManualInteractionNeeded: _all(Action.HALT),
    ccxt.ExchangeClosedByUser: _all(Action.HALT),
    ccxt.InvalidAddress: _all(Action.HALT),
    ccxt.OperationRejected: _all(Action.FATAL),
    ccxt.ExchangeError: _all(Action.FATAL),
    ccxt.BaseError: _all(Action.FATAL),
}

RETRY_BACKOFF_FACTOR_S = 1
RETRY_BACKOFF_MAX_S = 60


def error_action(error: BaseException, operation: Operation | str) -> Action:
    """The action for ``error`` raised by a ccxt call of kind ``operation`` (read, create, cancel).

    Raises TypeError for an exception that is not ccxt's: those are bugs, not exchange errors.
    """
    operation = Operation(operation)
    for klass in type(error).__mro__:
        rule = POLICY.get(klass)
        if rule is not None:
            return rule.for_operation(operation)
    raise TypeError(f"{type(error).__name__} is not a ccxt error; the error policy covers ccxt errors only")


def retry_delay_s(attempt: int) -> float:
    """Exponential backoff with full jitter for retry number ``attempt`` (0-based), capped."""
    return get_exponential_backoff_interval(
        factor=RETRY_BACKOFF_FACTOR_S, retries=attempt, maximum=RETRY_BACKOFF_MAX_S, full_jitter=True
    )
