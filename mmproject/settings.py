"""Django settings, all read from the environment with safe defaults for the embedded run.

Embedded default: SQLite (immediate transactions, WAL) and kombu's filesystem broker under
``var/``. Production sets ``DATABASE_URL`` and ``CELERY_BROKER_URL``; nothing else changes.
"""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("MM_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-embedded-default-change-me")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "ledger",
    "exchanges",
    "orders",
    "strategy",
    "intents",
    "reconciliation",
    "demo",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The exchange simulator's request limits (429/418) on its API paths; nothing else is touched.
    "exchanges.simulator.limits.SimulatorRateLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mmproject.urls"
WSGI_APPLICATION = "mmproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mm.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so two writers never deadlock on a lock
    # upgrade; WAL lets readers run beside the one writer.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# PostgreSQL: the hot paths' statements (intents, the simulator's order requests, the ledger's
# mutation, the tick's due-sessions read) prepared once per connection (mmproject.sql).
# false for a pooler in transaction mode that cannot keep them (PgBouncer < 1.21).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ---------------------------------------------------------------------------
# Shared by every process: the database cache by default (its table is made by the api app's
# migration), Redis with e.g. CACHE_URL=redis://127.0.0.1:6379/2 (then the API's rate limit counts there).
CACHES = {"default": env.cache_url("CACHE_URL", default="dbcache://mm_cache")}
if CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
    # The default culls a third of the rows past 300 entries, live rate counters included.
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 100_000)
# JSON API: requests per user per fixed window of API_RATE_WINDOW_S seconds (then 429 + Retry-After).
API_RATE_LIMIT = env.int("API_RATE_LIMIT", default=60)
API_RATE_WINDOW_S = env.int("API_RATE_WINDOW_S", default=60)
# Where the API's rate-limit counters live (api/throttling.py): redis://... (INCR and PEXPIRE in one
# MULTI) or "database" (one upsert a request: its row lock counts concurrent requests one by one).
# Empty: CACHE_URL's Redis, else CELERY_BROKER_URL's Redis, else the database.
API_THROTTLE_URL = env.str("API_THROTTLE_URL", default="")
API_THROTTLE_KEY_PREFIX = env.str("API_THROTTLE_KEY_PREFIX", default="mm:api-rate")
# The user's API on Django REST framework (docs/api.md): bearer tokens of api.models.ApiToken, each bound
# to one Mixin user; JSON only; the body parsed with a nesting limit; errors as {"error", "errors"}.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.UserRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Market-making API",
    "DESCRIPTION": "Pairs, order intents and their payment state, history, strategy parameters, stop (docs/api.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
# Every task, declared once here: acknowledged after it ran, so a worker lost mid-task means redelivery
# (every task is idempotent); a message of a killed worker is requeued, not dropped.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=150)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Tests run tasks eagerly only where they say so; the default is a real broker.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Celery's Django fix-up closes the database connection before and after every task unless this
# is set; a worker then reconnects many times a second (a PostgreSQL backend started each time).
# It now closes only every this many tasks, and mmproject.celery closes a connection that is
# broken, in error or older than CONN_MAX_AGE around each task, as Django does around a request.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)

# --- Ledger ---------------------------------------------------------------------------
LEDGER_DEFAULT_SCALE = 8

