"""In-flight limits are enforced by the database, whatever the number of claiming processes."""
import json
import subprocess
import sys
from collections import defaultdict
from datetime import timedelta

import pytest
from django.utils import timezone

from exchanges.models import ExchangeAccount
from intents.gates import claim_intents, in_flight_counts, release, sync_slots
from intents.models import Intent, IntentKind, IntentSlot, IntentStatus
from tests.factories import ExchangeAccountFactory, IntentFactory


def make_accounts(n):
    return ExchangeAccountFactory.create_batch(n)


def limited_accounts(settings, n, *, in_flight, per_account):
    """``n`` accounts with their slots for these in-flight limits (global, per account)."""
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = in_flight
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = per_account
    accounts = make_accounts(n)
    sync_slots([a.pk for a in accounts])
    return accounts


def make_intents(accounts, keys_per_account, per_key):
    rows = []
    for account in accounts:
        for k in range(keys_per_account):
            for j in range(per_key):
                key = f"mm:{account.pk}:{k}"
                rows.append(IntentFactory.build(cancel=True, intent_id=f"{key}:{j}", strategy_key=key, account=account,
                                                client_order_id=f"c{account.pk}x{k}x{j}"))
    Intent.objects.bulk_create(rows)


def lapse(claim):
    """Let a claim's lease run out: on its intent and on both its slots."""
    lapsed = timezone.now() - timedelta(seconds=1)
    Intent.objects.filter(pk=claim.intent_pk).update(lease_until=lapsed)
    IntentSlot.objects.filter(intent_id=claim.intent_pk).update(lease_until=lapsed)


def max_overlap(intervals):
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


@pytest.mark.django_db
@pytest.mark.embedded
def test_claims_respect_global_account_and_strategy_limits(settings):
    accounts = limited_accounts(settings, 4, in_flight=3, per_account=1)
    make_intents(accounts, keys_per_account=2, per_key=2)

    claims = claim_intents(max_claims=10)

    claimed = Intent.objects.filter(pk__in=[c.intent_pk for c in claims])
    assert len(claims) == 3
    assert len({i.account_id for i in claimed}) == 3
    assert claim_intents(max_claims=10) == []
    assert sum(n for scope, n in in_flight_counts().items() if scope.startswith("account:")) == 3


@pytest.mark.django_db
@pytest.mark.embedded
def test_one_in_flight_per_strategy_key(settings):
    [account] = limited_accounts(settings, 1, in_flight=8, per_account=8)
    make_intents([account], keys_per_account=1, per_key=3)

    first = claim_intents(max_claims=8)
    assert len(first) == 1
    assert claim_intents(max_claims=8) == []
    release(intent_pk=first[0].intent_pk, token=first[0].token, status=IntentStatus.DONE)
    assert len(claim_intents(max_claims=8)) == 1


@pytest.mark.django_db
@pytest.mark.embedded
def test_expired_claim_is_reclaimed_and_the_old_token_loses(settings):
    [account] = limited_accounts(settings, 1, in_flight=1, per_account=1)
    make_intents([account], keys_per_account=1, per_key=1)
    [crashed] = claim_intents(max_claims=1)

    later = timezone.now() + timedelta(seconds=3600)
    [again] = claim_intents(max_claims=1, now=later)

    assert again.intent_pk == crashed.intent_pk and again.token != crashed.token
    assert release(intent_pk=crashed.intent_pk, token=crashed.token, status=IntentStatus.DONE) is False
    assert release(intent_pk=again.intent_pk, token=again.token, status=IntentStatus.DONE) is True
    intent = Intent.objects.get(pk=again.intent_pk)
    assert intent.status == IntentStatus.DONE and intent.attempts == 2


@pytest.mark.django_db
@pytest.mark.embedded
def test_retry_at_puts_intent_back_not_before(settings):
    [account] = make_accounts(1)
    sync_slots([account.pk])
    make_intents([account], keys_per_account=1, per_key=1)
    [claim] = claim_intents(max_claims=1)
    release(intent_pk=claim.intent_pk, token=claim.token, status=IntentStatus.FAILED,
            retry_at=timezone.now() + timedelta(seconds=60))

    assert claim_intents(max_claims=1) == []
    assert len(claim_intents(max_claims=1, now=timezone.now() + timedelta(seconds=61))) == 1


