"""Execute claimed intents on the exchange, exactly once in effect.

The tracked order and its client order id are in the database before any call. A create
that is retried or reclaimed after a crash looks its order up by client order id first; an
ambiguous outcome (timeout, 5xx, broken connection) is looked up, never resent blindly.
Retries follow the error policy (ccxt error classes) with backoff; a failed intent never
blocks its strategy: its tracked order leaves the active set and the next cycle re-plans. An error
the policy classes ``halt`` (a revoked API key, a suspended account) halts the intent's exchange
account (intents.halt.account_halt): nothing new is planned or sent on it until an operator resumes it.

Intents claimed together (a lane's batch, the sync driver's round) run one after another in one
process, with the database work of the batch in a few statements rather than a dozen per intent:
the intents, their tracked orders and accounts are read in one statement; the session and kill-switch
check and the ``sent_at`` of the creates about to leave are written together before the first
call; the tracked orders and the releases are written together after the last call (one statement
on PostgreSQL).
A crash in between loses nothing: each intent is reclaimed when its lease lapses, and each create
that may have left is looked up by its client order id before anything is resent.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import ccxt
from django.conf import settings
from django.utils import timezone

from exchanges.budget import receive_window_s
from exchanges.clients import exchange_client_of
from exchanges.dialects import post_only
from exchanges.errors import ExchangeError
from exchanges.models import ExchangeAccount
from exchanges.policy import Action, Operation, error_action, retry_delay_s
from exchanges.precision import limit_order_prepare, market_rules
from exchanges.services import fetch_by_client_id

from . import hooks, sql, tracked_orders
from .gates import Claim, Release, lease_seconds, release_claims, renew, renew_claims, timed_out_hold_until
from .halt import account_halt
from .models import Intent, IntentKind, IntentStatus, TrackedOrder, TrackedOrderStatus
from .tracked_orders import FINAL_TRACKED

logger = logging.getLogger(__name__)

# A batch checks its sessions and the kill switch again before a create once its last check is
# older than this: a slow batch (exchange latency, timeouts) never sends on a stale "yes".
RECHECK_AFTER_S = 0.25


class _Outcome:
    """How an execution ended: the intent's status, and when to try again if at all."""

    def __init__(self, status: str, note: str = "", retry: bool = False, exchange_order_id: str = ""):
        self.status, self.note, self.retry, self.exchange_order_id = status, note, retry, exchange_order_id
        self.hold_until = None  # the slots stay taken until then (a timed-out request: gates.timed_out_hold_until)


def max_attempts() -> int:
    return settings.STRATEGY_INTENT_MAX_ATTEMPTS


def intent_execute(*, intent_pk: int, token: str, fresh: bool = False) -> str:
    """Run the claimed intent; return its final (or retry) status for logs and tests.

    ``fresh``: claimed by this process just now (a lane, the sync driver), so its lease is whole;
    otherwise (a queued ``execute_intent``) the lease is renewed first, and a lapsed claim is not run.
    """
    if not fresh and not renew(intent_pk=intent_pk, token=token):
        return "claim_lost"
    return intents_execute([Claim(intent_pk=intent_pk, token=token)])[intent_pk]


def intents_execute(claims: list[Claim]) -> dict[int, str]:
    """Run claims made (or renewed) just now, one after another in this process; return each
    intent's final (or retry) status, ``claim_lost`` for a claim that is no longer this one."""
    return _Batch(claims).run()


