"""Test factories (factory_boy) of the models the suite builds: users, assets, exchange accounts, pairs,
orders in any lifecycle state with their payment legs and session, intents and tracked orders.

Every factory gives a valid row on its own; a test passes only what its given/when/then is about.
Money moves only through the ledger's services, so no factory credits or locks funds.
"""
import uuid
from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from exchanges.models import ExchangeAccount
from exchanges.simulator.services import simulator_account_ensure
from intents.models import Intent, IntentKind, IntentStatus, TrackedOrder, TrackedOrderStatus
from ledger.models import Asset
from orders.memo import encode_market_making_create_memo
from orders.models import MarketMakingOrder, MarketMakingPair, OrderState, PaymentState
from strategy.models import SessionStatus, StrategySession
from tests.ledger.helpers import fresh

# Asset ids of the default pair (a test that needs Mixin's real ids passes them).
BTC, USDT = "asset-btc", "asset-usdt"

# States an order reaches only once every payment leg is covered.
_PAID_STATES = {OrderState.PAYMENT_COMPLETE, OrderState.WITHDRAWING, OrderState.WITHDRAWAL_CONFIRMED,
                OrderState.CAMPAIGN_JOINED, OrderState.RUNNING, OrderState.STOPPED, OrderState.PAYING_OUT,
                OrderState.PAID_OUT, OrderState.REFUNDED}
# States an order reaches only after its withdrawal to the exchange started.
_WITHDRAWN_STATES = {OrderState.WITHDRAWING, OrderState.WITHDRAWAL_CONFIRMED, OrderState.CAMPAIGN_JOINED,
                     OrderState.RUNNING, OrderState.STOPPED, OrderState.PAYING_OUT, OrderState.PAID_OUT}
# States whose transition requires (or records) a reason.
_REASONED_STATES = {OrderState.STOPPED, OrderState.PAYING_OUT, OrderState.PAID_OUT, OrderState.REFUNDED,
                    OrderState.FAILED}


class UserFactory(factory.django.DjangoModelFactory):
    """A Django user with password "pw"; ``staff=True`` or ``superuser=True`` for the admin,
    ``permissions=["view_marketmakingorder", ...]`` (codenames) for what a staff user may do."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    class Params:
        staff = factory.Trait(is_staff=True)
        superuser = factory.Trait(is_staff=True, is_superuser=True)

    username = factory.Sequence(lambda n: f"user-{n}")
    email = ""
    password = factory.django.Password("pw")

    @factory.post_generation
    def permissions(user, create, codenames, **kwargs):
        if create and codenames:
            user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


class AssetFactory(factory.django.DjangoModelFactory):
    """An asset's precision row. Fresh ids: the per-process scale cache never sees a rolled-back row's id again."""

    class Meta:
        model = Asset

    asset_id = factory.LazyFunction(lambda: fresh("asset"))
    symbol = factory.Sequence(lambda n: f"A{n}")
    scale = 8


class ExchangeAccountFactory(factory.django.DjangoModelFactory):
    """An account on binance; ``api_secret`` (plain text) is encrypted by the model as it is stored."""

    class Meta:
        model = ExchangeAccount

    exchange_id = "binance"
    label = factory.Sequence(lambda n: f"account-{n}")
    api_key = ""
    base_url = ""


class SimulatedExchangeAccountFactory(ExchangeAccountFactory):
    """An account served by the exchange simulator at ``base_url``: the simulator's own account
    (``sim_label``, same credentials, ``sim_balances``) is made or reset first, as a real exchange's would exist."""

    api_key = factory.Sequence(lambda n: f"sim-key-{n}")
    api_secret = factory.Sequence(lambda n: f"sim-secret-{n}")
    sim_label = factory.LazyAttribute(lambda account: f"sim-{account.label}")
    sim_balances = factory.Dict({"USDT": Decimal("100000"), "BTC": Decimal("10")})

    @classmethod
    def _build(cls, model_class, *args, sim_label, sim_balances, **kwargs):
        return super()._build(model_class, *args, **kwargs)

    @classmethod
    def _create(cls, model_class, *args, sim_label, sim_balances, **kwargs):
        simulator_account_ensure(label=sim_label, api_key=kwargs["api_key"], api_secret=kwargs["api_secret"],
                                 balances=sim_balances)
        return super()._create(model_class, *args, **kwargs)


class PairFactory(factory.django.DjangoModelFactory):
    """BTC/USDT on the exchange of ``exchange_account`` (none by default), no fees;
    ``with_fees=True`` adds the fees the order tests use: 0.0001 of the base asset and 0.002 of ``quote_fee_asset_id``."""

    class Meta:
        model = MarketMakingPair

    class Params:
        with_fees = factory.Trait(
            base_fee_asset_id=factory.SelfAttribute("base_asset_id"), base_fee_amount=Decimal("0.0001"),
            quote_fee_asset_id="asset-eth", quote_fee_amount=Decimal("0.002"),
        )

    exchange_account = None
    exchange_id = factory.LazyAttribute(lambda p: p.exchange_account.exchange_id if p.exchange_account else "binance")
    symbol = "BTC/USDT"
    base_asset_id = BTC
    quote_asset_id = USDT
    base_exchange_asset = "BTC"
    quote_exchange_asset = "USDT"


