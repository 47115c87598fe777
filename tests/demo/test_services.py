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