class _Batch:
    """The claims run together, and the database work they share (see the module's docstring)."""

    def __init__(self, claims: list[Claim]):
        self.tokens = {claim.intent_pk: claim.token for claim in claims}
        self.renewed_at = time.monotonic()
        self.ours = set(self.tokens)
        self.checked_at: float | None = None
        self.accepting: set[str] = set()
        self.marked_sent: set[int] = set()
        self.dirty: dict[int, TrackedOrder] = {}
        # Strategy keys whose creates met a market past the strategy's data (intents.hooks.quotes_stale).
        self.stale: set[str] = set()
        self.releases: list[Release] = []
        self.pending: list[Intent] = []
        self.tracked: dict[str, TrackedOrder] = {}

    def run(self) -> dict[int, str]:
        results = {pk: "claim_lost" for pk in self.tokens}
        rows, self.tracked, accounts = sql.read_batch(list(self.tokens))
        for pk in self.tokens:
            row = rows.get(pk)
            if row is None or row.claim_token != self.tokens[pk] or row.status != IntentStatus.IN_FLIGHT:
                logger.info("event=intent_claim_stale intent_pk=%s", pk)
                rows.pop(pk, None)
        self.pending = [rows[pk] for pk in self.tokens if pk in rows]
        if not self.pending:
            return results
        finished: list[tuple[Intent, _Outcome, object]] = []
        try:
            while self.pending:
                intent = self.pending.pop(0)
                if not self._still_ours(intent):
                    continue
                tracked = self._tracked_for(intent)
                if not settings.STRATEGY_EXECUTE_INTENTS:
                    outcome = _dry_run(intent, tracked, self)
                else:
                    outcome = _execute(intent, tracked, accounts.get(intent.account_id), self)
                retry_at = None
                if outcome.retry:
                    if intent.attempts >= max_attempts():
                        outcome = _give_up(intent, tracked, f"gave up after {intent.attempts} attempts: {outcome.note}",
                                           self)
                    else:
                        retry_at = timezone.now() + timedelta(seconds=retry_delay_s(intent.attempts - 1))
                self.releases.append(Release(intent.pk, self.tokens[intent.pk], outcome.status, outcome.note,
                                             outcome.exchange_order_id, retry_at, outcome.hold_until))
                finished.append((intent, outcome, retry_at))
                results[intent.pk] = "retry" if retry_at else outcome.status
        finally:
            # Also after an unexpected error: what the exchange already did is written down, with
            # the releases (one statement on PostgreSQL).
            release_claims(self.releases, with_writes=sql.tracked_writes(list(self.dirty.values())))
        # Orders this batch saw close (a cancel done, an order found filled or gone) free their slots.
        # Not in a dry run (STRATEGY_EXECUTE_INTENTS=false): nothing was on the book, and refilling at
        # once would plan a ladder every tick instead of every refresh.
        if settings.STRATEGY_EXECUTE_INTENTS:
            hooks.orders_closed(t.strategy_key for t in self.dirty.values()
                                if t.status in FINAL_TRACKED and t.strategy_key not in self.stale)
            hooks.quotes_stale(self.stale)
        for intent, outcome, retry_at in finished:
            logger.info("event=intent_executed intent_id=%s strategy_key=%s kind=%s client_order_id=%s status=%s "
                        "retry_at=%s note=%s", intent.intent_id, intent.strategy_key, intent.kind,
                        intent.client_order_id, outcome.status, retry_at, outcome.note)
        return results

    def _still_ours(self, intent: Intent) -> bool:
        """Renew the batch's claims once they are a third of a lease old (a slow exchange)."""
        if time.monotonic() - self.renewed_at > lease_seconds() / 3:
            self.ours = renew_claims([Claim(intent_pk=pk, token=self.tokens[pk]) for pk in self.ours])
            self.renewed_at = time.monotonic()
        return intent.pk in self.ours

    def _tracked_for(self, intent: Intent) -> TrackedOrder:
        tracked = self.tracked.get(intent.client_order_id)
        if tracked is None:
            # Written by the claim (intents.gates); created here only for an intent claimed before that.
            tracked, _ = TrackedOrder.objects.get_or_create(
                client_order_id=intent.client_order_id,
                defaults=dict(strategy_key=intent.strategy_key, account_id=intent.account_id, symbol=intent.symbol,
                              side=intent.side, price=intent.price or 0, amount=intent.amount or 0,
                              layer=intent.layer or 0),
            )
        return tracked

    def save(self, tracked: TrackedOrder) -> None:
        """Written with the releases, after the batch's last call."""
        self.dirty[tracked.pk] = tracked

    def accepts_orders(self, intent: Intent) -> bool:
        """The last check before a new order leaves: kill switch off and the session still running.

        Checked for every create of the batch that has not been sent at once, and their ``sent_at``
        saved in the same round (before any of them is sent); again for the rest when stale."""
        if self.checked_at is None or time.monotonic() - self.checked_at > RECHECK_AFTER_S:
            self._check_sessions([intent, *self.pending])
        return intent.strategy_key in self.accepting

    def _check_sessions(self, intents: list[Intent]) -> None:
        unsent = [i for i in intents if i.kind == IntentKind.CREATE and i.sent_at is None]
        self.accepting = hooks.accepting(i.strategy_key for i in unsent)
        self.checked_at = time.monotonic()
        leaving = [i.pk for i in unsent if i.strategy_key in self.accepting and i.pk not in self.marked_sent
                   and self._tracked_for(i).status == TrackedOrderStatus.PENDING_CREATE]
        refused = [i.pk for i in unsent if i.strategy_key not in self.accepting and i.pk in self.marked_sent]
        sql.write_sent_at(leaving, timezone.now())
        sql.write_sent_at(refused, None)  # marked by an earlier round, refused now: never sent after all
        self.marked_sent = (self.marked_sent | set(leaving)) - set(refused)

    def mark_sent(self, intent: Intent) -> None:
        """``sent_at`` is in the database before the call (normally saved by ``accepts_orders``)."""
        if intent.pk not in self.marked_sent:
            sql.write_sent_at([intent.pk], timezone.now())
            self.marked_sent.add(intent.pk)


