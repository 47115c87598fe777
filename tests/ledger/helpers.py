"""Ledger test helpers shared by the test modules and the child processes of the concurrency tests."""
import itertools
import os

_counter = itertools.count()


def fresh(prefix: str) -> str:
    """An id no other test (or earlier call in this process) has used."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


def assert_audit_clean():
    """The ledger audit finds no drift: balances equal their postings, every asset sums to zero."""
    from ledger.selectors import audit_ledger

    report = audit_ledger()
    assert report.ok, "ledger drift:\n" + "\n".join(report.drifts)
    return report