# PostgreSQL only: eight processes claiming at once on row locks (SKIP LOCKED, the claim race retried); SQLite
# serializes every claim on its one write lock (the claim's SQLite path is run by the tests above and below)
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_limits_hold_across_eight_processes(settings, child_env, tmp_path):
    # Given 3 accounts, 50 strategy keys and 400 intents, limits 5 global / 2 per account
    accounts = limited_accounts(settings, 3, in_flight=5, per_account=2)
    rows = []
    for n in range(400):
        account = accounts[n % 3]
        key = f"mm:{n % 50}"
        rows.append(IntentFactory.build(cancel=True, intent_id=f"i{n}", strategy_key=key, account=account,
                                        client_order_id=f"c{n}"))
    Intent.objects.bulk_create(rows)
    env = {**child_env, "STRATEGY_INTENT_MAX_IN_FLIGHT": "5", "STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE": "2"}

    # When 8 processes claim, hold and release concurrently
    outs = [tmp_path / f"claims-{i}.jsonl" for i in range(8)]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.intents.claimer", str(out), str(i), "60"], env=env)
             for i, out in enumerate(outs)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0

    # Then every intent ran exactly once and no limit was ever exceeded
    records = [json.loads(line) for out in outs for line in out.read_text().splitlines()]
    assert sorted(r[0] for r in records) == sorted(Intent.objects.values_list("pk", flat=True))
    assert max_overlap([(r[3], r[4]) for r in records]) <= 5
    by_account, by_key = defaultdict(list), defaultdict(list)
    for _, account_id, key, start, end in records:
        by_account[account_id].append((start, end))
        by_key[key].append((start, end))
    assert max(max_overlap(v) for v in by_account.values()) <= 2
    assert max(max_overlap(v) for v in by_key.values()) == 1
    assert max_overlap([(r[3], r[4]) for r in records]) >= 3, "the test must actually run claims in parallel"


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_queued_execution_whose_claim_was_taken_over_sends_nothing(settings):
    # Given an intent claimed by a dispatch, whose execution waited in the broker past its lease
    from intents.executor import intent_execute
    from intents.gates import renew

    accounts = limited_accounts(settings, 1, in_flight=1, per_account=1)
    make_intents(accounts, keys_per_account=2, per_key=1)
    [late] = claim_intents(max_claims=1)
    lapse(late)

    # When another claimer takes it over, and then the late execution starts
    [other] = claim_intents(max_claims=1)
    outcome = intent_execute(intent_pk=late.intent_pk, token=late.token)

    # Then the late one sends nothing (it never reached the exchange client: the account has no
    # credentials) and only the new claim holds the slots
    assert other.intent_pk == late.intent_pk and other.token != late.token
    assert outcome == "claim_lost"
    assert Intent.objects.get(pk=late.intent_pk).sent_at is None
    assert renew(intent_pk=other.intent_pk, token=other.token)
    assert in_flight_counts() == {"global": 1, f"account:{accounts[0].pk}": 1}


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_lapsed_claim_nobody_took_is_not_run_either(settings):
    # A lease that lapsed is not renewed even when no one has taken the slots yet: between the
    # lapse and the renewal another claimer could have, so the execution gives the claim up.
    from intents.executor import intent_execute

    accounts = make_accounts(1)
    sync_slots([a.pk for a in accounts])
    make_intents(accounts, keys_per_account=1, per_key=1)
    [claim] = claim_intents(max_claims=1)
    lapse(claim)

    assert intent_execute(intent_pk=claim.intent_pk, token=claim.token) == "claim_lost"
    # and it is claimable again (reclaimed with a new token)
    [again] = claim_intents(max_claims=1)
    assert again.intent_pk == claim.intent_pk and again.token != claim.token


@pytest.mark.django_db
@pytest.mark.embedded
def test_an_account_with_intents_cannot_be_deleted():
    # Given an account with an intent (the intent's foreign key has no database constraint)
    from django.db.models import ProtectedError

    account, spare = make_accounts(2)
    make_intents([account], keys_per_account=1, per_key=1)

    # Then deleting it is refused, and an account without intents still can be deleted
    with pytest.raises(ProtectedError):
        account.delete()
    assert Intent.objects.filter(account=account).count() == 1
    spare.delete()
    assert not ExchangeAccount.objects.filter(pk=spare.pk).exists()