def _apply(tracked: TrackedOrder, order: dict, batch: _Batch) -> None:
    tracked_orders.apply_exchange_order(tracked, order, save=False)
    batch.save(tracked)


def _transition(changed: bool, tracked: TrackedOrder, batch: _Batch) -> None:
    """Save a row that a ``tracked_orders.*_row`` transition changed (with the batch's releases)."""
    if changed:
        batch.save(tracked)


def _dry_run(intent: Intent, tracked: TrackedOrder, batch: _Batch) -> _Outcome:
    # STRATEGY_EXECUTE_INTENTS=false: processed with no exchange call; nothing is on the book.
    _transition(tracked_orders.not_sent_row(tracked), tracked, batch)
    return _Outcome(IntentStatus.DONE, "processed without an exchange call (STRATEGY_EXECUTE_INTENTS=false)")


def _give_up(intent: Intent, tracked: TrackedOrder, note: str, batch: _Batch) -> _Outcome:
    if intent.kind == IntentKind.CREATE:
        _transition(tracked_orders.create_given_up_row(tracked), tracked, batch)
    else:
        _transition(tracked_orders.cancel_given_up_row(tracked), tracked, batch)
    logger.error("event=intent_failed intent_id=%s strategy_key=%s client_order_id=%s reason=%s",
                 intent.intent_id, intent.strategy_key, intent.client_order_id, note)
    return _Outcome(IntentStatus.FAILED, note)


def _execute(intent: Intent, tracked: TrackedOrder, account: ExchangeAccount | None, batch: _Batch) -> _Outcome:
    operation = Operation.CREATE if intent.kind == IntentKind.CREATE else Operation.CANCEL
    client = None
    try:
        if account is None:
            raise ExchangeAccount.DoesNotExist(f"exchange account {intent.account_id} does not exist")
        client = exchange_client_of(account)
        if intent.kind == IntentKind.CREATE:
            return _create(intent, tracked, client, batch)
        return _cancel(intent, tracked, client, batch)
    except ExchangeError as exc:  # our own refusal (account disabled, precision, minimums)
        return _give_up(intent, tracked, f"{type(exc).__name__}: {exc}", batch)
    except ccxt.BaseError as exc:
        if intent.kind == IntentKind.CREATE and isinstance(exc, ccxt.OrderImmediatelyFillable):
            return _would_take(intent, tracked, batch)
        action = error_action(exc, operation)
        note = f"{type(exc).__name__}: {str(exc)[:300]}"
        if action == Action.HALT or _unauthorized(exc):
            return _halt(intent, tracked, note, batch)
        if client is None:
            # The client could not be built (its markets did not load): nothing was sent.
            if action in (Action.LOOKUP, Action.RETRY):
                return _Outcome(IntentStatus.NEW, f"exchange client not ready: {note}", retry=True)
            return _give_up(intent, tracked, f"exchange client not ready: {note}", batch)
        if action == Action.LOOKUP:
            outcome = _after_ambiguous(intent, tracked, client, note, batch)
            if isinstance(exc, ccxt.RequestTimeout):
                # The request may still reach the exchange within its receive window, even when the
                # lookup found the order: its slots stay taken until then.
                outcome.hold_until = timed_out_hold_until(receive_window_s(client))
            return outcome
        if action == Action.RETRY:
            return _Outcome(IntentStatus.NEW, note, retry=True)
        if action == Action.GONE:
            return _after_gone(intent, tracked, client, note, batch)
        return _give_up(intent, tracked, note, batch)


