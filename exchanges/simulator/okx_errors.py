"""OKX v5 error codes of the simulator's OKX dialect, chosen from ccxt's okx ``exceptions`` map so ccxt
raises the class it raises against the real exchange (noted beside each code)."""
from .errors import SimulatorApiError


class OkxApiError(Exception):
    """An error the OKX dialect answers as OKX does: ``{"code": code, "msg": msg, "data": []}`` with ``status``."""

    def __init__(self, code: str, msg: str, status: int = 200):
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


# Authentication (HTTP 401, as OKX answers them): ccxt AuthenticationError, 50102 InvalidNonce.
def missing_header(name: str, code: str) -> OkxApiError:
    return OkxApiError(code, f'Request header "{name}" can not be empty.', 401)


def timestamp_expired() -> OkxApiError:
    return OkxApiError("50102", "Timestamp request expired.", 401)


def passphrase_incorrect() -> OkxApiError:
    return OkxApiError("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.', 401)


def invalid_key() -> OkxApiError:
    return OkxApiError("50111", "Invalid OK-ACCESS-KEY.", 401)


def invalid_timestamp() -> OkxApiError:
    return OkxApiError("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)


def invalid_sign() -> OkxApiError:
    return OkxApiError("50113", "Invalid Sign.", 401)


def rate_limited() -> OkxApiError:
    return OkxApiError("50011", "Too Many Requests", 429)  # RateLimitExceeded


def bad_json() -> OkxApiError:
    return OkxApiError("50002", "JSON syntax error")  # BadRequest


def parameter_error(name: str) -> OkxApiError:
    return OkxApiError("51000", f"Parameter {name} error")  # BadRequest


def instrument_not_found() -> OkxApiError:
    return OkxApiError("51001", "Instrument ID or Spread ID doesn't exist.")  # BadSymbol


def order_not_found() -> OkxApiError:
    return OkxApiError("51603", "Order does not exist")  # OrderNotFound


def currency_not_found() -> OkxApiError:
    return OkxApiError("51012", "Token does not exist.")  # BadSymbol


CANCEL_NOT_FOUND = ("51400", "Order cancellation failed as the order has been filled, canceled or does not exist.")
CANCEL_ALREADY_CANCELED = ("51401", "Order cancellation failed as the order has been canceled.")
CANCEL_ALREADY_FILLED = ("51402", "Order cancellation failed as the order has been completed.")

# The engine's refusals (SimulatorApiError.reason) as the (sCode, sMsg) of one order of a place or
# cancel request, or the code of any other request.
_BY_REASON = {
    "invalid_symbol": ("51001", "Instrument ID or Spread ID doesn't exist."),  # BadSymbol
    "insufficient_balance": ("51008", "Order failed. Insufficient balance."),  # InsufficientFunds
    "duplicate_order": ("51016", "Duplicated clOrdId"),  # InvalidOrder
    "order_not_found": ("51603", "Order does not exist"),  # OrderNotFound
    "cancel_not_found": CANCEL_NOT_FOUND,  # OrderNotFound
    "filter_price_filter": ("51006", "Order price is not within the price limit or not a multiple of tickSz."),
    "filter_lot_size": ("51121", "Order quantity must be a multiple of the lot size (and within minSz, maxLmtSz)."),
    "filter_notional": ("51020", "Your order should meet or exceed the minimum order amount."),  # InvalidOrder
    "rate_limit": ("50011", "Too Many Requests"),
}


def okx_code(error: SimulatorApiError) -> tuple[str, str]:
    """(code, message) of an engine refusal; anything not listed is a parameter error (51000)."""
    return _BY_REASON.get(error.reason, ("51000", f"Parameter error: {error.msg}"))


def from_engine(error: SimulatorApiError) -> OkxApiError:
    code, msg = okx_code(error)
    return OkxApiError(code, msg, 429 if code == "50011" else 200)
