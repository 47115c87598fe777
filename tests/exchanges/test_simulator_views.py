"""The simulator's HTTP errors carry Binance's codes and statuses (raw HTTP, as ccxt receives them)."""
import hashlib
import hmac
import time
from urllib.parse import urlencode

import pytest
import requests

from exchanges.simulator.services import simulator_set_faults

from .conftest import SIM_KEY, SIM_SECRET

pytestmark = pytest.mark.embedded


def _signed(base_url, method, path, params, *, key=SIM_KEY, secret=SIM_SECRET, timestamp=None):
    query = urlencode({**params, "timestamp": timestamp or int(time.time() * 1000)})
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    payload = f"{query}&signature={signature}"
    headers = {"X-MBX-APIKEY": key}
    if method == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return requests.post(f"{base_url}/api/v3/{path}", data=payload, headers=headers, timeout=10)
    return requests.request(method, f"{base_url}/api/v3/{path}?{payload}", headers=headers, timeout=10)


def _error(response):
    body = response.json()
    return response.status_code, body["code"], body["msg"]


def test_each_refusal_has_binance_status_and_code(simulator):
    url = simulator.base_url
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": "29000"}

    assert _error(_signed(url, "POST", "order", {**order, "quantity": "100"}))[:2] == (400, -2010)
    assert _signed(url, "POST", "order", {**order, "quantity": "0.001", "newClientOrderId": "dup"}).status_code == 200
    assert _error(_signed(url, "POST", "order", {**order, "quantity": "0.001", "newClientOrderId": "dup"})) == (
        400, -2010, "Duplicate order sent.")
    assert _error(_signed(url, "GET", "order", {"symbol": "BTCUSDT", "orderId": 99999}))[:2] == (400, -2013)
    assert _error(_signed(url, "DELETE", "order", {"symbol": "BTCUSDT", "orderId": 99999}))[:2] == (400, -2011)
    assert _error(_signed(url, "GET", "openOrders", {"symbol": "NOPE"}))[:2] == (400, -1121)
    assert _error(_signed(url, "POST", "order", {**order, "quantity": "0.0000011"}))[1:] == (-1013, "Filter failure: LOT_SIZE")
    assert _error(_signed(url, "GET", "account", {}, secret="wrong"))[:2] == (400, -1022)
    assert _error(_signed(url, "GET", "account", {}, key="nobody"))[:2] == (401, -2015)
    assert _error(_signed(url, "GET", "account", {}, timestamp=int(time.time() * 1000) - 60_000))[:2] == (400, -1021)
    assert _error(requests.get(f"{url}/api/v3/account", params={"timestamp": 1}, headers={"X-MBX-APIKEY": SIM_KEY},
                               timeout=10))[:2] == (400, -1102)


def test_injected_rate_limit_and_server_error_statuses(simulator):
    simulator_set_faults(account_label=simulator.sim_label, http_429=1, http_5xx=1)

    limited = _signed(simulator.base_url, "GET", "account", {})
    unavailable = _signed(simulator.base_url, "GET", "account", {})
    healthy = _signed(simulator.base_url, "GET", "account", {})

    assert _error(limited)[:2] == (429, -1003) and limited.headers["Retry-After"] == "1"
    assert unavailable.status_code == 503
    assert healthy.status_code == 200 and healthy.json()["accountType"] == "SPOT"


def test_changed_credentials_take_effect_at_once_and_refusals_are_not_counted(simulator):
    from exchanges.simulator.services import (
        simulator_account_ensure,
        simulator_max_concurrency,
        simulator_reset_concurrency,
    )

    url = simulator.base_url
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": "29000",
             "quantity": "0.001"}
    assert _signed(url, "POST", "order", {**order, "newClientOrderId": "cred-1"}).status_code == 200
    simulator_reset_concurrency(simulator.sim_label)

    simulator_account_ensure(label=simulator.sim_label, api_key=SIM_KEY, api_secret="rotated-secret")
    assert _error(_signed(url, "POST", "order", {**order, "newClientOrderId": "cred-2"}))[:2] == (400, -1022)
    assert _error(_signed(url, "DELETE", "order", {"symbol": "BTCUSDT", "origClientOrderId": "cred-1"}))[:2] == (
        400, -1022)
    assert simulator_max_concurrency(simulator.sim_label) == 0
    assert _signed(url, "POST", "order", {**order, "newClientOrderId": "cred-2"},
                   secret="rotated-secret").status_code == 200
    assert simulator_max_concurrency(simulator.sim_label) == 1

    simulator_account_ensure(label=simulator.sim_label, api_key="rotated-key", api_secret="rotated-secret")
    assert _error(_signed(url, "DELETE", "order", {"symbol": "BTCUSDT", "origClientOrderId": "cred-2"},
                          secret="rotated-secret"))[:2] == (401, -2015)
    canceled = _signed(url, "DELETE", "order", {"symbol": "BTCUSDT", "origClientOrderId": "cred-2"},
                       key="rotated-key", secret="rotated-secret")
    assert canceled.status_code == 200 and canceled.json()["status"] == "CANCELED"


def test_an_unknown_symbol_is_refused_before_missing_ids_and_before_an_injected_unknown_order(simulator):
    url = simulator.base_url
    simulator_set_faults(account_label=simulator.sim_label, unknown_order=1)

    assert _error(_signed(url, "DELETE", "order", {"symbol": "NOPE", "orderId": 1}))[:2] == (400, -1121)
    assert _error(_signed(url, "GET", "order", {"symbol": "NOPE"}))[:2] == (400, -1121)
    assert _error(_signed(url, "GET", "order", {"symbol": "BTCUSDT"}))[:2] == (400, -1102)
    assert _error(_signed(url, "GET", "order", {"symbol": "BTCUSDT", "orderId": 1}))[:2] == (400, -2013)  # the fault
    simulator_set_faults(account_label=simulator.sim_label)
    assert _error(_signed(url, "DELETE", "order", {"symbol": "NOPE", "orderId": 1}))[:2] == (400, -1121)
    assert _error(_signed(url, "POST", "order", {"symbol": "NOPE"}))[:2] == (400, -1121)
    assert _error(_signed(url, "POST", "order", {"symbol": "BTCUSDT", "side": "BUY"}))[1:] == (
        -1102, "Mandatory parameter 'type' was not sent, was empty/null, or malformed.")
