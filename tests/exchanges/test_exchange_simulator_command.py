"""`manage.py exchange_simulator` as its own process: account and markets from SIM_* variables."""
import socket
import subprocess
import sys
import time
from decimal import Decimal

import ccxt
import pytest
import requests

from exchanges.clients import point_urls

pytestmark = [pytest.mark.slow, pytest.mark.embedded]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def simulator_process(child_env, transactional_db, tmp_path):
    port = _free_port()
    env = {**child_env, "SIM_API_KEY": "cmd-key", "SIM_API_SECRET": "cmd-secret",
           "SIM_BALANCES": "USDT=5000,ETH=3", "SIM_SYMBOLS": "ETH/USDT=2000,SOL/USDT=150"}
    log = open(tmp_path / "simulator.log", "w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "exchange_simulator", "--port", str(port), "--seed", "3"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{base_url}/api/v3/time", timeout=1).raise_for_status()
            break
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"simulator did not start: {(tmp_path / 'simulator.log').read_text()}")
            time.sleep(0.2)
    yield base_url
    process.terminate()
    process.wait(timeout=10)


def test_command_serves_the_configured_account_and_markets_to_ccxt(simulator_process):
    binance = ccxt.binance({"apiKey": "cmd-key", "secret": "cmd-secret", "enableRateLimit": True,
                           "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                                       "fetchMargins": False}})
    binance.urls["api"] = point_urls(binance.urls["api"], simulator_process)

    binance.load_markets()
    balances = {b["asset"]: Decimal(b["free"]) for b in binance.fetch_balance()["info"]["balances"]}
    order = binance.create_order("ETH/USDT", "limit", "buy", "0.5", "1900", {"newClientOrderId": "cmd-1"})

    assert set(binance.symbols) == {"ETH/USDT", "SOL/USDT"}
    assert balances == {"USDT": Decimal("5000"), "ETH": Decimal("3")}
    assert order["status"] == "open"
    locked = {b["asset"]: Decimal(b["locked"]) for b in binance.fetch_balance()["info"]["balances"]}
    assert locked["USDT"] == Decimal("950")


@pytest.mark.django_db
def test_setup_only_prepares_account_markets_and_exchange_account_for_the_web_process(monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    from exchanges.models import ExchangeAccount, SimAccount, SimBalance, SimMarket

    monkeypatch.setenv("SIM_API_KEY", "web-key")
    monkeypatch.setenv("SIM_API_SECRET", "web-secret")
    monkeypatch.setenv("SIM_BALANCES", "USDT=70,BTC=0.5")
    monkeypatch.setenv("SIM_SYMBOLS", "BTC/USDT=25000")

    call_command("exchange_simulator", "--port", "8000", "--setup-only", "--exchange-account", "web-sim", stdout=StringIO())

    account = ExchangeAccount.objects.get(label="web-sim")
    assert (account.base_url, account.api_key, account.api_secret) == ("http://127.0.0.1:8000", "web-key", "web-secret")
    assert SimAccount.objects.get(label="sim").api_secret == "web-secret"
    assert SimMarket.objects.get(symbol="BTC/USDT").price == Decimal("25000")
    assert {b.asset: b.free for b in SimBalance.objects.all()} == {"USDT": Decimal("70"), "BTC": Decimal("0.5")}
