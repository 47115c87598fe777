"""In-flight gates enforced by the database: claim intents into slots, release them.

A claim, in one transaction: pick the oldest claimable intents (new and due, or in flight
with an expired lease) whose strategy key has nothing else in flight, take one free global
slot and one free slot of the intent's account for each, mark the intent in flight with
a lease and a claim token, and write a create's tracked order (``pending_create``). On
PostgreSQL every row read for the claim is locked with ``FOR UPDATE SKIP LOCKED``, so
concurrent claimers never wait on each other and never take the same slot; the partial unique
index on in-flight strategy keys settles the last race. On SQLite the immediate transaction
serialises claimers. A claim whose execution waited in the broker is renewed before anything
is sent (``renew``); a lapsed one is given up.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from mmproject.sql import case_by_id, typed, write_together

from . import sql
from .halt import halt_engaged, halt_row_sql
from .models import IntentSlot, IntentStatus
from .sql import claim_pairs, track_creates_sql

logger = logging.getLogger(__name__)

GLOBAL_SCOPE = "global"
CLAIM_RETRIES = 3


def account_scope(account_id: int) -> str:
    return f"account:{account_id}"


@dataclass(frozen=True)
class Claim:
    intent_pk: int
    token: str


def lease_seconds() -> int:
    return settings.STRATEGY_INTENT_LEASE_S


def sync_slots(account_ids) -> None:
    """Make sure slot rows exist for the configured limits (idempotent, cheap when they exist)."""
    wanted = {(GLOBAL_SCOPE, i) for i in range(settings.STRATEGY_INTENT_MAX_IN_FLIGHT)}
    for account_id in set(account_ids):
        wanted |= {(account_scope(account_id), i) for i in range(settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE)}
    scopes = {scope for scope, _ in wanted}
    have = set(IntentSlot.objects.filter(scope__in=scopes).values_list("scope", "index"))
    missing = wanted - have
    if missing:
        IntentSlot.objects.bulk_create(
            [IntentSlot(scope=scope, index=index) for scope, index in sorted(missing)], ignore_conflicts=True
        )


def _free_slots(cur, limit_global: int, limit_account: int, now) -> list[tuple[int, str]]:
    """Lock and return the free slots (id, scope), global and of every account, in one statement."""
    cur.execute(sql.free_slots_sql(), [GLOBAL_SCOPE, limit_global, f"{sql.ACCOUNT_SCOPE_PREFIX}%", limit_account, now])
    return [(row[0], row[1]) for row in cur.fetchall()]


def claim_intents(*, max_claims: int, now: datetime | None = None) -> list[Claim]:
    """Claim up to ``max_claims`` intents within every in-flight limit; return the claims."""
    for attempt in range(CLAIM_RETRIES):
        try:
            return _claim_batch(max_claims=max_claims, now=now or timezone.now())
        except IntegrityError:
            # Another claimer took an intent of the same strategy key in the same instant.
            logger.info("event=intent_claim_race attempt=%s", attempt + 1)
    return []


def _candidates(cur, *, now, accounts: list[int], kinds: str, limit: int) -> list[tuple]:
    """The candidates of both walks (``sql.CLAIMABLE``), lapsed claims first: one statement on
    PostgreSQL, one per walk on SQLite."""
    params = [now, *accounts, limit]
    if connection.vendor != "postgresql":
        rows = []
        for condition in sql.CLAIMABLE:
            cur.execute(sql.candidates_sql(condition, len(accounts), kinds), params)
            rows += cur.fetchall()
        return rows
    cur.execute(sql.both_walks_sql(len(accounts), kinds), params + params)
    return [row[1:] for row in sorted(cur.fetchall(), key=lambda row: row[0])]  # sorted() is stable: ids stay in order


def halted_walking_in_order(cur) -> bool:
    """Whether the kill switch is engaged (``halt_engaged``), read in the statement that sets, on
    PostgreSQL for the rest of this transaction, the claim's walk: no bitmap scans and no sorts.

    The planner's statistics lag a queue: analysed when few intents were new, a burst of thousands
    (one tick's worth) reads as one row, and it chose a bitmap scan of the whole backlog and a sort
    over the ordered index walk that stops at the limit (docs/decisions.md, "The claim walks the
    backlog in id order").
    """
    if connection.vendor != "postgresql":
        return halt_engaged()
    if settings.STRATEGY_KILL_SWITCH:  # halt_engaged() without its row
        cur.execute(sql.WALK_SETTINGS)
        return True
    halt_sql, halt_params = halt_row_sql()
    cur.execute(f"{sql.WALK_SETTINGS}, EXISTS ({halt_sql})", halt_params)
    return bool(cur.fetchone()[2])


def _claim_batch(*, max_claims: int, now: datetime) -> list[Claim]:
    db_now = connection.ops.adapt_datetimefield_value(now)
    lease_until = now + timedelta(seconds=lease_seconds())
    per_account_limit = settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE
    with transaction.atomic(), connection.cursor() as cur:
        global_slots: list[tuple[int, str]] = []
        account_slots: dict[int, list[int]] = {}
        for slot_id, scope in _free_slots(cur, settings.STRATEGY_INTENT_MAX_IN_FLIGHT, per_account_limit, db_now):
            if scope == GLOBAL_SCOPE:
                global_slots.append((slot_id, scope))
            else:
                account_slots.setdefault(int(scope.split(":", 1)[1]), []).append(slot_id)
        if not global_slots or not account_slots:
            return []
        accounts = list(account_slots)
        # With the kill switch engaged only cancels are claimed.
        halted = halted_walking_in_order(cur)
        kinds = sql.CANCELS_ONLY if halted else ""
        candidates = _candidates(cur, now=db_now, accounts=accounts, kinds=kinds, limit=max(max_claims, 1) * 4)
        claims: list[tuple[int, int, int, str]] = []  # (intent pk, global slot, account slot, token)
        seen_keys: set[str] = set()
        reclaims = False
        for intent_pk, account_id, strategy_key, status in candidates:
            if len(claims) >= max_claims or not global_slots:
                break
            if strategy_key in seen_keys or not account_slots[account_id]:
                continue
            seen_keys.add(strategy_key)
            reclaims |= status == IntentStatus.IN_FLIGHT
            claims.append((intent_pk, global_slots.pop(0)[0], account_slots[account_id].pop(0), str(uuid.uuid4())))
        if not claims:
            return []

        intent_pks = [c[0] for c in claims]
        db_lease = connection.ops.adapt_datetimefield_value(lease_until)
        if reclaims:
            # Slots still pointing at a reclaimed (expired) intent are released first.
            cur.execute(sql.free_slots_of_sql(len(intent_pks)), intent_pks)
        slot_ids = [s for c in claims for s in (c[1], c[2])]
        slot_sql, slot_params = case_by_id(slot_ids, [c[0] for c in claims for _ in (1, 2)])
        token_sql, token_params = case_by_id(intent_pks, [c[3] for c in claims])
        # The slots, the intents and a create's tracked order, written together (one statement on
        # PostgreSQL): they read none of each other's rows (the tracked order copies columns the
        # intent's update leaves alone).
        write_together([
            (sql.take_slots_sql(slot_sql, len(slot_ids)), slot_params + [db_lease] + slot_ids),
            (sql.mark_claimed_sql(token_sql, len(intent_pks)), token_params + [db_lease, db_now] + intent_pks),
            track_creates_sql(intent_pks, now=now),
        ])
    return [Claim(intent_pk=c[0], token=c[3]) for c in claims]


def renew(*, intent_pk: int, token: str) -> bool:
    """Restart a claim's lease from now, if the claim is still this one and still live.

    A claim made by a dispatch waits in the broker until a worker process is free; its lease runs
    meanwhile. Were it to lapse there, another claimer could take its slots and both would be on
    the exchange at once. So a queued execution renews before anything is sent. False: the claim
    is gone or lapsed; nothing may be sent.
    """
    return intent_pk in renew_claims([Claim(intent_pk=intent_pk, token=token)])


def renew_claims(claims: list[Claim]) -> set[int]:
    """Renew several claims (``renew``) in one transaction; return the intent pks still ours.

    A claim is renewed when the intent (token, in flight, lease not lapsed) and both its slots
    (still pointing at it, lease not lapsed) are; one whose slots are not both live is given up:
    its intent's lease is ended now, so it is reclaimed as a lapsed claim would be.
    """
    if not claims:
        return set()
    adapt = connection.ops.adapt_datetimefield_value
    now = timezone.now()
    db_now, db_lease = adapt(now), adapt(now + timedelta(seconds=lease_seconds()))
    pairs, pair_params = claim_pairs(claims)
    # By hand (UPDATE ... RETURNING): ~3x faster than the ORM's form (docs/decisions.md, "Figures behind the hot paths").
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql.renew_intents_sql(pairs), [db_lease, *pair_params, IntentStatus.IN_FLIGHT.value, db_now])
        renewed = [row[0] for row in cur.fetchall()]
        slots: dict[int, int] = {}
        if renewed:
            cur.execute(sql.renew_slots_sql(len(renewed)), [db_lease, *renewed, db_now])
            for (intent_pk,) in cur.fetchall():
                slots[intent_pk] = slots.get(intent_pk, 0) + 1
        kept = {pk for pk in renewed if slots.get(pk) == 2}
        given_up = [pk for pk in renewed if pk not in kept]
        if given_up:
            cur.execute(sql.end_leases_sql(len(given_up)), [db_now, *given_up])
    for claim in claims:
        if claim.intent_pk not in kept:
            logger.info("event=intent_claim_stale intent_pk=%s (reclaimed, finished or lease lapsed)", claim.intent_pk)
    return kept


@dataclass(frozen=True)
class Release:
    """How one claim ends: ``status`` done or failed; with ``retry_at`` the intent goes back to new, due then."""
    intent_pk: int
    token: str
    status: str
    error: str = ""
    exchange_order_id: str = ""
    retry_at: datetime | None = None
    # The intent's slots stay taken until then (a request that timed out may still reach the exchange).
    hold_until: datetime | None = None


def release(*, intent_pk: int, token: str, status: str, error: str = "", exchange_order_id: str = "",
            retry_at: datetime | None = None, hold_until: datetime | None = None) -> bool:
    """End a claim: free its slots (or hold them until ``hold_until``) and set the intent's outcome.
    False if the claim was lost."""
    return intent_pk in release_claims([Release(intent_pk, token, status, error, exchange_order_id, retry_at,
                                                hold_until)])


def timed_out_hold_until(receive_window_s: float, *, now: datetime | None = None) -> datetime:
    """Until when the slots of an intent whose request timed out stay taken: the exchange accepts a
    signed request only within its receive window after the timestamp it carries, which is before
    now; one second more for an exchange clock ahead of ours (Binance takes timestamps up to 1 s
    ahead of its own)."""
    return (now or timezone.now()) + timedelta(seconds=receive_window_s + 1)


def release_claims(releases: list[Release], *, with_writes: list[tuple[str, list]] = ()) -> set[int]:
    """End several claims (``release``); return the intent pks released.

    ``with_writes``: statements written with the releases (``write_together``: one statement on
    PostgreSQL, one transaction elsewhere), e.g. the executor's tracked orders. Inside the caller's
    transaction when there is one. Plain SQL, as the claim: the ORM spent more CPU building these
    updates than they take to run.
    """
    if not releases:
        if with_writes:
            write_together(list(with_writes))
        return set()
    adapt = connection.ops.adapt_datetimefield_value
    now = adapt(timezone.now())
    ts = typed("timestamp with time zone")
    pks = [r.intent_pk for r in releases]
    status_sql, status_params = case_by_id(pks, [getattr(s, "value", s) for s in
                                                 (IntentStatus.NEW if r.retry_at else r.status for r in releases)])
    not_before_sql, not_before_params = case_by_id(pks, [adapt(r.retry_at) for r in releases], ts)
    error_sql, error_params = case_by_id(pks, [r.error[:2000] for r in releases])
    finished_sql, finished_params = case_by_id(pks, [None if r.retry_at else now for r in releases], ts)
    with_order = [r for r in releases if r.exchange_order_id]
    order_sql, order_params = "exchange_order_id", []
    if with_order:
        order_sql, order_params = case_by_id([r.intent_pk for r in with_order],
                                             [r.exchange_order_id for r in with_order], otherwise="exchange_order_id")
    pairs, pair_params = claim_pairs(releases)
    held = [r for r in releases if r.hold_until is not None]
    freed = [r.intent_pk for r in releases if r.hold_until is None]
    slot_writes = [(sql.free_slots_of_sql(len(freed)), freed)] if freed else []
    if held:
        slot_writes.append((sql.hold_slots_of_sql(len(held)),
                            [*(p for r in held for p in (r.intent_pk, adapt(r.hold_until))),
                             *(r.intent_pk for r in held)]))
        for r in held:
            logger.info("event=intent_slots_held intent_pk=%s until=%s (a request that timed out may still "
                        "reach the exchange)", r.intent_pk, r.hold_until.isoformat())
    rows = write_together([
        *with_writes,
        *slot_writes,
        (sql.release_intents_sql(status_sql, not_before_sql, error_sql, finished_sql, order_sql, pairs),
         [*status_params, *not_before_params, *error_params, now, *finished_params, *order_params, *pair_params,
          IntentStatus.IN_FLIGHT.value]),
    ], returning=True)
    released = {row[0] for row in rows}
    for pk in pks:
        if pk not in released:
            logger.warning("event=intent_claim_lost intent_pk=%s", pk)
    return released


def in_flight_counts() -> dict[str, int]:
    """Occupied slots per scope (leases not expired): what /metrics and the tests read."""

    rows = (
        IntentSlot.objects.filter(intent__isnull=False, lease_until__gte=timezone.now())
        .values("scope").annotate(n=Count("id")).order_by()
    )
    return {row["scope"]: row["n"] for row in rows}