class PaymentStateFactory(factory.django.DjangoModelFactory):
    """The payment legs of ``order``, as order_create writes them; received in full once the order's
    state says it was paid (``paid=True/False`` to choose)."""

    class Meta:
        model = PaymentState

    class Params:
        paid = factory.LazyAttribute(lambda p: p.order.state in _PAID_STATES)

    order = factory.SubFactory("tests.factories.OrderFactory", payment=None)
    base_asset_id = factory.SelfAttribute("order.pair.base_asset_id")
    base_required = factory.SelfAttribute("order.base_amount")
    base_received = factory.LazyAttribute(lambda p: p.base_required if p.paid else Decimal(0))
    quote_asset_id = factory.SelfAttribute("order.pair.quote_asset_id")
    quote_required = factory.SelfAttribute("order.quote_amount")
    quote_received = factory.LazyAttribute(lambda p: p.quote_required if p.paid else Decimal(0))
    base_fee_asset_id = factory.LazyAttribute(lambda p: p.order.pair.base_fee_asset_id if p.order.pair.base_fee_amount else "")
    base_fee_required = factory.SelfAttribute("order.pair.base_fee_amount")
    base_fee_received = factory.LazyAttribute(lambda p: p.base_fee_required if p.paid else Decimal(0))
    quote_fee_asset_id = factory.LazyAttribute(
        lambda p: p.order.pair.quote_fee_asset_id if p.order.pair.quote_fee_amount else "")
    quote_fee_required = factory.SelfAttribute("order.pair.quote_fee_amount")
    quote_fee_received = factory.LazyAttribute(lambda p: p.quote_fee_required if p.paid else Decimal(0))


class StrategySessionFactory(factory.django.DjangoModelFactory):
    """The session of a running order, due now, at the order's cadence."""

    class Meta:
        model = StrategySession

    order = factory.SubFactory("tests.factories.OrderFactory", state=OrderState.RUNNING, strategy_session=None)
    status = SessionStatus.RUNNING
    cadence_s = factory.SelfAttribute("order.order_refresh_time")
    started_at = factory.LazyFunction(timezone.now)
    next_run_at = factory.SelfAttribute("started_at")
    stopped_at = factory.LazyAttribute(lambda s: s.started_at if s.status == SessionStatus.STOPPED else None)


class OrderFactory(factory.django.DjangoModelFactory):
    """A market-making order in ``state`` (payment_pending by default) with what that state implies:
    its memo, its payment legs (``payment=None`` for none), paid once the state says so, the withdrawal's
    start, the reason of a stop, refund or failure, and a due strategy session when running
    (``strategy_session=None`` for none). ``state`` is given at construction: it is protected afterwards.
    No funds are credited or locked (see tests.runtime_fixtures.make_running_order)."""

    class Meta:
        model = MarketMakingOrder
        skip_postgeneration_save = True

    order_id = factory.LazyFunction(uuid.uuid4)
    user_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    pair = factory.SubFactory(PairFactory)
    exchange_account = factory.SelfAttribute("pair.exchange_account")
    state = OrderState.PAYMENT_PENDING
    memo = factory.LazyAttribute(lambda o: encode_market_making_create_memo(o.pair.pair_id, o.order_id))
    base_amount = Decimal("0.5")
    quote_amount = Decimal("1000")
    bid_spread = Decimal("0.001")
    ask_spread = Decimal("0.001")
    order_amount = Decimal("0.01")
    order_refresh_time = 10
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))
    withdrawal_started_at = factory.LazyAttribute(lambda o: timezone.now() if o.state in _WITHDRAWN_STATES else None)
    reason = factory.LazyAttribute(lambda o: f"test order {o.state}" if o.state in _REASONED_STATES else "")

    payment = factory.RelatedFactory(PaymentStateFactory, factory_related_name="order")
    strategy_session = factory.Maybe(
        factory.LazyAttribute(lambda o: o.state == OrderState.RUNNING),
        yes_declaration=factory.RelatedFactory(StrategySessionFactory, factory_related_name="order"),
    )


class IntentFactory(factory.django.DjangoModelFactory):
    """A new create intent (buy 0.01 BTC/USDT at 30000); ``cancel=True`` for a cancel of ``client_order_id``."""

    class Meta:
        model = Intent

    class Params:
        cancel = factory.Trait(kind=IntentKind.CANCEL, side="", price=None, amount=None)

    intent_id = factory.Sequence(lambda n: f"intent-{n}")
    strategy_key = factory.Sequence(lambda n: f"mm:key-{n}")
    account = factory.SubFactory(ExchangeAccountFactory)
    kind = IntentKind.CREATE
    symbol = "BTC/USDT"
    side = "buy"
    price = Decimal("30000")
    amount = Decimal("0.01")
    client_order_id = factory.Sequence(lambda n: f"client-{n}")
    status = IntentStatus.NEW


class TrackedOrderFactory(factory.django.DjangoModelFactory):
    """Our mirror of an open exchange order (buy 0.01 BTC/USDT at 30000)."""

    class Meta:
        model = TrackedOrder

    client_order_id = factory.Sequence(lambda n: f"tracked-{n}")
    strategy_key = factory.Sequence(lambda n: f"mm:key-{n}")
    account = factory.SubFactory(ExchangeAccountFactory)
    symbol = "BTC/USDT"
    side = "buy"
    price = Decimal("30000")
    amount = Decimal("0.01")
    status = TrackedOrderStatus.OPEN
