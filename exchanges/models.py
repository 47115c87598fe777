"""Exchange accounts (credentials encrypted at rest) and the exchange simulator's state."""
from django.db import models

from ledger.amounts import AmountField

from .crypto import decrypt_secret, encrypt_secret


class ExchangeAccount(models.Model):
    """An account on an exchange reached through ccxt.

    The API secret and passphrase are stored only as Fernet tokens; ``api_secret`` and
    ``api_passphrase`` decrypt them on demand (ccxt's ``secret`` and ``password``). ``uid`` is
    ccxt's ``uid`` (an account identifier some exchanges sign with, like the API key: not a secret).
    ``sandbox`` switches ccxt to the exchange's test environment (``set_sandbox_mode``).
    ``base_url`` overrides the exchange's API URLs (how an account points at the simulator).
    """

    exchange_id = models.CharField(max_length=64, help_text="ccxt exchange id, e.g. binance")
    label = models.CharField(max_length=100, unique=True)
    api_key = models.CharField(max_length=256, blank=True)
    api_secret_encrypted = models.TextField(blank=True, editable=False)
    # Database defaults too: a row written by code that predates these columns (a worker of the previous
    # release during a deploy, a hand-written statement) is still valid.
    api_passphrase_encrypted = models.TextField(
        blank=True, editable=False, default="", db_default="", help_text="ccxt's password (OKX, KuCoin, Bitget...), Fernet token")
    uid = models.CharField(max_length=128, blank=True, default="", db_default="", help_text="ccxt uid, for exchanges that need one")
    sandbox = models.BooleanField(default=False, db_default=False,
                                  help_text="use the exchange's sandbox (ccxt set_sandbox_mode)")
    base_url = models.CharField(
        max_length=300,
        blank=True,
        help_text="Optional root URL replacing the exchange's API URLs, e.g. http://127.0.0.1:8000",
    )
    enabled = models.BooleanField(default=True)
    # Set when the exchange answers with an error the policy classes ``halt`` (API key revoked, account
    # suspended: exchanges.policy): nothing new is planned or sent on the account until an operator
    # resumes it (exchanges.halts, ``mm_account resume``, the admin's action).
    halted_at = models.DateTimeField(null=True, blank=True, editable=False)
    halt_reason = models.TextField(blank=True, default="", db_default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["label"]

    def __str__(self):
        return f"{self.label} ({self.exchange_id})"

    def __repr__(self):
        return f"<ExchangeAccount id={self.pk} label={self.label!r} exchange_id={self.exchange_id!r}>"

    @property
    def api_secret(self) -> str:
        return decrypt_secret(self.api_secret_encrypted) if self.api_secret_encrypted else ""

    @api_secret.setter
    def api_secret(self, plain: str) -> None:
        self.api_secret_encrypted = encrypt_secret(plain) if plain else ""

    @property
    def api_passphrase(self) -> str:
        return decrypt_secret(self.api_passphrase_encrypted) if self.api_passphrase_encrypted else ""

    @api_passphrase.setter
    def api_passphrase(self, plain: str) -> None:
        self.api_passphrase_encrypted = encrypt_secret(plain) if plain else ""


# --- Exchange simulator state -------------------------------------------------------------
# The simulator is a real exchange for our purposes: one state in the database, shared by the
# web process, the `exchange_simulator` command, workers and tests.


class SimMarket(models.Model):
    """A spot market of the simulator: filters, fees, and the seeded price path's position."""

    symbol = models.CharField(max_length=40, unique=True, help_text="unified symbol, e.g. BTC/USDT")
    exchange_symbol = models.CharField(max_length=40, unique=True, help_text="Binance id, e.g. BTCUSDT")
    base = models.CharField(max_length=20)
    quote = models.CharField(max_length=20)
    tick_size = AmountField()
    step_size = AmountField()
    min_qty = AmountField()
    max_qty = AmountField()
    min_price = AmountField()
    max_price = AmountField()
    min_notional = AmountField()
    maker_fee = AmountField()
    taker_fee = AmountField()
    seed = models.BigIntegerField(default=0)
    start_price = AmountField()
    price = AmountField()
    step = models.BigIntegerField(default=0)
    volatility = AmountField(help_text="standard deviation of the price's relative move per second, e.g. 0.0001 "
                                       "(~1 bp a second); a step of S seconds moves uniformly within "
                                       "+-volatility*sqrt(3*S)")
    step_volume = AmountField(help_text="base quantity the market trades in one step, on average")
    depth_levels = models.PositiveSmallIntegerField(default=10)
    depth_quantity = AmountField(help_text="base quantity of one synthetic depth level, on average")
    spread_ticks = models.PositiveIntegerField(default=2, help_text="distance best bid to best ask in ticks")
    day_open = AmountField()
    day_high = AmountField()
    day_low = AmountField()
    day_volume = AmountField(default=0)
    day_quote_volume = AmountField(default=0)
    last_step_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.symbol} @ {self.price} (step {self.step})"


