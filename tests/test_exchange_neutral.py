"""The production code speaks ccxt's unified API: no exchange's own parameter, field or endpoint
names outside the one table of exchange-specific options (exchanges/dialects.py).

The simulator (which *is* a Binance- and OKX-compatible server), migrations, tests and benchmarks
are not production code that talks to an exchange, so they are not searched.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mmproject", "ledger", "exchanges", "intents", "strategy", "orders", "reconciliation", "api", "demo",
            "scripts")
EXEMPT = (Path("exchanges/dialects.py"), Path("exchanges/simulator"), Path("exchanges/urls.py"),
          Path("exchanges/management/commands/exchange_simulator.py"))

# Names only one exchange's raw API uses (Binance's parameters, response keys, filters, headers and
# private API prefix; OKX's), each found by the ccxt class that translates it.
EXCHANGE_NAMES = (
    "newClientOrderId", "origClientOrderId", "quoteQty", "quoteOrderQty", "cummulativeQuoteQty", "commissionAsset",
    "executedQty", "origQty", "filterType", "PRICE_FILTER", "LOT_SIZE", "MIN_NOTIONAL", "stepSize", "tickSize",
    "minNotional", "recvWindow", "X-MBX", "sapi", "exchangeInfo", "isBuyer", "isMaker", "txId", "clOrdId", "ordId",
    "instId", "OK-ACCESS",
)
PATTERN = re.compile(r"(?<!\w)(" + "|".join(re.escape(name) for name in EXCHANGE_NAMES) + r")(?!\w)")

pytestmark = pytest.mark.embedded


def production_files() -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts or any(relative == e or e in relative.parents for e in EXEMPT):
                continue
            files.append(path)
    return files


def exchange_specific_names(paths: list[Path]) -> list[str]:
    """``file:line: name`` of every exchange-specific name in ``paths``."""
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for match in PATTERN.finditer(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(1)}")
    return found


def test_no_exchange_specific_names_outside_the_options_table():
    found = exchange_specific_names(production_files())

    assert not found, "exchange-specific names outside exchanges/dialects.py (use ccxt's unified ones):\n" + \
        "\n".join(found)


def test_the_check_finds_a_name_and_says_where(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    sample = tmp_path / "strategy" / "sample.py"
    sample.parent.mkdir()
    sample.write_text('params = {}\nparams = {"newClientOrderId": cid}  # sapi\norigQtyish = BELOW_MIN_NOTIONAL\n')

    assert exchange_specific_names([sample]) == ["strategy/sample.py:2: newClientOrderId",
                                                  "strategy/sample.py:2: sapi"]


def test_the_search_covers_the_exchange_layer_but_not_the_table_or_the_simulator():
    files = {str(path.relative_to(ROOT)) for path in production_files()}

    assert {"exchanges/services.py", "intents/executor.py", "strategy/fills.py", "reconciliation/services.py"} <= files
    assert "exchanges/dialects.py" not in files
    assert not any(name.startswith("exchanges/simulator/") for name in files)
