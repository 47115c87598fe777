"""Errors of the simulator. ``SimulatorApiError`` carries Binance's error code and HTTP status."""


class SimulatorError(Exception):
    """Base class of the simulator's errors."""


class SimulatorApiError(SimulatorError):
    """An error the HTTP API returns as Binance does: ``{"code": code, "msg": msg}`` with ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


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
    return SimulatorApiError(-1121, "Invalid symbol.")


def bad_signature():
    return SimulatorApiError(-1022, "Signature for this request is not valid.")


def bad_api_key():
    return SimulatorApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def outside_recv_window():
    return SimulatorApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def insufficient_balance():
    return SimulatorApiError(-2010, "Account has insufficient balance for requested action.")


def duplicate_order():
    return SimulatorApiError(-2010, "Duplicate order sent.")


def would_take():
    return SimulatorApiError(-2010, "Order would immediately match and take.")


def order_does_not_exist():
    return SimulatorApiError(-2013, "Order does not exist.")


def unknown_order_sent():
    return SimulatorApiError(-2011, "Unknown order sent.")


def filter_failure(name: str):
    return SimulatorApiError(-1013, f"Filter failure: {name}")


def bad_parameter(name: str, detail: str = "was not valid"):
    return SimulatorApiError(-1100, f"Illegal characters found in parameter '{name}'; {detail}.")


def missing_parameter(name: str):
    return SimulatorApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def too_many_requests():
    return SimulatorApiError(-1003, "Too many requests; current limit is exceeded. Please use WebSocket Streams for live updates to avoid polling the API.", 429)
