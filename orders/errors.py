"""Domain errors of the order lifecycle; each says what went wrong in words an operator can act on."""


class OrderError(Exception):
    """Base class of every order-lifecycle error."""


class OrderNotFound(OrderError):
    """No market-making order has that id."""


class PairNotFound(OrderError):
    """No market-making pair has that id."""


class PairDisabled(OrderError):
    """The pair exists but is disabled: no new orders."""


class InvalidOrderRequest(OrderError, ValueError):
    """An order request with a missing or invalid parameter."""


class IllegalTransition(OrderError):
    """The order is not in a state that allows the requested transition."""

    def __init__(self, message: str, *, order_id: str = "", state: str = "", transition: str = ""):
        super().__init__(message)
        self.order_id = order_id
        self.state = state
        self.transition = transition


class WithdrawalNotConfigured(OrderError):
    """The order or pair lacks what the withdrawal stage needs (exchange account, asset mapping)."""


class ProviderError(OrderError):
    """Base class of payment-provider errors."""


class TransferRejected(ProviderError):
    """The provider refused the transfer for good (bad recipient, insufficient funds): compensate."""


class TransferUncertain(ProviderError):
    """The transfer's outcome is unknown (timeout, 5xx): retry with the same request id, never compensate."""


class InvalidSnapshot(OrderError, ValueError):
    """A snapshot record that lacks a field or carries a malformed one; it is not stored."""


class ExchangeUnavailable(OrderError):
    """The exchange could not answer now (network, rate limit, maintenance): the job retries later."""


class InvalidParamChange(InvalidOrderRequest):
    """A parameter change refused: ``errors`` maps each bad parameter (``non_field_errors`` for the
    whole set, e.g. a floor above the ceiling) to its messages. Nothing was changed."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(message for messages in errors.values() for message in messages))
        self.errors = errors


class OrderFinished(OrderError):
    """The order is stopped, refunded or failed: nothing of it runs any more, so it is not edited."""

    def __init__(self, message: str, *, order_id: str, state: str):
        super().__init__(message)
        self.order_id = order_id
        self.state = state


class PayoutNotPossible(OrderError):
    """A payout cannot start or go on: the order is not stopped, the funds are kept on the exchange by the
    operator, the exchange cannot withdraw, or the payment provider cannot receive. The message says which."""