@pytest.mark.django_db
@pytest.mark.embedded
def test_claims_are_renewed_and_released_together_and_a_lost_one_is_left_alone(settings):
    # Given three claims of three keys, the third taken over by another claimer after its lease lapsed
    from intents.gates import Release, release_claims, renew_claims

    accounts = limited_accounts(settings, 1, in_flight=3, per_account=3)
    make_intents(accounts, keys_per_account=3, per_key=1)
    first, second, lost = claim_intents(max_claims=3)
    lapse(lost)
    [other] = claim_intents(max_claims=3)
    assert other.intent_pk == lost.intent_pk

    # When the batch renews and then releases all three
    assert renew_claims([first, second, lost]) == {first.intent_pk, second.intent_pk}
    released = release_claims([
        Release(first.intent_pk, first.token, IntentStatus.DONE, exchange_order_id="x1"),
        Release(second.intent_pk, second.token, IntentStatus.FAILED, error="rejected",
                retry_at=timezone.now() + timedelta(seconds=60)),
        Release(lost.intent_pk, lost.token, IntentStatus.DONE),
    ])

    # Then the two still its own end as told, and the one taken over keeps its new claim
    assert released == {first.intent_pk, second.intent_pk}
    rows = {i.pk: i for i in Intent.objects.all()}
    assert (rows[first.intent_pk].status, rows[first.intent_pk].exchange_order_id) == (IntentStatus.DONE, "x1")
    assert rows[first.intent_pk].finished_at is not None and rows[first.intent_pk].not_before is None
    retried = rows[second.intent_pk]
    assert (retried.status, retried.last_error, retried.finished_at) == (IntentStatus.NEW, "rejected", None)
    assert retried.not_before > timezone.now()
    assert (rows[lost.intent_pk].status, rows[lost.intent_pk].claim_token) == (IntentStatus.IN_FLIGHT, other.token)



@pytest.mark.django_db
@pytest.mark.embedded
def test_a_claim_takes_a_fixed_number_of_statements_and_claims_only_cancels_while_halted(settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from intents.halt import halt_set

    [account] = limited_accounts(settings, 1, in_flight=8, per_account=8)
    # (engaged first: engaging it supersedes the unsent creates there are)
    halt_set(engaged=True, reason="test", by="test")
    make_intents([account], keys_per_account=3, per_key=1)  # three cancels of three keys
    creates = [IntentFactory.build(intent_id=f"create:{k}", strategy_key=f"mm:c{k}", account=account,
                                   client_order_id=f"create{k}", layer=0)
               for k in range(3)]
    Intent.objects.bulk_create(creates)

    # While the kill switch is engaged (its row, read in the claim's first statements), only cancels
    with CaptureQueriesContext(connection) as queries:
        claims = claim_intents(max_claims=8)
    claimed = Intent.objects.filter(pk__in=[c.intent_pk for c in claims])
    assert len(claims) == 3 and {i.kind for i in claimed} == {IntentKind.CANCEL}
    # Free slots, walk settings and kill switch, both walks, then the slots, intents and tracked
    # orders together (one statement each on PostgreSQL; SQLite: the halt and each walk and write apart)
    statements = [q["sql"][:80] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]  # the test's own
    assert len(statements) == (4 if connection.vendor == "postgresql" else 7), statements

    # Released, the creates are claimed and their tracked orders written with the claim
    halt_set(engaged=False, reason="test", by="test")
    claims = claim_intents(max_claims=8)
    claimed = Intent.objects.filter(pk__in=[c.intent_pk for c in claims])
    assert {i.kind for i in claimed} == {IntentKind.CREATE} and len(claims) == 3
    from intents.models import TrackedOrder, TrackedOrderStatus

    tracked = TrackedOrder.objects.filter(client_order_id__in=[c.client_order_id for c in creates])
    assert sorted((t.client_order_id, t.status) for t in tracked) == [
        (f"create{k}", TrackedOrderStatus.PENDING_CREATE) for k in range(3)]
