"""Injected faults surface as the ccxt error classes the policy expects, mapped to the right action."""
import ccxt
import pytest

from exchanges.policy import Action, Operation, error_action, retry_delay_s
from exchanges.simulator.services import simulator_set_faults

pytestmark = pytest.mark.embedded


def _raised(call):
    try:
        call()
    except ccxt.BaseError as error:
        return error
    raise AssertionError("the call succeeded but a fault was injected")


def test_http_429_is_ddos_protection_and_retried(simulator, binance):
    simulator_set_faults(account_label=simulator.sim_label, http_429=1)

    error = _raised(lambda: binance.create_order("BTC/USDT", "limit", "buy", "0.001", "29000"))

    assert isinstance(error, ccxt.DDoSProtection)
    assert error_action(error, Operation.CREATE) == Action.RETRY
    assert binance.fetch_open_orders("BTC/USDT") == []  # refused, so nothing was placed


def test_http_5xx_is_exchange_not_available_retried_on_read_and_looked_up_on_write(simulator, binance):
    simulator_set_faults(account_label=simulator.sim_label, http_5xx=1)

    error = _raised(lambda: binance.fetch_balance())

    assert isinstance(error, ccxt.ExchangeNotAvailable)
    assert error_action(error, Operation.READ) == Action.RETRY
    assert error_action(error, Operation.CREATE) == Action.LOOKUP
    assert binance.fetch_balance()["info"]["balances"]  # one count only: the next call works


def test_transient_unknown_order_is_order_not_found_and_gone(simulator, binance):
    order = binance.create_order("BTC/USDT", "limit", "buy", "0.001", "29000", {"newClientOrderId": "mm-pol-1"})
    simulator_set_faults(account_label=simulator.sim_label, unknown_order=1)

    error = _raised(lambda: binance.fetch_order(order["id"], "BTC/USDT"))

    assert isinstance(error, ccxt.OrderNotFound)
    assert error_action(error, Operation.READ) == Action.GONE
    assert error_action(error, Operation.CANCEL) == Action.GONE
    assert binance.fetch_order(order["id"], "BTC/USDT")["status"] == "open"


def test_timeout_after_acceptance_is_ambiguous_and_the_lookup_finds_exactly_one_order(simulator):
    binance = simulator.client(timeout_ms=1000)
    simulator_set_faults(account_label=simulator.sim_label, timeout_after_accept_s=2)

    error = _raised(lambda: binance.create_order("BTC/USDT", "limit", "buy", "0.001", "29000",
                                                {"newClientOrderId": "mm-ambiguous-1"}))

    assert isinstance(error, ccxt.RequestTimeout)
    assert error_action(error, Operation.CREATE) == Action.LOOKUP
    simulator_set_faults(account_label=simulator.sim_label)
    found = binance.fetch_order(None, "BTC/USDT", {"origClientOrderId": "mm-ambiguous-1"})
    assert found["clientOrderId"] == "mm-ambiguous-1" and found["status"] == "open"
    assert [o["clientOrderId"] for o in binance.fetch_open_orders("BTC/USDT")] == ["mm-ambiguous-1"]


def test_added_latency_delays_signed_calls(simulator, binance):
    simulator_set_faults(account_label=simulator.sim_label, latency_ms=300)

    started = binance.milliseconds()
    binance.fetch_balance()

    assert binance.milliseconds() - started >= 300


def test_connection_refused_is_a_network_error_never_order_not_found(simulator):
    binance = simulator.client()
    binance.urls["api"] = {key: "http://127.0.0.1:9/api/v3" for key in binance.urls["api"]}

    error = _raised(lambda: binance.fetch_order("1", "BTC/USDT"))

    assert isinstance(error, ccxt.NetworkError) and not isinstance(error, ccxt.OrderNotFound)
    assert error_action(error, Operation.READ) == Action.RETRY
    assert error_action(error, Operation.CANCEL) == Action.LOOKUP


@pytest.mark.parametrize(
    ("error_class", "operation", "action"),
    [
        (ccxt.InsufficientFunds, Operation.CREATE, Action.FATAL),
        (ccxt.InvalidOrder, Operation.CREATE, Action.FATAL),
        (ccxt.OrderImmediatelyFillable, Operation.CREATE, Action.FATAL),
        (ccxt.DuplicateOrderId, Operation.CREATE, Action.LOOKUP),
        (ccxt.OrderNotFound, Operation.CANCEL, Action.GONE),
        (ccxt.AuthenticationError, Operation.READ, Action.HALT),
        (ccxt.PermissionDenied, Operation.CREATE, Action.HALT),
        (ccxt.BadSymbol, Operation.CREATE, Action.HALT),
        (ccxt.InvalidNonce, Operation.CREATE, Action.RETRY),
        (ccxt.RateLimitExceeded, Operation.CANCEL, Action.RETRY),
        (ccxt.OnMaintenance, Operation.CREATE, Action.RETRY),
        (ccxt.RequestTimeout, Operation.CANCEL, Action.LOOKUP),
        (ccxt.NetworkError, Operation.READ, Action.RETRY),
    ],
)
def test_policy_table_by_leaf_class(error_class, operation, action):
    assert error_action(error_class("x"), operation) == action


def test_every_ccxt_error_class_has_an_action_and_other_exceptions_are_refused():
    classes = [c for c in vars(ccxt).values() if isinstance(c, type) and issubclass(c, ccxt.BaseError)]
    for klass in classes:
        for operation in Operation:
            assert error_action(klass("x"), operation) in Action
    with pytest.raises(TypeError):
        error_action(ValueError("not ccxt"), Operation.READ)


def test_retry_delay_grows_and_is_capped():
    assert all(0 <= retry_delay_s(attempt) <= 60 for attempt in range(20))
    assert max(retry_delay_s(10) for _ in range(50)) > 1
