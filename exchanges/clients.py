"""The ccxt client factory: one instance per exchange account per process, markets loaded once.

Markets are cached per (exchange, API endpoint) and shared by every account on that endpoint;
ccxt's own rate limiter is on. Exchange-specific options come from ``exchanges.dialects``; the
account's credentials go to ccxt under its own names (apiKey, secret, password, uid), and a
sandbox account switches ccxt to the exchange's test URLs before any other URL change. An account's ``base_url`` replaces the host of every API URL
of the exchange (how an account points at the simulator): nothing is sent to the real host.
"""
import logging
import threading
from urllib.parse import urlsplit, urlunsplit

import ccxt
from django.conf import settings

from .budget import attach_budget
from .dialects import exchange_options
from .errors import AccountDisabled, ExchangeSetupError
from .models import ExchangeAccount

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_clients: dict[int, tuple[tuple, ccxt.Exchange]] = {}
_markets: dict[tuple[str, bool, str], tuple[dict, dict]] = {}

DEFAULT_TIMEOUT_MS = 10000


def point_urls(urls, base_url: str):
    """``urls`` (ccxt's urls['api'], nested or not) with every host replaced by ``base_url``'s."""
    if isinstance(urls, dict):
        return {key: point_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http://", "https://")):
        base = urlsplit(base_url.rstrip("/"))
        parts = urlsplit(urls)
        return urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, parts.fragment))
    return urls


def build_exchange_client(account: ExchangeAccount, *, timeout_ms: int | None = None,
                          load_markets: bool = True) -> ccxt.Exchange:
    """A new ccxt instance for ``account`` (not cached); markets come from the shared cache."""
    try:
        klass = getattr(ccxt, account.exchange_id)
    except AttributeError:
        raise ValueError(f"ccxt has no exchange {account.exchange_id!r}") from None
    config = {
        "apiKey": account.api_key,
        "secret": account.api_secret,
        "enableRateLimit": True,
        "timeout": timeout_ms or getattr(settings, "EXCHANGE_TIMEOUT_MS", DEFAULT_TIMEOUT_MS),
        "options": exchange_options(account.exchange_id),
    }
    if account.api_passphrase_encrypted:
        config["password"] = account.api_passphrase
    if account.uid:
        config["uid"] = account.uid
    client = klass(config)
    if account.sandbox:
        if not client.urls.get("test"):
            raise ExchangeSetupError(f"{account.exchange_id} has no sandbox in ccxt; clear the sandbox flag of "
                                     f"account {account.label!r}")
        client.set_sandbox_mode(True)
    if account.base_url:
        client.urls["api"] = point_urls(client.urls["api"], account.base_url)
    # The account's request budget, shared by every process (exchanges/budget.py), in place of ccxt's
    # per-process limiter: before the markets load, so that request is counted too.
    attach_budget(client, account)
    if load_markets:
        _load_shared_markets(client, account)
    return client


def _load_shared_markets(client: ccxt.Exchange, account: ExchangeAccount) -> None:
    key = (account.exchange_id, account.sandbox, account.base_url)
    cached = _markets.get(key)
    if cached is None:
        client.load_markets()
        _markets[key] = (client.markets, client.currencies)
        logger.info("exchange_markets_loaded exchange_id=%s account_id=%s markets=%s", account.exchange_id,
                    account.pk, len(client.markets))
    else:
        client.set_markets(cached[0], cached[1])


def exchange_client(*, account_id: int) -> ccxt.Exchange:
    """The process's ccxt instance of account ``account_id`` (rebuilt when the account changed)."""
    return exchange_client_of(ExchangeAccount.objects.get(pk=account_id))


def exchange_client_of(account: ExchangeAccount) -> ccxt.Exchange:
    """As ``exchange_client``, for an account row already read (an intents batch reads its
    accounts in one statement)."""
    account_id = account.pk
    if not account.enabled:
        raise AccountDisabled(f"exchange account {account.label!r} (id {account.pk}) is disabled")
    fingerprint = (account.exchange_id, account.api_key, account.api_secret_encrypted,
                   account.api_passphrase_encrypted, account.uid, account.sandbox, account.base_url)
    with _lock:
        cached = _clients.get(account_id)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        client = build_exchange_client(account)
        _clients[account_id] = (fingerprint, client)
    logger.info("exchange_client_created account_id=%s exchange_id=%s", account_id, account.exchange_id)
    return client


def exchange_clients_clear() -> None:
    """Forget every cached client and market list (tests; after an exchange lists new markets)."""
    with _lock:
        _clients.clear()
        _markets.clear()
