"""Log lines that concern an order carry order_id=, bound by context or named by the line's own keys."""
import logging
import uuid

import pytest

from ledger import services as ledger
from mmproject.logcontext import order_id_of_job, order_log_context

logger = logging.getLogger("tests.logcontext")


def messages(caplog) -> list:
    return [record.getMessage() for record in caplog.records if record.name == logger.name or
            record.name.startswith("ledger")]


def test_lines_inside_an_order_context_carry_its_id_once(caplog):
    order_id = str(uuid.uuid4())
    with caplog.at_level(logging.INFO):
        with order_log_context(order_id):
            logger.info("event=local_transfer request_id=%s amount=%s", "r-1", "5")
            logger.info("event=order_transition order_id=%s to=running", order_id)
        logger.info("event=tick slot=%s", 7)
    assert messages(caplog) == [
        f"event=local_transfer request_id=r-1 amount=5 order_id={order_id}",
        f"event=order_transition order_id={order_id} to=running",
        "event=tick slot=7",
    ]


def test_lines_naming_an_order_by_strategy_key_carry_its_id(caplog):
    order_id = str(uuid.uuid4())
    with caplog.at_level(logging.INFO):
        logger.info("event=intent_failed intent_id=x strategy_key=mm:%s reason=%s", order_id, "100% refused")
    assert messages(caplog) == [f"event=intent_failed intent_id=x strategy_key=mm:{order_id} reason=100% refused "
                                f"order_id={order_id}"]


@pytest.mark.embedded
def test_a_ledger_mutation_for_an_order_carries_its_id(db, caplog):
    order_id = str(uuid.uuid4())
    with caplog.at_level(logging.INFO, logger="ledger"):
        ledger.credit_deposit(user_id="u-log", asset_id="asset-x", amount="1.5", idempotency_key=f"log:{order_id}",
                              ref_type="mm_order", ref_id=order_id)
    [line] = [m for m in messages(caplog) if "event=ledger_mutation" in m]
    assert line.endswith(f"ref=mm_order:{order_id} order_id={order_id}")


def test_only_lifecycle_jobs_that_take_an_order_id_bind_one():
    assert order_id_of_job("start_mm", ("abc",)) == "abc"
    assert order_id_of_job("process_market_making_snapshots", ("snap",)) is None
    assert order_id_of_job("strategy_tick", ()) is None