# --- Strategy and intents (names from the contract) ---------------------------------
STRATEGY_EXECUTE_INTENTS = env.bool("STRATEGY_EXECUTE_INTENTS", default=True)
STRATEGY_INTENT_EXECUTION_DRIVER = env.str("STRATEGY_INTENT_EXECUTION_DRIVER", default="worker")
STRATEGY_TICK_SIZE_MS = env.int("STRATEGY_TICK_SIZE_MS", default=1000)
# A session woken because an order of its closed (a level is free) runs at once, between ticks
# (strategy.tick.refill_run), rather than at the next tick; false: at the next tick.
STRATEGY_REFILL_AT_ONCE = env.bool("STRATEGY_REFILL_AT_ONCE", default=True)
STRATEGY_INTENT_MAX_IN_FLIGHT = env.int("STRATEGY_INTENT_MAX_IN_FLIGHT", default=8)
STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = env.int(
    "STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE", default=1
)
# A claim's lease: longer than one execution (ccxt timeout + lookups), short enough that a
# crashed worker's intent is taken over quickly.
STRATEGY_INTENT_LEASE_S = env.int("STRATEGY_INTENT_LEASE_S", default=30)
# How long an intents worker process keeps claiming and executing the next claimable intent
# itself after the one it was sent (0: one intent per task, each execution dispatching the next).
STRATEGY_INTENT_LANE_S = env.float("STRATEGY_INTENT_LANE_S", default=1.0)
# How many intents a lane claims at once and runs one after another, their database work shared
# (intents.executor); each is sent only after the one before it answered.
STRATEGY_INTENT_LANE_BATCH = env.int("STRATEGY_INTENT_LANE_BATCH", default=4)
STRATEGY_INTENT_MAX_ATTEMPTS = env.int("STRATEGY_INTENT_MAX_ATTEMPTS", default=5)
# Reconciliation (ledger and tracked orders vs the exchanges) runs every this many seconds.
RECONCILE_INTERVAL_S = env.int("RECONCILE_INTERVAL_S", default=60)
# History retention: finished intents and tracked orders closed without a fill are deleted once
# older than this many days (0: keep everything), by the prune_history task every interval.
STRATEGY_HISTORY_RETENTION_DAYS = env.int("STRATEGY_HISTORY_RETENTION_DAYS", default=30)
STRATEGY_HISTORY_PRUNE_INTERVAL_S = env.int("STRATEGY_HISTORY_PRUNE_INTERVAL_S", default=3600)
# The kill switch as a setting (the `kill_switch` command sets the same in the database).
STRATEGY_KILL_SWITCH = env.bool("STRATEGY_KILL_SWITCH", default=False)
# What a halted exchange account (intents.halt.account_halt) does with its open orders: leave them on the
# exchange for the operator to decide, or cancel them by stopping each order that has one (stop_mm).
STRATEGY_HALT_OPEN_ORDERS = env.str("STRATEGY_HALT_OPEN_ORDERS", default="leave")  # leave|cancel