def _unauthorized(error: ccxt.BaseError) -> bool:
    """The exchange answered HTTP 401: the key, its IP or its permissions were refused. A halt whatever
    ccxt's class: ccxt's binance raises DDoSProtection, not AuthenticationError, for Binance's -2015
    ("Invalid API-key, IP, or permissions for action.") once the client has authenticated before, as
    a revoked key does mid-run (docs/decisions.md, "A 401 halts the exchange account")."""
    response = getattr(error.__context__, "response", None)  # requests' HTTPError, as exchanges.budget reads it
    return getattr(response, "status_code", None) == 401


def _halt(intent: Intent, tracked: TrackedOrder, note: str, batch: _Batch) -> _Outcome:
    """Nothing will work on this account until a person acts (a revoked key, a suspended account):
    the account halts (intents.halt.account_halt), committed at once so every process sees it, and
    this batch checks its creates not sent yet again before the next one leaves."""
    account_halt(account_id=intent.account_id, reason=f"{intent.kind} {intent.client_order_id}: {note}")
    batch.checked_at = None
    return _give_up(intent, tracked, f"exchange account halted: {note}", batch)


def _create(intent: Intent, tracked: TrackedOrder, client, batch: _Batch) -> _Outcome:
    cancelled_meanwhile = tracked.status == TrackedOrderStatus.PENDING_CANCEL
    if tracked.status not in (TrackedOrderStatus.PENDING_CREATE, TrackedOrderStatus.PENDING_CANCEL):
        return _Outcome(IntentStatus.DONE, f"order already {tracked.status}", exchange_order_id=tracked.exchange_order_id)
    if intent.sent_at is None and (cancelled_meanwhile or not batch.accepts_orders(intent)):
        # Never sent, and no longer wanted: nothing is on the exchange, so nothing to cancel.
        _transition(tracked_orders.not_sent_row(tracked), tracked, batch)
        why = ("cancelled by a later cycle" if cancelled_meanwhile
               else "kill switch engaged, session not running or exchange account halted")
        return _Outcome(IntentStatus.SUPERSEDED, f"not sent: {why}")
    if intent.sent_at is not None:
        # Sent before (a retry, a reclaimed crash, a redelivered message): it may be on the exchange.
        existing = fetch_by_client_id(client, intent.symbol, intent.client_order_id)
        if existing is not None:
            _apply(tracked, existing, batch)
            return _Outcome(IntentStatus.DONE, "found by client order id", exchange_order_id=tracked.exchange_order_id)
        if cancelled_meanwhile:
            _transition(tracked_orders.not_sent_row(tracked), tracked, batch)
            return _Outcome(IntentStatus.SUPERSEDED, "not on the exchange and cancelled by a later cycle: not resent")
    amount, price = _on_the_market(intent, client)  # OrderRefused (nothing sent) below its limits
    if intent.sent_at is None:
        batch.mark_sent(intent)  # saved before the call
    params = {"clientOrderId": intent.client_order_id}
    if post_only(client):
        params["postOnly"] = True  # a quote never takes: refused when the market has moved through it
    order = client.create_order(intent.symbol, "limit", intent.side, format(amount, "f"), format(price, "f"), params)
    _apply(tracked, order, batch)
    if tracked.status in FINAL_TRACKED and tracked.filled > 0:
        # Filled on arrival (an exchange without post-only): it took, so the market was past our data.
        batch.stale.add(intent.strategy_key)
    return _Outcome(IntentStatus.DONE, exchange_order_id=tracked.exchange_order_id)


