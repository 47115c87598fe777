"""Every named statement of intents/sql.py and strategy/sql.py is planned by the database it runs on
(EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite): a wrong table, column or type fails here, not on
the hot path. PostgreSQL-only statements (``strategy.sql.POSTGRESQL_ONLY``) are skipped on SQLite."""
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from intents import sql as intents_sql
from intents.gates import Claim
from intents.halt import halt_row_sql
from mmproject.sql import case_by_id, typed
from strategy import sql as strategy_sql
from tests.factories import TrackedOrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def statements():
    """(name, sql, params) of each named statement, with example arguments."""
    now = timezone.now()
    db_now = connection.ops.adapt_datetimefield_value(now)
    lease = connection.ops.adapt_datetimefield_value(now + timedelta(seconds=30))
    claims = [Claim(intent_pk=1, token="t1"), Claim(intent_pk=2, token="t2")]
    pairs, pair_params = intents_sql.claim_pairs(claims)
    slot_case, slot_params = case_by_id([10, 11], [1, 2])
    token_case, token_params = case_by_id([1, 2], ["t1", "t2"])
    ts = typed("timestamp with time zone")
    halted, halted_params = halt_row_sql()
    status_case, status_params = case_by_id([1], ["done"])
    not_before_case, not_before_params = case_by_id([1], [None], ts)
    error_case, error_params = case_by_id([1], [""])
    finished_case, finished_params = case_by_id([1], [db_now], ts)
    order_case, order_params = case_by_id([1], ["ex-1"], otherwise="exchange_order_id")
    track_sql, track_params = intents_sql.track_creates_sql([1, 2], now=now)
    rows = [
        ("intents.free_slots", intents_sql.free_slots_sql(), ["global", 8, "account:%", 1, db_now]),
        *[(f"intents.candidates[{n}]", intents_sql.candidates_sql(condition, 2, kinds), [db_now, 1, 2, 4])
          for n, condition in enumerate(intents_sql.CLAIMABLE) for kinds in ("", intents_sql.CANCELS_ONLY)],
        ("intents.free_slots_of", intents_sql.free_slots_of_sql(2), [1, 2]),
        ("intents.hold_slots_of", intents_sql.hold_slots_of_sql(2), [1, lease, 2, lease, 1, 2]),
        ("intents.take_slots", intents_sql.take_slots_sql(slot_case, 2), [*slot_params, lease, 10, 11]),
        ("intents.mark_claimed", intents_sql.mark_claimed_sql(token_case, 2), [*token_params, lease, db_now, 1, 2]),
        ("intents.track_creates", track_sql, track_params),
        ("intents.renew_intents", intents_sql.renew_intents_sql(pairs), [lease, *pair_params, "in_flight", db_now]),
        ("intents.renew_slots", intents_sql.renew_slots_sql(2), [lease, 1, 2, db_now]),
        ("intents.end_leases", intents_sql.end_leases_sql(2), [db_now, 1, 2]),
        ("intents.release_intents", intents_sql.release_intents_sql(status_case, not_before_case, error_case, finished_case,
                                                             order_case, pairs),
         [*status_params, *not_before_params, *error_params, db_now, *finished_params, *order_params, *pair_params,
          "in_flight"]),
        ("intents.read_batch", intents_sql.read_batch_sql(2), [1, 2]),
        ("intents.write_sent_at", intents_sql.write_sent_at_sql(2), [db_now, 1, 2]),
        ("intents.halt_row", halted, halted_params),
        ("strategy.tick_acquire", strategy_sql.tick_acquire_sql(), ["h", db_now, 1, db_now, "tick", 1, db_now]),
        ("strategy.sessions_accepting", strategy_sql.sessions_accepting_sql(1, halted),
         ["5f0c6b1e000040008000000000000000", "running", *halted_params]),
    ]
    if connection.vendor == "postgresql":
        keys = ["mm:a", "mm:b"]
        rows += [
            ("intents.both_walks", intents_sql.both_walks_sql(2, ""), [db_now, 1, 2, 4] * 2),
            ("strategy.due_sessions", strategy_sql.due_sessions_sql(), ["running", now]),
            ("strategy.active_orders", strategy_sql.active_orders_sql(), [keys, keys, ["open"], "filled", now]),
            ("strategy.supersede_unsent", strategy_sql.supersede_unsent_sql(), ["superseded", now, "", [1, 2]]),
            ("strategy.schedule_next_runs", strategy_sql.schedule_next_runs_sql(), [[1], now, [1], now, [1, 2]]),
            ("strategy.tick_release", strategy_sql.tick_release_sql(), [now, 5, 5, "tick", "h", [5, 10]]),
        ]
    return rows


def named():
    """Every statement builder of the two modules (to prove the list above misses none)."""
    builders = {f"intents.{n}" for n in dir(intents_sql) if n.endswith("_sql")}
    builders |= {f"strategy.{n}" for n in dir(strategy_sql) if n.endswith("_sql")}
    return builders


def test_every_statement_builder_is_planned_here():
    covered = {name.split("[")[0] + "_sql" for name, _, _ in statements()}
    missing = named() - covered
    if connection.vendor != "postgresql":
        missing -= {f"strategy.{f.__name__}" for f in strategy_sql.POSTGRESQL_ONLY} | {"intents.both_walks_sql"}
    assert missing == set()


@pytest.mark.parametrize("name, sql, params", statements(), ids=[row[0] for row in statements()])
def test_each_named_statement_is_planned_by_the_database(name, sql, params):
    TrackedOrderFactory()  # tables with a row, so the planner has something to look at
    explain = "EXPLAIN " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    with connection.cursor() as cur:
        cur.execute(explain + sql, params)
        assert cur.fetchall(), name
