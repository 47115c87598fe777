"""Serve the exchange simulator on 127.0.0.1:PORT, with an account and markets from the environment.

SIM_API_KEY / SIM_API_SECRET: the account's credentials; SIM_BALANCES (e.g. USDT=100000,BTC=10):
its starting balances (set once; --reset-balances sets them again); SIM_SYMBOLS (e.g.
BTC/USDT=30000,ETH/USDT=2000@0.0002): markets, their start prices and optionally their own
volatility; SIM_VOLATILITY (or --volatility): the standard deviation of the price's relative move
per second of the others (default 0.0001, ~1 bp a second); SIM_ACCOUNT_LABEL (default "sim").
``--exchange-account LABEL`` also makes the ExchangeAccount row our code trades through, for the ccxt id
``--exchange-id`` (MM_DEMO_EXCHANGE, default binance): one of the simulator's dialects.
"""
import logging
import os
from decimal import Decimal

import ccxt

from exchanges.errors import ExchangeSetupError
from exchanges.models import ExchangeAccount
from exchanges.services import exchange_account_create, exchange_capabilities_check
from exchanges.simulator import config
from exchanges.simulator.server import LOOPBACK, simulator_server
from exchanges.simulator.services import simulator_account_ensure, simulator_market_ensure
from mmproject.cli import OperatorCommand, UsageError

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "sim-api-key"
DEFAULT_API_SECRET = "sim-api-secret"
DEFAULT_BALANCES = "USDT=100000,BTC=10,ETH=100"
DEFAULT_SYMBOLS = "BTC/USDT=30000,ETH/USDT=2000"
# The ccxt ids whose REST dialect the simulator serves on one engine and port (docs/simulator.md).
SIMULATOR_EXCHANGES = ("binance", "okx")
DEFAULT_EXCHANGE = "binance"


def simulator_exchange_id() -> str:
    """MM_DEMO_EXCHANGE: the ccxt id the demo's account trades through (default binance)."""
    return (os.environ.get("MM_DEMO_EXCHANGE") or DEFAULT_EXCHANGE).strip().lower()


def simulator_exchange_account_ensure(*, label: str, exchange_id: str, api_key: str, api_secret: str,
                                      base_url: str) -> ExchangeAccount:
    """The ExchangeAccount ``label`` of ccxt id ``exchange_id`` on the simulator at ``base_url``: made through
    exchanges.services.exchange_account_create (the capability check), or updated after the same check.
    An exchange whose ccxt class requires a passphrase gets the simulator's (SIM_API_PASSPHRASE)."""
    if exchange_id not in SIMULATOR_EXCHANGES:
        raise ExchangeSetupError(f"the exchange simulator speaks {' and '.join(SIMULATOR_EXCHANGES)}, not "
                                 f"{exchange_id!r} (MM_DEMO_EXCHANGE / --exchange-id)")
    needs_passphrase = getattr(ccxt, exchange_id)().requiredCredentials.get("password")
    passphrase = config.api_passphrase() if needs_passphrase else ""
    account = ExchangeAccount.objects.filter(label=label).first()
    if account is None:
        return exchange_account_create(label=label, exchange_id=exchange_id, api_key=api_key, api_secret=api_secret,
                                       api_passphrase=passphrase, base_url=base_url)
    exchange_capabilities_check(exchange_id=exchange_id)
    account.exchange_id, account.api_key, account.base_url, account.enabled = exchange_id, api_key, base_url, True
    account.api_secret, account.api_passphrase = api_secret, passphrase
    account.save()
    logger.info("exchange_account_updated account_id=%s exchange_id=%s base_url=%s", account.pk, exchange_id, base_url)
    return account


def parse_pairs(text: str, what: str) -> dict[str, Decimal]:
    """"A=1,B=2.5" -> {"A": Decimal("1"), "B": Decimal("2.5")}."""
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{what}: expected NAME=VALUE, got {item!r}")
        try:
            pairs[name.strip().upper()] = Decimal(value.strip())
        except ArithmeticError:
            raise UsageError(f"{what}: {value!r} is not a decimal number") from None
    return pairs


