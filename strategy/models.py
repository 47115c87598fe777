"""Strategy sessions: one per running market-making order, with its cadence."""
from django.db import models

from ledger.amounts import AmountField


class SessionStatus(models.TextChoices):
    RUNNING = "running"
    STOPPING = "stopping"  # no new orders; cancelling what is open, settling fills
    STOPPED = "stopped"


class StrategySession(models.Model):
    """The strategy registration of one order. The tick runs sessions whose ``next_run_at`` is due."""

    order = models.OneToOneField("orders.MarketMakingOrder", on_delete=models.PROTECT, related_name="strategy_session")
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.RUNNING)
    cadence_s = models.PositiveIntegerField(help_text="seconds between runs (the order's order_refresh_time)")
    # Not indexed: every cycle moves it for every session it ran, and an index on it made each of
    # those updates write a new entry in every index of the table; with none, PostgreSQL updates
    # the row in place (HOT). The due sessions are found among the running ones (index below).
    next_run_at = models.DateTimeField(null=True, blank=True)
    # When the session last refreshed its ladder (its orders measured against the desired ones and the
    # drifted ones replaced): every cadence_s. A run in between (woken because an order closed) only
    # refills free slots. None: the next run refreshes.
    refreshed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Two-sided uptime as our own records see it, sampled by the account's order tracker once a tick:
    # how many samples were taken while the session ran, and in how many it had an order on the book
    # on both sides (open, partially filled or with its cancel on the way). bench/quoting.py measures
    # the same from outside, through ccxt.
    quote_samples = models.PositiveBigIntegerField(default=0)
    two_sided_samples = models.PositiveBigIntegerField(default=0)
    # The moving price band's anchor (the reference price when it was last set) and when it was set;
    # None until a run with the band on sets it (strategy.pure_mm.moving_band_anchor).
    band_price = AmountField(null=True, blank=True)
    band_set_at = models.DateTimeField(null=True, blank=True)
    # The inventory-cost price source's state: the base the order bought and still holds, the quote
    # it paid for it, and the last TrackedFill folded in (strategy.pure_mm.inventory_cost_after).
    inventory_base = AmountField(default=0)
    inventory_cost = AmountField(default=0)
    inventory_fill_id = models.BigIntegerField(default=0)
    # A create of this session met a market that had moved past the book it priced from (refused as
    # post-only, or filled on arrival): it runs again once its market's book read from this moment on is
    # stored (strategy.services.sessions_wake_on_market_data), not before; None: not waiting.
    market_data_after = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["id"], name="session_running_idx", condition=models.Q(status="running")),
            models.Index(fields=["market_data_after"], name="session_awaiting_book_idx",
                         condition=models.Q(market_data_after__isnull=False)),
        ]

    def __str__(self):
        return f"session of order {self.order_id} ({self.status})"


# --- Tick coordination and market data (the trading runtime) --------------------------------
TICK_LEASE_NAME = "tick"  # the one row of TickLease the beat's ticks take


class TickLease(models.Model):
    """The database lease that makes ticks never overlap, and their counters.

    A tick runs only if it takes the lease and its period slot is newer than the last one run:
    two beats, or a late tick, are skipped and counted instead of running twice.
    """

    name = models.CharField(max_length=32, unique=True)
    holder = models.CharField(max_length=128, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_slot = models.BigIntegerField(default=0)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(default=0)
    ticks_run = models.PositiveBigIntegerField(default=0)
    ticks_skipped = models.PositiveBigIntegerField(default=0)
    # Sum of the durations of the ticks run: with ticks_run, the histogram's _sum and _count.
    duration_ms_total = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"tick lease {self.name} (run {self.ticks_run}, skipped {self.ticks_skipped})"


class RefillMark(models.Model):
    """A refill run asked for and not started yet (strategy.services.sessions_wake, strategy.tick.refill_run):
    one row; ``requested_at`` is None when none is waiting. Wakes in a burst send one run, not one each."""

    requested_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"refill run asked for at {self.requested_at}" if self.requested_at else "no refill run waiting"


class TickDurationBucket(models.Model):
    """One cumulative bucket of the tick-duration histogram: how many ticks took at most ``le_ms``.

    Counted in the database, one UPDATE per tick by the lease holder, so /metrics is true across
    every worker process and machine; constant in size, unlike a table of samples.
    """

    le_ms = models.PositiveIntegerField(unique=True)
    count = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"ticks <= {self.le_ms} ms: {self.count}"


class MarketData(models.Model):
    """The latest order book top of one market on one exchange account, as the tracker stored it: the
    best prices, the top levels of each side (``[[price, amount], ...]`` as decimal strings, best first;
    our own orders included, as the exchange shows them) and the market's rules."""

    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.CASCADE, related_name="market_data")
    symbol = models.CharField(max_length=64)
    best_bid = AmountField(null=True, blank=True)
    best_ask = AmountField(null=True, blank=True)
    last_price = AmountField(null=True, blank=True)
    # The market's precision and limits, so a strategy run never needs to load markets.
    price_tick = AmountField()
    amount_step = AmountField()
    min_amount = AmountField(default=0)
    min_notional = AmountField(default=0)
    maker_fee = AmountField(default=0, help_text="fraction of a maker fill's value the exchange charges")
    bids = models.JSONField(default=list, blank=True)
    asks = models.JSONField(default=list, blank=True)
    fetched_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "symbol"], name="market_data_account_symbol_uniq")]

    def __str__(self):
        return f"{self.symbol}@{self.account_id} bid={self.best_bid} ask={self.best_ask}"
