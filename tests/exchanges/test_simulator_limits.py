"""The simulator's Binance-like request limits: weight per window, orders per 10 s, 429 then 418, the record."""
import time

import ccxt
import pytest
import requests

from exchanges.models import SimOrder, SimRateBlock, SimRateWindow
from exchanges.simulator import limits
from exchanges.simulator.limits import (
    ORDERS,
    REQUEST_WEIGHT,
    api_key_caller,
    rate_limits_info,
    weight_of,
)
from tests.exchanges.conftest import SIM_KEY

pytestmark = [pytest.mark.embedded]


@pytest.fixture
def raw_binance(simulator, settings):
    """A ccxt binance client with ccxt's own limiter only: the shared budget would wait out a 429."""
    settings.EXCHANGE_BUDGET_ENABLED = False
    return simulator.client()


def early_in_window(window_s: int, room_s: float) -> None:
    """Wait until at least ``room_s`` seconds are left in the current fixed window."""
    left = window_s - time.time() % window_s
    if left < room_s:
        time.sleep(left + 0.05)


def test_exchange_info_reports_the_limits_enforced(binance):
    # Given the default limits; when ccxt reads exchangeInfo
    info = binance.publicGetExchangeInfo()

    # Then its rateLimits are the ones the simulator enforces
    assert info["rateLimits"] == rate_limits_info() == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    ]


def test_endpoint_weights_follow_binance():
    assert weight_of("/api/v3/order", "POST", {}) == 1
    assert weight_of("/api/v3/order", "GET", {}) == 4
    assert weight_of("/api/v3/openOrders", "GET", {"symbol": "BTCUSDT"}) == 6
    assert weight_of("/api/v3/openOrders", "GET", {}) == 80
    assert [weight_of("/api/v3/depth", "GET", {"limit": n}) for n in (5, 100, 500, 1000, 5000)] == [5, 5, 25, 50, 250]
    assert weight_of("/api/v3/exchangeInfo", "GET", {}) == 20
    assert weight_of("/api/v3/account", "GET", {}) == 20
    assert weight_of("/api/v3/myTrades", "GET", {}) == 20
    assert weight_of("/api/v5/trade/order", "POST", {}) == 1


def test_over_the_weight_limit_429_with_retry_after_then_418_when_ignored(raw_binance, settings):
    binance = raw_binance
    # Given a limit of 60 weight a minute (three /account calls of weight 20)
    settings.SIM_REQUEST_WEIGHT_PER_MINUTE = 60
    early_in_window(60, 10)
    for _ in range(3):
        binance.privateGetAccount()

    # When a fourth call comes in the same minute
    with pytest.raises(ccxt.DDoSProtection):
        binance.privateGetAccount()

    # Then it is refused 429 with Retry-After (the seconds left in the window) and Binance's body
    retry_after = int(binance.last_response_headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert '"code":-1003' in binance.last_http_response.replace(" ", "")

    # and a fifth call before Retry-After is a 418: the caller is banned
    with pytest.raises(ccxt.DDoSProtection) as banned:
        binance.privateGetAccount()
    assert " 418 " in str(banned.value)
    assert int(binance.last_response_headers["Retry-After"]) == settings.SIM_BAN_S
    block = SimRateBlock.objects.get(caller=api_key_caller(SIM_KEY))
    assert (block.too_many, block.bans) == (1, 1)

    # and the record shows every call counted, the refused ones too
    window = SimRateWindow.objects.get(caller=api_key_caller(SIM_KEY), limit_type=REQUEST_WEIGHT)
    assert (window.limit, window.used, window.requests, window.refused) == (60, 100, 5, 2)


def test_over_the_orders_limit_429_code_1015(raw_binance, settings):
    binance = raw_binance
    # Given a limit of 2 new orders per 10 s
    settings.SIM_ORDERS_PER_10S = 2
    early_in_window(10, 6)
    for n in range(2):
        binance.create_order("BTC/USDT", "limit", "buy", 0.001, 20000 + n)

    # When a third order comes in the same 10 s
    with pytest.raises(ccxt.DDoSProtection):
        binance.create_order("BTC/USDT", "limit", "buy", 0.001, 20002)

    # Then it is refused 429 with Binance's "too many new orders"
    assert '"code":-1015' in binance.last_http_response.replace(" ", "")
    assert int(binance.last_response_headers["Retry-After"]) <= 10
    window = SimRateWindow.objects.get(caller=api_key_caller(SIM_KEY), limit_type=ORDERS)
    assert (window.limit, window.used, window.refused) == (2, 3, 1)
    assert SimOrder.objects.count() == 2


def test_okx_paths_are_refused_the_okx_way(simulator, settings):
    # Given a limit of 2 weight a 60 s window, and a caller on OKX's paths
    settings.SIM_REQUEST_WEIGHT_PER_MINUTE = 2
    early_in_window(60, 10)
    url = f"{simulator.base_url}/api/v5/public/time"
    headers = {"OK-ACCESS-KEY": "okx-limits-key"}
    for _ in range(2):
        assert requests.get(url, headers=headers, timeout=5).status_code != 429

    # When a third request comes
    refused = requests.get(url, headers=headers, timeout=5)

    # Then it is OKX's rate-limit answer
    assert refused.status_code == 429
    assert refused.json()["code"] == "50011"
    assert int(refused.headers["Retry-After"]) >= 1


def test_limits_off_serve_everything(binance, settings):
    # Given the limits off (a benchmark that measures something else) and a limit of 1
    settings.SIM_RATE_LIMITS_ENABLED = False
    settings.SIM_REQUEST_WEIGHT_PER_MINUTE = 1
    recorded = list(SimRateWindow.objects.values_list("used", flat=True))

    # When three calls of weight 20 come: then all are served and none is recorded
    for _ in range(3):
        binance.privateGetAccount()
    assert list(SimRateWindow.objects.values_list("used", flat=True)) == recorded


def test_a_shorter_window_keeps_the_rate(settings):
    settings.SIM_REQUEST_WEIGHT_WINDOW_S = 10
    assert limits.current_limits().weight == 1000
    assert rate_limits_info()[0] == {"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": 10,
                                     "limit": 1000}