def parse_symbols(text: str) -> dict[str, tuple[Decimal, Decimal | None]]:
    """"BTC/USDT=30000@0.002,ETH/USDT=2000" -> {"BTC/USDT": (30000, 0.002), "ETH/USDT": (2000, None)}."""
    symbols = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        price_text, at, volatility_text = value.partition("@")
        symbol = name.strip().upper()
        if not sep or "/" not in symbol:
            raise UsageError(f"SIM_SYMBOLS: expected BASE/QUOTE=START_PRICE[@VOLATILITY], got {item!r}")
        try:
            price = Decimal(price_text.strip())
        except ArithmeticError:
            raise UsageError(f"SIM_SYMBOLS: {price_text!r} is not a decimal number") from None
        if not price.is_finite() or price <= 0:
            raise UsageError(f"SIM_SYMBOLS: start price {price_text!r} of {symbol} is not positive")
        volatility = None
        if at:
            try:
                volatility = config.parse_volatility(volatility_text, f"SIM_SYMBOLS volatility of {symbol}")
            except ValueError as error:
                raise UsageError(str(error)) from None
        symbols[symbol] = (price, volatility)
    return symbols


class Command(OperatorCommand):
    help = ("Serve the exchange simulator (Binance and OKX dialects) on 127.0.0.1:PORT (account and markets "
            "from SIM_API_KEY, SIM_API_SECRET, SIM_BALANCES, SIM_SYMBOLS, SIM_VOLATILITY, SIM_ACCOUNT_LABEL). Exit 2 "
            "on a bad port or environment value.")

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--seed", type=int, default=0, help="seed of the price paths (new markets; --reset for existing)")
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--reset", action="store_true", help="put existing markets back to their start price and seed")
        parser.add_argument("--reset-balances", action="store_true", help="set balances to SIM_BALANCES again")
        parser.add_argument("--step-ms", type=int, default=None,
                            help="advance markets one step per this many ms of wall time (SIM_STEP_MS; 0: only on demand)")
        parser.add_argument("--volatility", default=None, metavar="FRACTION",
                            help="standard deviation of the price's relative move per second of every market without "
                                 "its own in SIM_SYMBOLS (SIM_VOLATILITY; default 0.0001, ~1 bp a second)")
        parser.add_argument("--exchange-account", metavar="LABEL",
                            help="also create/update an ExchangeAccount LABEL pointing at this simulator")
        parser.add_argument("--exchange-id", default=None, choices=SIMULATOR_EXCHANGES,
                            help="the ccxt id of --exchange-account (MM_DEMO_EXCHANGE; default binance)")
        parser.add_argument("--setup-only", action="store_true",
                            help="create the account and markets, then exit: the web process on PORT serves the API")

    def handle(self, *args, port, seed, threads, reset, reset_balances, step_ms, volatility, exchange_account,
               exchange_id, setup_only, **options):
        if not 0 < port < 65536:
            raise UsageError(f"--port {port} is not a TCP port")
        if step_ms is not None:
            os.environ["SIM_STEP_MS"] = str(step_ms)
        if volatility is not None:
            os.environ["SIM_VOLATILITY"] = volatility
        try:
            default_volatility = config.volatility()
        except ValueError as error:
            raise UsageError(f"{error} (--volatility / SIM_VOLATILITY)") from None
        api_key = os.environ.get("SIM_API_KEY") or DEFAULT_API_KEY
        api_secret = os.environ.get("SIM_API_SECRET") or DEFAULT_API_SECRET
        label = os.environ.get("SIM_ACCOUNT_LABEL") or "sim"
        balances = parse_pairs(os.environ.get("SIM_BALANCES") or DEFAULT_BALANCES, "SIM_BALANCES")
        symbols = parse_symbols(os.environ.get("SIM_SYMBOLS") or DEFAULT_SYMBOLS)
        for symbol, (price, own_volatility) in symbols.items():
            # The volatility is configuration: applied to existing markets too (their path's
            # position is kept unless --reset).
            simulator_market_ensure(symbol=symbol, start_price=price, seed=seed, reset=reset,
                                    volatility=default_volatility if own_volatility is None else own_volatility)
        simulator_account_ensure(label=label, api_key=api_key, api_secret=api_secret, balances=balances,
                                 reset_balances=reset_balances)
        base_url = f"http://{LOOPBACK}:{port}"
        if exchange_account:
            try:
                simulator_exchange_account_ensure(
                    label=exchange_account, exchange_id=exchange_id or simulator_exchange_id(), api_key=api_key,
                    api_secret=api_secret, base_url=base_url)
            except ExchangeSetupError as error:
                raise UsageError(str(error)) from None
        if setup_only:
            self.stdout.write(f"exchange simulator account {label!r} and markets {', '.join(symbols)} ready for {base_url}")
            return
        server = simulator_server(port=port, threads=threads)
        self.stdout.write(
            f"exchange simulator on {base_url} (account {label!r}, markets {', '.join(symbols)}); "
            f"point ccxt.binance's urls['api'] at {base_url}/api/v3 and {base_url}/sapi/v1, or ccxt.okx's "
            f"urls['api']['rest'] at {base_url}",
        )
        self.stdout.flush()
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
