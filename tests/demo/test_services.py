"""demo_setup is idempotent: the login, account, pair and the order on its way are reused, its
snapshots are recorded once; an order whose stop an earlier run interrupted is stopped first."""
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from demo.errors import DemoError
from demo.services import DEMO_USER_ID, demo_setup
from exchanges.models import ExchangeAccount
from exchanges.simulator.services import simulator_account_ensure
from ledger.selectors import audit_ledger
from orders.models import MarketMakingOrder, Snapshot
from strategy.models import SessionStatus
from tests.factories import StrategySessionFactory

pytestmark = pytest.mark.embedded

KEY, SECRET = "demo-test-key", "demo-test-secret"


@pytest.fixture
def sim_account(db):
    simulator_account_ensure(label="demo-test", api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal("0")})


def test_second_setup_reuses_the_order_and_records_its_snapshots_once(sim_account, settings):
    # given a first setup that made the demo order and recorded the snapshots paying it
    first = demo_setup(exchange_url="http://127.0.0.1:9/", api_key=KEY, api_secret=SECRET)
    assert first.order_created and first.state == "payment_pending"
    assert first.snapshots == "snapshots: 2 new, 0 already known, 0 malformed"

    # when it runs again (the simulator now on another port)
    second = demo_setup(exchange_url="http://127.0.0.1:10", api_key=KEY, api_secret=SECRET)

    # then the same order is kept and its snapshots are not recorded twice
    assert (second.order_id, second.order_created) == (first.order_id, False)
    assert second.snapshots == "snapshots: 0 new, 2 already known, 0 malformed"
    order = MarketMakingOrder.objects.get(order_id=first.order_id)
    assert order.user_id == DEMO_USER_ID and order.exchange_account.base_url == "http://127.0.0.1:10"
    assert sorted(Snapshot.objects.values_list("amount", flat=True)) == [Decimal("0.5"), Decimal("15000")]
    assert ExchangeAccount.objects.get(label="demo-sim").api_secret == SECRET
    # and the printed login works
    user = get_user_model().objects.get(username=second.admin_user)
    assert user.is_superuser and user.check_password(second.admin_password)


def test_setup_refuses_a_simulator_without_the_account(db):
    with pytest.raises(DemoError, match="no account with API key"):
        demo_setup(exchange_url="http://127.0.0.1:9", api_key="nobody", api_secret="x")


def test_setup_finishes_a_stop_an_earlier_run_interrupted_then_makes_a_new_order(sim, transactional_db):
    # given a running demo order whose stop was interrupted (session stopping), nothing open on the exchange
    account_key, account_secret = "rt-key-0", "rt-secret-0"
    first = demo_setup(exchange_url=sim.base_url, api_key=account_key, api_secret=account_secret)
    MarketMakingOrder.objects.filter(order_id=first.order_id).update(state="running")
    StrategySessionFactory(order=MarketMakingOrder.objects.get(order_id=first.order_id),
                           status=SessionStatus.STOPPING, cadence_s=2, next_run_at=None)

    # when setup runs again
    second = demo_setup(exchange_url=sim.base_url, api_key=account_key, api_secret=account_secret)

    # then the old order is stopped and a new one is on its way
    assert MarketMakingOrder.objects.get(order_id=first.order_id).state == "stopped"
    assert second.order_created and second.order_id != first.order_id and second.state == "payment_pending"
    assert audit_ledger().ok


# --- the demo with the Mixin provider (MM_PAYMENT_PROVIDER=mixin make run) -----------------------------------
@pytest.fixture
def mixin_standin(settings, monkeypatch):
    """The Mixin Safe stand-in over loopback HTTP with the provider's settings pointed at it, as make run does."""
    import os
    import uuid

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from exchanges.crypto import encrypt_secret
    from orders.providers import mixin_safe as safe
    from orders.providers.mixin_standin import MixinSafeStandIn

    monkeypatch.delenv("MIXIN_API_BASE", raising=False)
    session, spend, client_id = Ed25519PrivateKey.generate(), os.urandom(32).hex(), str(uuid.uuid4())
    with MixinSafeStandIn(client_id=client_id, session_public_key=session.public_key(),
                          spend_public_key=safe.spend_public_key(spend)) as standin:
        settings.MM_PAYMENT_PROVIDER = "mixin"
        settings.MIXIN_API_BASE = standin.base_url
        settings.MIXIN_CLIENT_ID = client_id
        settings.MIXIN_SESSION_ID = str(uuid.uuid4())
        settings.MIXIN_SESSION_PRIVATE_KEY = session.private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                                   NoEncryption()).hex()
        settings.MIXIN_SPEND_PRIVATE_KEY = encrypt_secret(spend)
        yield standin


