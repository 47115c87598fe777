"""Errors of the simulator. ``SimulatorApiError`` carries Binance's error code and HTTP status."""


class SimulatorError(Exception):
    """Base class of the simulator's errors."""


class SimulatorApiError(SimulatorError):
    """An error the HTTP API returns as Binance does: ``{"code": code, "msg": msg}`` with ``status``.

    ``reason`` names the case whatever the dialect (e.g. "insufficient_balance"): the OKX dialect
    (okx_errors.py) answers it with OKX's own code.
    """

    def __init__(self, code: int, msg: str, status: int = 400, reason: str = "bad_request"):
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.reason = reason


class UnknownDepositAddress(SimulatorError):
    """No simulator account owns this deposit address; fetch it with exchange_deposit_address first."""


class TransferConflict(SimulatorError):
    """A transfer with this tx_id was already received with a different address, asset or amount."""


class UnknownSimulatorMarket(SimulatorError):
    """The simulator has no market with this symbol; add it with SIM_SYMBOLS or simulator_market_ensure."""


class UnknownSimulatorAccount(SimulatorError):
    """The simulator has no account with this label."""


# Binance's codes and messages, as its spot API returns them (ccxt maps them to its error classes).
def invalid_symbol():
    return SimulatorApiError(-1121, "Invalid symbol.", reason="invalid_symbol")


def bad_signature():
    return SimulatorApiError(-1022, "Signature for this request is not valid.")


def bad_api_key():
    return SimulatorApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def outside_recv_window():
    return SimulatorApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def insufficient_balance():
    return SimulatorApiError(-2010, "Account has insufficient balance for requested action.", reason="insufficient_balance")


def duplicate_order():
    return SimulatorApiError(-2010, "Duplicate order sent.", reason="duplicate_order")


def would_take():
    return SimulatorApiError(-2010, "Order would immediately match and take.", reason="would_take")


def order_does_not_exist():
    return SimulatorApiError(-2013, "Order does not exist.", reason="order_not_found")


def unknown_order_sent():
    return SimulatorApiError(-2011, "Unknown order sent.", reason="cancel_not_found")


def filter_failure(name: str):
    return SimulatorApiError(-1013, f"Filter failure: {name}", reason=f"filter_{name.lower()}")


def bad_parameter(name: str, detail: str = "was not valid"):
    return SimulatorApiError(-1100, f"Illegal characters found in parameter '{name}'; {detail}.", reason="bad_parameter")


def missing_parameter(name: str):
    return SimulatorApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
                             reason="missing_parameter")


def too_many_requests():
    return SimulatorApiError(-1003, "Too many requests; current limit is exceeded. Please use WebSocket Streams for live updates to avoid polling the API.", 429,
                             reason="rate_limit")


# Withdrawals (Binance's capital codes)
def withdraw_insufficient_balance():
    return SimulatorApiError(-4026, "You have insufficient balance.", reason="insufficient_balance")


def withdraw_not_above_fee():
    return SimulatorApiError(-4028, "The amount of withdrawal must be greater than the Commission.",
                             reason="withdraw_amount_not_above_fee")


def withdraw_illegal_address():
    return SimulatorApiError(-4033, "Illegal address.", reason="withdraw_bad_address")
