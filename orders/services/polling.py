"""The Mixin snapshot poller in beat (``poll_mixin_snapshots``, every MIXIN_POLL_INTERVAL_S when
MM_PAYMENT_PROVIDER=mixin): one poll at a time across beats, workers and ``poll_snapshots`` runs, through a
lease row (``SweepLease`` named ``mixin_snapshots``, taken by one conditional UPDATE, as the sweeper's), so
two pollers never read the same page at once; the cursor is the provider's persisted one (intake)."""
from __future__ import annotations

import logging
import os
import socket

from ..providers import get_payment_provider
from .intake import PollResult, snapshots_poll
from .resume import sweep_lease_release, sweep_lease_take

logger = logging.getLogger(__name__)

POLL_LEASE_NAME = "mixin_snapshots"


def poll_lease_take(*, holder: str, ttl_s: float) -> bool:
    return sweep_lease_take(holder=holder, ttl_s=ttl_s, name=POLL_LEASE_NAME)


def snapshots_poll_leased(*, holder: str, ttl_s: float = 60) -> PollResult | None:
    """Poll the Mixin provider once under the lease; None when another poller holds it. Provider errors
    propagate after the lease is released (the next beat polls again from the same cursor)."""
    holder = f"{holder}:{socket.gethostname()}:{os.getpid()}"[:128]
    if not poll_lease_take(holder=holder, ttl_s=ttl_s):
        logger.info("event=snapshots_poll_skipped holder=%s: another poller holds the lease", holder)
        return None
    result = None
    try:
        result = snapshots_poll(provider=get_payment_provider("mixin"))
        return result
    finally:
        counts = None if result is None else {"received": result.received, "new": result.new,
                                               "malformed": result.malformed}
        sweep_lease_release(holder=holder, counts=counts, name=POLL_LEASE_NAME)
