"""Child side of the concurrent intake test: N OS processes deliver the same snapshot at once.

Run as ``python -m tests.orders.intake_worker PROCS SNAPSHOT_JSON`` with ``DATABASE_URL`` set to
the test database (``child_env``). Django is set up once, then PROCS children are forked (no
connection open at fork time), meet at a barrier, each records and processes the snapshot, and
counts the jobs it enqueued (from the dispatcher's log events). The JSON summary is the last
line of stdout.
"""
import json
import logging
import multiprocessing
import re
import sys
import traceback

BARRIER_TIMEOUT_S = 60
RESULT_TIMEOUT_S = 120


class _JobCounter(logging.Handler):
    def __init__(self):
        super().__init__()
        self.jobs = []

    def emit(self, record):
        match = re.match(r"event=job_enqueued job=(\S+)", record.getMessage())
        if match:
            self.jobs.append(match.group(1))


def _child(barrier, results, payload):
    from orders.services import snapshot_intake, snapshot_record

    counter = _JobCounter()
    logging.getLogger("mmproject.jobs").addHandler(counter)
    try:
        barrier.wait(BARRIER_TIMEOUT_S)
        snapshot, created = snapshot_record(provider="local", data=payload)
        outcome = snapshot_intake(snapshot_id=snapshot.snapshot_id)
        results.put({"created": created, "outcome": outcome, "jobs": counter.jobs})
    except Exception:
        results.put({"error": traceback.format_exc()})


def main(procs: int, payload: dict) -> dict:
    import django

    django.setup()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    children = [ctx.Process(target=_child, args=(barrier, results, payload)) for _ in range(procs)]
    for child in children:
        child.start()
    out = [results.get(timeout=RESULT_TIMEOUT_S) for _ in children]
    for child in children:
        child.join(timeout=RESULT_TIMEOUT_S)
    return {"results": out}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), json.loads(sys.argv[2]))))