class SimDepthTaken(models.Model):
    """What taker fills took from the synthetic book of a market at one step: ``taken`` is
    {"bids"|"asks": {price: quantity}} (decimal strings) for step ``step``; a row of an older step
    means nothing was taken yet at the market's current step (the book is drawn again each step).

    Its own row, locked by a crossing order after its account: the market row stays unlocked by
    order placement, so a step (market, then accounts) and an order (account, then this) never
    wait on each other in a cycle.
    """

    market = models.OneToOneField(SimMarket, on_delete=models.CASCADE, related_name="depth_taken")
    step = models.BigIntegerField(default=0)
    taken = models.JSONField(default=dict, blank=True)

    def __str__(self):
        return f"{self.market_id} step {self.step}: {self.taken}"


class SimAccount(models.Model):
    """A simulator account: credentials (secret encrypted at rest), fault injection, concurrency gauge."""

    label = models.CharField(max_length=100, unique=True)
    api_key = models.CharField(max_length=128, unique=True)
    api_secret_encrypted = models.TextField(editable=False)
    faults = models.JSONField(default=dict, blank=True)

    def __str__(self):
        return self.label

    def __repr__(self):
        return f"<SimAccount id={self.pk} label={self.label!r}>"

    @property
    def api_secret(self) -> str:
        return decrypt_secret(self.api_secret_encrypted)

    @api_secret.setter
    def api_secret(self, plain: str) -> None:
        self.api_secret_encrypted = encrypt_secret(plain)


class SimConcurrency(models.Model):
    """Order requests of an account in flight at the simulator now, and the most ever seen at once.

    A row of its own, so counting never waits on the account row that order placement locks.
    """

    account = models.OneToOneField(SimAccount, on_delete=models.CASCADE, related_name="concurrency")
    in_flight = models.IntegerField(default=0)
    max_in_flight = models.IntegerField(default=0)


class SimBalance(models.Model):
    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="balances")
    asset = models.CharField(max_length=20)
    free = AmountField(default=0)
    locked = AmountField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "asset"], name="sim_balance_account_asset")]

    def __str__(self):
        return f"{self.account_id}:{self.asset} free={self.free} locked={self.locked}"


class SimOrderStatus(models.TextChoices):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


OPEN_ORDER_STATUSES = (SimOrderStatus.NEW, SimOrderStatus.PARTIALLY_FILLED)


class SimOrder(models.Model):
    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="orders")
    market = models.ForeignKey(SimMarket, on_delete=models.CASCADE, related_name="orders")
    client_order_id = models.CharField(max_length=64)
    side = models.CharField(max_length=4)  # BUY | SELL
    type = models.CharField(max_length=16)  # LIMIT | LIMIT_MAKER
    time_in_force = models.CharField(max_length=4, default="GTC")
    price = AmountField()
    orig_qty = AmountField()
    executed_qty = AmountField(default=0)
    cumulative_quote_qty = AmountField(default=0)
    locked_remaining = AmountField(default=0, help_text="funds still locked for the unfilled part")
    status = models.CharField(max_length=20, choices=SimOrderStatus.choices, default=SimOrderStatus.NEW)
    created_ms = models.BigIntegerField()
    updated_ms = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["account", "client_order_id"], name="sim_order_account_coid"),
            models.Index(fields=["market", "status"], name="sim_order_market_status"),
        ]
        constraints = [
            # Binance refuses a client order id already used by an open order of the account.
            models.UniqueConstraint(
                fields=["account", "client_order_id"],
                condition=models.Q(status__in=["NEW", "PARTIALLY_FILLED"]),
                name="sim_order_open_client_id_unique",
            )
        ]

    def __str__(self):
        return f"{self.pk} {self.side} {self.orig_qty} @ {self.price} {self.status}"


