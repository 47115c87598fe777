"""The Mixin snapshot poller in beat (orders.services.polling, task poll_mixin_snapshots): scheduled only with
the Mixin provider, one poller at a time across beats (a lease), a failed poll releases the lease and the task
survives it. Reading the snapshots themselves: tests/orders/test_mixin_provider.py (the stand-in)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from mmproject.celery import _beat_schedule, app
from orders.errors import ProviderError
from orders.models import SweepLease
from orders.services.polling import POLL_LEASE_NAME, poll_lease_take, snapshots_poll_leased

pytestmark = pytest.mark.embedded


def test_beat_polls_mixin_snapshots_every_five_seconds_only_with_the_mixin_provider(settings):
    settings.MM_PAYMENT_PROVIDER = "mixin"
    entry = _beat_schedule()["mixin-snapshots"]
    assert entry["task"] == "poll_mixin_snapshots" and entry["schedule"] == timedelta(seconds=5)
    assert app.conf.task_routes["poll_mixin_snapshots"] == {"queue": "market-making"}
    settings.MM_PAYMENT_PROVIDER = "local"
    assert "mixin-snapshots" not in _beat_schedule()


def test_one_poller_at_a_time_and_a_failed_poll_releases_the_lease(db, settings):
    settings.MM_PAYMENT_PROVIDER = "mixin"
    settings.MIXIN_CLIENT_ID = ""  # the provider cannot be built: a poll that runs fails with ProviderError

    # another beat's poller holds the lease: this one skips without asking Mixin anything
    assert poll_lease_take(holder="other-beat", ttl_s=60)
    assert snapshots_poll_leased(holder="test") is None
    assert SweepLease.objects.get(name=POLL_LEASE_NAME).skipped == 1

    # once its lease has passed, the next poll runs; its failure releases the lease for the next beat
    SweepLease.objects.filter(name=POLL_LEASE_NAME).update(lease_until=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ProviderError, match="MIXIN_CLIENT_ID"):
        snapshots_poll_leased(holder="test")
    assert SweepLease.objects.get(name=POLL_LEASE_NAME).lease_until is None

    # and the beat's task logs it and goes on
    app.loader.import_default_modules()  # the apps' tasks, as a worker registers them
    result = app.tasks["poll_mixin_snapshots"].apply()
    assert result.successful(), result.traceback
    assert SweepLease.objects.get(name=POLL_LEASE_NAME).lease_until is None
