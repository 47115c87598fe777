"""The Mixin snapshot poller in beat (``poll_mixin_snapshots``, every MIXIN_POLL_INTERVAL_S when
MM_PAYMENT_PROVIDER=mixin): one poll at a time across beats, workers and ``poll_snapshots`` runs, through a
lease row (``SweepLease`` named ``mixin_snapshots``, taken by one conditional UPDATE, as the sweeper's), so
two pollers never read the same page at once; the cursor is the provider's persisted one (intake)."""
from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone

from ..models import SweepLease
from ..providers import get_payment_provider
from .intake import PollResult, snapshots_poll

logger = logging.getLogger(__name__)

POLL_LEASE_NAME = "mixin_snapshots"


def poll_lease_take(*, holder: str, ttl_s: float) -> bool:
    now = timezone.now()
    SweepLease.objects.get_or_create(name=POLL_LEASE_NAME)
    taken = SweepLease.objects.filter(name=POLL_LEASE_NAME).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now)).update(
        holder=holder, lease_until=now + timedelta(seconds=ttl_s), last_started_at=now)
    if not taken:
        SweepLease.objects.filter(name=POLL_LEASE_NAME).update(skipped=F("skipped") + 1)
    return bool(taken)


def poll_lease_release(*, holder: str, result: PollResult | None) -> None:
    done = SweepLease.objects.filter(name=POLL_LEASE_NAME, holder=holder)
    if result is None:
        done.update(lease_until=None)
        return
    done.update(lease_until=None, last_finished_at=timezone.now(), runs=F("runs") + 1,
                last_counts={"received": result.received, "new": result.new, "malformed": result.malformed})


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
        poll_lease_release(holder=holder, result=result)