# --- Order lifecycle ------------------------------------------------------------------
MM_WITHDRAW_MODE = env.str("MM_WITHDRAW_MODE", default="disabled")  # disabled|validation|transfer
MM_PAYMENT_FIRST_CHECK_S = env.int("MM_PAYMENT_FIRST_CHECK_S", default=5)
MM_PAYMENT_CHECK_INTERVAL_S = env.int("MM_PAYMENT_CHECK_INTERVAL_S", default=10)
MM_PAYMENT_TIMEOUT_S = env.int("MM_PAYMENT_TIMEOUT_S", default=600)
MM_WITHDRAWAL_MONITOR_TIMEOUT_S = env.int("MM_WITHDRAWAL_MONITOR_TIMEOUT_S", default=1800)
MM_PAYMENT_PROVIDER = env.str("MM_PAYMENT_PROVIDER", default="local")  # local|mixin
# Attempt limits: a check chain that outlives its deadline by this margin fails the order anyway.
MM_PAYMENT_MAX_CHECKS = env.int(
    "MM_PAYMENT_MAX_CHECKS", default=MM_PAYMENT_TIMEOUT_S // max(MM_PAYMENT_CHECK_INTERVAL_S, 1) + 3
)
MM_WITHDRAWAL_CHECK_INTERVAL_S = env.int("MM_WITHDRAWAL_CHECK_INTERVAL_S", default=15)
MM_WITHDRAWAL_MAX_CHECKS = env.int(
    "MM_WITHDRAWAL_MAX_CHECKS",
    default=MM_WITHDRAWAL_MONITOR_TIMEOUT_S // max(MM_WITHDRAWAL_CHECK_INTERVAL_S, 1) + 3,
)
# Transient errors (database, provider timeouts) retry with exponential backoff up to this many times.
MM_JOB_MAX_RETRIES = env.int("MM_JOB_MAX_RETRIES", default=8)
# stop_mm keeps cancelling and confirming (backoff up to 30 s) this many times before giving up.
MM_STOP_MAX_RETRIES = env.int("MM_STOP_MAX_RETRIES", default=60)
# The lifecycle sweeper (resume_market_making, beat): every this many seconds it starts the job of each
# order that waits on one and has none alive. A polling chain counts as alive until its next poll is
# due plus this margin (queue wait, run time); after that the sweeper starts a new chain.
MM_SWEEP_INTERVAL_S = env.int("MM_SWEEP_INTERVAL_S", default=60)
MM_JOB_LEASE_MARGIN_S = env.int("MM_JOB_LEASE_MARGIN_S", default=120)
# Payout after stop (orders.services.payout, job withdraw_to_user): "auto" starts it when a stop completes
# (transfer mode only: otherwise nothing of the order is on the exchange); "manual" waits for mm_payout or
# the admin action. The job polls the withdrawal every interval, at most this many times.
MM_PAYOUT_AFTER_STOP = env.str("MM_PAYOUT_AFTER_STOP", default="auto")  # auto|manual
MM_PAYOUT_CHECK_INTERVAL_S = env.int("MM_PAYOUT_CHECK_INTERVAL_S", default=15)
MM_PAYOUT_MAX_CHECKS = env.int("MM_PAYOUT_MAX_CHECKS", default=240)
# Mixin provider (MM_PAYMENT_PROVIDER=mixin): API root, bot credentials, snapshots per poll.
MIXIN_API_BASE = env.str("MIXIN_API_BASE", default="https://api.mixin.one")
MIXIN_CLIENT_ID = env.str("MIXIN_CLIENT_ID", default="")
MIXIN_SESSION_ID = env.str("MIXIN_SESSION_ID", default="")
MIXIN_SESSION_PRIVATE_KEY = env.str("MIXIN_SESSION_PRIVATE_KEY", default="")  # Ed25519 seed, hex
MIXIN_POLL_LIMIT = env.int("MIXIN_POLL_LIMIT", default=100)
# The beat polls the bot's snapshots this often when MM_PAYMENT_PROVIDER=mixin (poll_mixin_snapshots; the seed: 5 s).
MIXIN_POLL_INTERVAL_S = env.float("MIXIN_POLL_INTERVAL_S", default=5.0)
MIXIN_HTTP_TIMEOUT_S = env.float("MIXIN_HTTP_TIMEOUT_S", default=10.0)
# Safe payments (docs/mixin.md): the spend key (or the TIP PIN whose first 32 bytes are the spend key), each a
# Fernet token of exchanges.crypto (encrypted like exchange secrets); a payment needing more outputs than
# MIXIN_MAX_INPUTS consolidates first.
MIXIN_SPEND_PRIVATE_KEY = env.str("MIXIN_SPEND_PRIVATE_KEY", default="")
MIXIN_PIN = env.str("MIXIN_PIN", default="")
MIXIN_MAX_INPUTS = env.int("MIXIN_MAX_INPUTS", default=255)