class SimTrade(models.Model):
    order = models.ForeignKey(SimOrder, on_delete=models.CASCADE, related_name="trades")
    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="trades")
    market = models.ForeignKey(SimMarket, on_delete=models.CASCADE, related_name="trades")
    price = AmountField()
    qty = AmountField()
    quote_qty = AmountField()
    commission = AmountField()
    commission_asset = models.CharField(max_length=20)
    is_buyer = models.BooleanField()
    is_maker = models.BooleanField()
    time_ms = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["account", "market", "id"], name="sim_trade_account_market")]


class SimDepositAddress(models.Model):
    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="deposit_addresses")
    asset = models.CharField(max_length=20)
    network = models.CharField(max_length=40)
    address = models.CharField(max_length=100, unique=True)
    tag = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "asset", "network"], name="sim_deposit_address_unique")
        ]


class SimDeposit(models.Model):
    """A transfer received by the simulator; credited once, when it is confirmed."""

    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="deposits")
    asset = models.CharField(max_length=20)
    network = models.CharField(max_length=40)
    address = models.CharField(max_length=100)
    tag = models.CharField(max_length=100, blank=True)
    amount = AmountField()
    tx_id = models.CharField(max_length=128, unique=True)
    insert_ms = models.BigIntegerField()
    confirm_at_ms = models.BigIntegerField()
    credited = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["account", "credited"], name="sim_deposit_account_credited")]


class SimWithdrawal(models.Model):
    """A withdrawal the simulator accepted: debited from the account at once (amount; the fee comes out of
    it), sent on "chain" when it completes: to another simulator account's deposit address as a deposit,
    else recorded here for whoever owns the address (the local payment provider reads it; a Mixin stand-in
    is told over HTTP, SIM_WITHDRAW_FORWARD_URL)."""

    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="withdrawals")
    asset = models.CharField(max_length=20)
    network = models.CharField(max_length=40)
    address = models.CharField(max_length=200)
    tag = models.CharField(max_length=100, blank=True)
    amount = AmountField()
    fee = AmountField(default=0)
    client_id = models.CharField(max_length=64, blank=True, help_text="withdrawOrderId (Binance) / clientId (OKX)")
    tx_id = models.CharField(max_length=128, unique=True)
    apply_ms = models.BigIntegerField()
    complete_at_ms = models.BigIntegerField()
    completed = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "client_id"], condition=~models.Q(client_id=""),
                                               name="sim_withdrawal_client_id_unique")]


class SimRateWindow(models.Model):
    """What one caller spent at the simulator in one fixed window of one limit (the record of the
    request limits, exchanges/simulator/limits.py): every request that reached a limited path is
    counted, the refused ones too, as Binance counts them.

    ``caller`` is the API key (``key:...``) or, for a request without one, its address (``ip:...``).
    ``used`` may exceed ``limit``: the requests past it were answered 429/418 (``refused``).
    """

    caller = models.CharField(max_length=160)
    limit_type = models.CharField(max_length=20)  # REQUEST_WEIGHT | ORDERS
    window_start_ms = models.BigIntegerField()
    window_ms = models.IntegerField()
    limit = models.IntegerField()
    used = models.BigIntegerField(default=0)
    requests = models.IntegerField(default=0)
    refused = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["caller", "limit_type", "window_start_ms"],
                                               name="sim_rate_window_unique")]

    def __str__(self):
        return f"{self.caller} {self.limit_type}@{self.window_start_ms}: {self.used}/{self.limit}"


class SimRateBlock(models.Model):
    """A caller told to wait: after a 429 until ``retry_after_ms`` (a request before then earns a
    418), after a 418 banned until ``banned_until_ms``."""

    caller = models.CharField(max_length=160, unique=True)
    retry_after_ms = models.BigIntegerField(default=0)
    banned_until_ms = models.BigIntegerField(default=0)
    too_many = models.IntegerField(default=0)  # 429 answers
    bans = models.IntegerField(default=0)  # 418 answers

    def __str__(self):
        return self.caller