def test_with_mixin_the_demo_user_pays_the_bot_on_the_stand_in_once_and_the_poller_credits_it(
        sim_account, mixin_standin, django_capture_on_commit_callbacks):
    from mmproject.celery import _beat_schedule
    from orders.memo import encode_snapshot_memo
    from orders.services import snapshot_intake
    from orders.services.polling import snapshots_poll_leased

    # given make run with the Mixin provider: beat polls the bot's snapshots
    assert _beat_schedule()["mixin-snapshots"]["task"] == "poll_mixin_snapshots"

    # when the demo is set up: the demo user pays the bot each leg with the order's memo, as transfers
    first = demo_setup(exchange_url="http://127.0.0.1:9/", api_key=KEY, api_secret=SECRET)
    order = MarketMakingOrder.objects.get(order_id=first.order_id)
    memo = encode_snapshot_memo(order.pair.pair_id, order.order_id)
    assert first.state == "payment_pending" and first.snapshots.startswith("mixin: the demo user paid the bot")
    paid = [(s["opponent_id"], s["asset_id"], s["amount"], s["memo"]) for s in mixin_standin.snapshots]
    assert sorted(paid) == sorted([(DEMO_USER_ID, order.pair.base_asset_id, "0.5", memo),
                                   (DEMO_USER_ID, order.pair.quote_asset_id, "15000", memo)])
    # and a second setup before the poller read them pays nothing more (the transfers' trace ids)
    assert demo_setup(exchange_url="http://127.0.0.1:9/", api_key=KEY, api_secret=SECRET).order_id == first.order_id
    assert len(mixin_standin.snapshots) == 2

    # when the beat's poller reads them and intake processes them
    with django_capture_on_commit_callbacks(execute=False):
        assert snapshots_poll_leased(holder="test").new == 2
    assert {snapshot_intake(snapshot_id=s["snapshot_id"]) for s in mixin_standin.snapshots} == {"credited"}

    # then the order's legs are covered by the stand-in's payments, the bot holds them, and a third setup
    # (say, with the stand-in restarted) pays nothing: the payments are recorded
    payment = order.payment.__class__.objects.get(order=order)
    assert payment.is_complete() and (payment.base_received, payment.quote_received) == (Decimal("0.5"),
                                                                                          Decimal("15000"))
    assert mixin_standin.balance(order.pair.quote_asset_id) == Decimal("15000")
    mixin_standin.snapshots.clear()
    third = demo_setup(exchange_url="http://127.0.0.1:9/", api_key=KEY, api_secret=SECRET)
    assert third.snapshots == "mixin: nothing left to pay (the order's payments are recorded)"
    assert mixin_standin.snapshots == [] and audit_ledger().ok


def test_with_mixin_the_demo_pays_only_a_stand_in_and_says_so(sim_account, mixin_standin, settings):
    settings.MIXIN_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    with pytest.raises(DemoError, match=r"the Mixin stand-in at http://127.0.0.1:9 did not take the demo payment"):
        demo_setup(exchange_url="http://127.0.0.1:9/", api_key=KEY, api_secret=SECRET)
    settings.MIXIN_API_BASE = f"{mixin_standin.base_url}/not-a-stand-in"
    with pytest.raises(DemoError, match="is not a Mixin stand-in .* never real Mixin"):
        demo_setup(exchange_url="http://127.0.0.1:9/", api_key=KEY, api_secret=SECRET)
    assert mixin_standin.snapshots == []


def test_with_mixin_a_refund_the_setup_cannot_send_is_left_to_the_sweeper(sim_account, mixin_standin, settings,
                                                                           caplog):
    from demo.services import BTC_ASSET_ID
    from ledger.services import credit_deposit
    from orders.models import Refund, RefundStatus
    from orders.services.refunds import refund_create

    # given a demo order on its way and a refund left pending by an earlier run
    first = demo_setup(exchange_url="http://127.0.0.1:9/", api_key=KEY, api_secret=SECRET)
    credit_deposit(user_id=DEMO_USER_ID, asset_id=BTC_ASSET_ID, amount="1", idempotency_key="t-in")
    refund_create(key="t-refund", user_id=DEMO_USER_ID, asset_id=BTC_ASSET_ID, amount=Decimal("1"), reason="test")
    # when setup runs again where the provider cannot be built (make run's supervisor: settings loaded early)
    settings.MIXIN_CLIENT_ID = ""
    second = demo_setup(exchange_url="http://127.0.0.1:9/", api_key=KEY, api_secret=SECRET)
    # then the setup goes on with the same order, and the refund is left pending, said in the log
    assert second.order_id == first.order_id
    assert Refund.objects.get(key="t-refund").status == RefundStatus.PENDING
    assert "event=demo_resume_refunds_left" in caplog.text and "MIXIN_CLIENT_ID" in caplog.text