def _would_take(intent: Intent, tracked: TrackedOrder, batch: _Batch) -> _Outcome:
    """The exchange refused a post-only create that would have taken: the market moved through its
    price after the strategy read the book. Nothing was placed; not an error (a fast market does this),
    and not retried as it is: its session prices it again once newer market data is in (hooks.quotes_stale)."""
    _transition(tracked_orders.create_given_up_row(tracked), tracked, batch)
    batch.stale.add(intent.strategy_key)
    logger.info("event=create_would_take intent_id=%s strategy_key=%s client_order_id=%s side=%s price=%s",
                intent.intent_id, intent.strategy_key, intent.client_order_id, intent.side, intent.price)
    return _Outcome(IntentStatus.FAILED, "post-only: would have taken at the market; not placed, priced again "
                                         "from the next book")


def _on_the_market(intent: Intent, client) -> tuple:
    """The create's amount and price on the market's grid (exchanges.precision, any ccxt precision
    mode); raises OrderRefused for an unlisted symbol or an order outside the market's limits. The
    strategy already rounds to the grid it stored, so this changes nothing there; on a
    significant-digits market a larger amount loses the digits the exchange would refuse."""
    order = limit_order_prepare(market_rules(client, intent.symbol), side=intent.side, amount=intent.amount,
                                price=intent.price)
    if (order.amount, order.price) != (intent.amount, intent.price):
        logger.info("event=order_rounded_to_market client_order_id=%s amount=%s->%s price=%s->%s",
                    intent.client_order_id, intent.amount, order.amount, intent.price, order.price)
        return order.amount.normalize(), order.price.normalize()
    return intent.amount, intent.price


def _cancel(intent: Intent, tracked: TrackedOrder, client, batch: _Batch) -> _Outcome:
    if tracked.status in FINAL_TRACKED:
        return _Outcome(IntentStatus.DONE, f"order already {tracked.status}")
    order = client.cancel_order(tracked.exchange_order_id or None, intent.symbol,
                                {"clientOrderId": intent.client_order_id})
    _apply(tracked, order, batch)
    return _Outcome(IntentStatus.DONE, exchange_order_id=tracked.exchange_order_id)


def _after_ambiguous(intent: Intent, tracked: TrackedOrder, client, note: str, batch: _Batch) -> _Outcome:
    """The write may or may not have happened: ask the exchange by client order id."""
    try:
        order = fetch_by_client_id(client, intent.symbol, intent.client_order_id)
    except ccxt.BaseError as exc:
        return _Outcome(IntentStatus.NEW, f"{note}; lookup failed: {type(exc).__name__}", retry=True)
    if order is None:
        if intent.kind == IntentKind.CREATE:
            return _Outcome(IntentStatus.NEW, f"{note}; not on the exchange, will resend", retry=True)
        return _after_gone(intent, tracked, client, note, batch, looked_up=True)
    _apply(tracked, order, batch)
    if intent.kind == IntentKind.CANCEL and tracked.status not in FINAL_TRACKED:
        return _Outcome(IntentStatus.NEW, f"{note}; still open, will cancel again", retry=True)
    return _Outcome(IntentStatus.DONE, f"{note}; resolved by lookup", exchange_order_id=tracked.exchange_order_id)


def _after_gone(intent: Intent, tracked: TrackedOrder, client, note: str, batch: _Batch,
                looked_up: bool = False) -> _Outcome:
    """A cancel found no order: learn whether it filled or was cancelled; lost only if truly absent."""
    try:
        order = None if looked_up else fetch_by_client_id(client, intent.symbol, intent.client_order_id)
    except ccxt.BaseError as exc:
        return _Outcome(IntentStatus.NEW, f"{note}; lookup failed: {type(exc).__name__}", retry=True)
    if order is None:
        tracked_orders.apply_absent(tracked, save=False)
        batch.save(tracked)
        return _Outcome(IntentStatus.DONE, f"{note}; order not on the exchange (lost)")
    _apply(tracked, order, batch)
    return _Outcome(IntentStatus.DONE, f"{note}; order already {tracked.status}")