# --- Exchanges ------------------------------------------------------------------------
# Comma-separated Fernet keys, newest first (MultiFernet). The embedded default derives
# one from SECRET_KEY so `make run` works; production must set its own.
EXCHANGE_SECRET_KEYS = env.list("EXCHANGE_SECRET_KEYS", default=[])
# ccxt request timeout; an order write that times out is looked up by client order id.
EXCHANGE_TIMEOUT_MS = env.int("EXCHANGE_TIMEOUT_MS", default=10000)
# The account-wide request budget (exchanges/budget.py, docs/runtime.md "Request budget"): one bucket
# per exchange account shared by every process, sized from ccxt's rateLimit and endpoint costs.
EXCHANGE_BUDGET_ENABLED = env.bool("EXCHANGE_BUDGET_ENABLED", default=True)
# Where the buckets live: redis://... or file:///dir; empty: the broker's Redis when CELERY_BROKER_URL
# is redis, else files under MM_VAR_DIR/budget (one machine: the embedded run).
EXCHANGE_BUDGET_URL = env.str("EXCHANGE_BUDGET_URL", default="")
EXCHANGE_BUDGET_KEY_PREFIX = env.str("EXCHANGE_BUDGET_KEY_PREFIX", default="mm:budget")
# The share of the exchange's published rate we spend (room for clock and network jitter).
EXCHANGE_BUDGET_SHARE = env.float("EXCHANGE_BUDGET_SHARE", default=0.9)
# How far ahead of its booked time a request may go (a small burst; the bound adds it once).
EXCHANGE_BUDGET_BURST_MS = env.int("EXCHANGE_BUDGET_BURST_MS", default=250)
# The pause after a 429/418 without Retry-After: this, doubled for each one within a minute (max 60 s).
EXCHANGE_RATE_LIMIT_BACKOFF_S = env.float("EXCHANGE_RATE_LIMIT_BACKOFF_S", default=2.0)
# How long an exchange may still accept a request after it was signed, when ccxt sends no receive window
# with it (exchanges/dialects.py names the exchanges that do):
# a timed-out order request keeps its in-flight slots that long (intents/gates.py).
EXCHANGE_RECEIVE_WINDOW_S = env.float("EXCHANGE_RECEIVE_WINDOW_S", default=10.0)
# The simulator's Binance-like request limits per caller (API key, or address without one), reported
# in the rateLimits of its Binance dialect's market listing: request weight per minute and new orders
# per 10 s; over them 429 with Retry-After, and 418 (banned SIM_BAN_S) for a caller that sends again
# before the Retry-After.
SIM_RATE_LIMITS_ENABLED = env.bool("SIM_RATE_LIMITS_ENABLED", default=True)
SIM_REQUEST_WEIGHT_PER_MINUTE = env.int("SIM_REQUEST_WEIGHT_PER_MINUTE", default=6000)
SIM_ORDERS_PER_10S = env.int("SIM_ORDERS_PER_10S", default=100)
# The request-weight window in seconds (Binance: 60), its limit scaled to keep the per-minute rate:
# tests shorten it so a run of seconds spans whole windows.
SIM_REQUEST_WEIGHT_WINDOW_S = env.int("SIM_REQUEST_WEIGHT_WINDOW_S", default=60)
SIM_BAN_S = env.int("SIM_BAN_S", default=120)

# --- Security (production) -----------------------------------------------------------
# Defaults suit the embedded run on http://127.0.0.1. Behind TLS set DJANGO_HTTPS=true (secure
# cookies, HSTS, HTTP->HTTPS redirect), DJANGO_DEBUG=false, a DJANGO_SECRET_KEY of 50+ random
# characters and DJANGO_ALLOWED_HOSTS; `manage.py check --deploy` then reports no issue. Each
# value below can still be set on its own.
HTTPS = env.bool("DJANGO_HTTPS", default=False)
if HTTPS and SECRET_KEY == "insecure-embedded-default-change-me":
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DJANGO_HTTPS=true needs DJANGO_SECRET_KEY (50+ random characters); "
                               "the embedded default key is public")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
# Paths served over plain HTTP even so (regexes without the leading slash), e.g. ^metrics$.
SECURE_REDIRECT_EXEMPT = env.list("DJANGO_SECURE_REDIRECT_EXEMPT", default=[])
# Behind a TLS-terminating proxy: the header that proxy sets, e.g. "HTTP_X_FORWARDED_PROTO=https".
# Only set it when the proxy always overwrites that header (otherwise a client can claim HTTPS).
_proxy_ssl_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header.split("=", 1)) if "=" in _proxy_ssl_header else None
USE_X_FORWARDED_HOST = env.bool("DJANGO_USE_X_FORWARDED_HOST", default=False)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=HTTPS)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# /metrics: when set, a scrape must send "Authorization: Bearer <token>".
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# /metrics counts ledger entries and intents older than this once per process, then only newer rows.
METRICS_SETTLE_AFTER_S = env.int("METRICS_SETTLE_AFTER_S", default=300)
# /metrics' mm_intents_stuck: intents sent and unresolved longer than this (a create retried with backoff up
# to STRATEGY_INTENT_MAX_ATTEMPTS times resolves well within it).
METRICS_STUCK_INTENT_S = env.int("METRICS_STUCK_INTENT_S", default=300)

# --- Logging --------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "kv": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "kv"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "ccxt": {"level": "WARNING"},
    },
}
