"""The demo bootstrap: an operator login, an exchange account on the simulator, a pair, a paid order.

The account trades through the ccxt class MM_DEMO_EXCHANGE names (binance by default, or okx: the
simulator's two dialects); it is made through exchanges.services.exchange_account_create.

The order is paid as the payment provider receives payments: with ``local`` (the default), snapshots fed to
``ingest_snapshots``; with ``mixin``, transfers of the demo user to the bot on the local Mixin Safe stand-in
(``make run`` starts it), which the beat's poller (``poll_mixin_snapshots``) then reads like any payment.

Idempotent: a second run keeps the login (password set again), the account (base URL updated),
the pair, and the demo order that is still on its way or running; its snapshots have fixed ids (local) or
its transfers fixed trace ids (mixin), and only what is not yet paid is paid, so a second run pays nothing
twice. A new order is made only when the last one ended (stopped, failed, refunded) or its payment deadline
passed.
"""
from __future__ import annotations

import io
import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from exchanges.errors import ExchangeSetupError
from exchanges.management.commands.exchange_simulator import simulator_exchange_account_ensure, simulator_exchange_id
from exchanges.models import ExchangeAccount, SimAccount
from ledger.amounts import canonical
from orders.errors import ProviderError
from orders.memo import encode_market_making_create_memo, encode_snapshot_memo
from orders.models import MarketMakingOrder, MarketMakingPair, OrderState, Snapshot, SnapshotOutcome
from orders.outcomes import Outcome
from orders.services import order_create, order_stop
from orders.services.resume import lifecycle_resume
from strategy.models import SessionStatus, StrategySession

from .errors import DemoError

logger = logging.getLogger(__name__)

# Mixin asset ids of BTC and USDT (ERC-20), as the real payment provider would send them.
BTC_ASSET_ID = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT_ASSET_ID = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
DEMO_NAMESPACE = uuid.UUID("5b1f0f53-2a2c-4f0e-9a57-6f2f4f0c1d2e")
DEMO_USER_ID = str(uuid.uuid5(DEMO_NAMESPACE, "demo-user"))
DEMO_ACCOUNT_LABEL = "demo-sim"
DEMO_SYMBOL = "BTC/USDT"

# Parameters that trade visibly on the simulator (BTC/USDT from 30000, up to 0.2 % a step, one
# step a second): two layers 0.05 % from the mid, refreshed every 5 s.
# Quoting for uptime: a filled level is quoted again at once (no filled_order_delay), and an order within
# 1 bp of where it should be stays on the book at a refresh (fewer requests, its place in the queue kept).
DEMO_ORDER = dict(
    base_amount="0.5", quote_amount="15000", bid_spread="0.0005", ask_spread="0.0005", order_amount="0.01",
    order_refresh_time=5, number_of_layers=2, amount_change_per_layer="0.005", amount_change_type="fixed",
    filled_order_delay="0", order_refresh_tolerance_pct="0.0001",
)
STOP_WAIT_S = 10.0
STANDIN_TIMEOUT_S = 5.0
PROVIDERS = ("local", "mixin")
# Orders in these states are the demo order of this run: it is reused, not made again.
ACTIVE_STATES = (
    OrderState.PAYMENT_PENDING, OrderState.PAYMENT_COMPLETE, OrderState.WITHDRAWING,
    OrderState.WITHDRAWAL_CONFIRMED, OrderState.CAMPAIGN_JOINED, OrderState.RUNNING,
)


@dataclass(frozen=True)
class DemoSetup:
    order_id: str
    order_created: bool
    state: str
    snapshots: str
    pair_id: str
    exchange_account: str
    exchange_id: str
    exchange_url: str
    admin_user: str
    admin_password: str

    def as_dict(self) -> dict:
        return asdict(self)


def admin_credentials() -> tuple[str, str]:
    """DEMO_ADMIN_USER / DEMO_ADMIN_PASSWORD (defaults: operator / operator-demo)."""
    return (os.environ.get("DEMO_ADMIN_USER") or "operator", os.environ.get("DEMO_ADMIN_PASSWORD") or "operator-demo")


def operator_ensure(*, username: str, password: str) -> None:
    """A superuser ``username`` whose password is ``password`` (set again on every run)."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        User.objects.create_superuser(username=username, email="", password=password)
        return
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()


def exchange_account_ensure(*, exchange_url: str, api_key: str, api_secret: str, exchange_id: str) -> ExchangeAccount:
    """The demo's account of ccxt id ``exchange_id``, pointed at the simulator on ``exchange_url``."""
    if not SimAccount.objects.filter(api_key=api_key).exists():
        raise DemoError(f"the simulator has no account with API key {api_key!r}: start `manage.py exchange_simulator` "
                        "first (it creates the account and markets)")
    current = ExchangeAccount.objects.filter(label=DEMO_ACCOUNT_LABEL).first()
    if current is not None and current.exchange_id != exchange_id:
        # Fills are settled once per (exchange, trade id): an order that has traded through one dialect must
        # not be read again through the other, where the same trades would look new.
        busy = (MarketMakingOrder.objects.filter(user_id=DEMO_USER_ID, pair__exchange_account=current,
                                                 state__in=ACTIVE_STATES)
                .exclude(state=OrderState.PAYMENT_PENDING).order_by("-created_at").first())
        if busy is not None:
            raise DemoError(f"demo order {busy.order_id} is {busy.state} on {current.exchange_id}: stop it first "
                            f"(`manage.py stop_mm {busy.order_id}`) or run with MM_DEMO_EXCHANGE={current.exchange_id}")
    try:
        return simulator_exchange_account_ensure(label=DEMO_ACCOUNT_LABEL, exchange_id=exchange_id, api_key=api_key,
                                                 api_secret=api_secret, base_url=exchange_url.rstrip("/"))
    except ExchangeSetupError as exc:
        raise DemoError(str(exc)) from None


def pair_ensure(*, account: ExchangeAccount) -> MarketMakingPair:
    pair, _ = MarketMakingPair.objects.update_or_create(
        exchange_account=account, symbol=DEMO_SYMBOL,
        defaults=dict(exchange_id=account.exchange_id, base_asset_id=BTC_ASSET_ID, quote_asset_id=USDT_ASSET_ID,
                      base_exchange_asset="BTC", quote_exchange_asset="USDT", enabled=True),
    )
    return pair


def demo_order_latest() -> MarketMakingOrder | None:
    """The newest order of the demo user (any state)."""
    return MarketMakingOrder.objects.filter(user_id=DEMO_USER_ID).select_related("pair").order_by("-created_at").first()


def _order_ensure(pair: MarketMakingPair) -> tuple[MarketMakingOrder, bool]:
    current = (MarketMakingOrder.objects.filter(user_id=DEMO_USER_ID, pair=pair, state__in=ACTIVE_STATES)
               .order_by("-created_at").first())
    if current is not None and current.state == OrderState.RUNNING and StrategySession.objects.filter(
            order=current).exclude(status=SessionStatus.RUNNING).exists():
        # An earlier run was interrupted while stopping it: finish that stop, then start afresh.
        outcome = order_stop(order_id=current.order_id, by="command:demo_setup", wait_s=STOP_WAIT_S,
                             reason="demo_setup: finishing the stop an earlier run began")
        if outcome == Outcome.STOPPING:
            raise DemoError(f"demo order {current.order_id} is still stopping: orders of it are open or in flight "
                            f"on the exchange after {STOP_WAIT_S:g}s; run `manage.py stop_mm {current.order_id}`")
        current = None
    expired = current is not None and current.state == OrderState.PAYMENT_PENDING and current.expires_at <= timezone.now()
    if current is not None and not expired:
        return current, False
    return order_create(user_id=DEMO_USER_ID, pair_id=pair.pair_id, by="command:demo_setup", **DEMO_ORDER), True


def demo_snapshots(order: MarketMakingOrder) -> list[dict]:
    """The snapshots paying ``order`` in full, from the demo user; ids fixed per order and asset."""
    memo = encode_snapshot_memo(order.pair.pair_id, order.order_id)
    return [
        {"snapshot_id": str(uuid.uuid5(DEMO_NAMESPACE, f"snapshot:{order.order_id}:{asset_id}")),
         "asset_id": asset_id, "amount": str(amount), "opponent_id": order.user_id, "memo": memo,
         "created_at": timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")}
        for asset_id, amount in ((order.pair.base_asset_id, order.base_amount),
                                 (order.pair.quote_asset_id, order.quote_amount))
    ]


def _ingest_local(order: MarketMakingOrder) -> str:
    """Pay ``order`` with local snapshots through ``ingest_snapshots`` (the local provider)."""
    folder = Path(settings.VAR_DIR) / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"snapshots-{order.order_id}.jsonl"
    path.write_text("".join(json.dumps(s, sort_keys=True) + "\n" for s in demo_snapshots(order)), encoding="utf-8")
    out = io.StringIO()
    call_command("ingest_snapshots", str(path), stdout=out)
    return out.getvalue().strip()


def mixin_standin_url() -> str:
    """The Mixin stand-in's root. ``make run``'s supervisor loads its settings before it starts the stand-in
    and points MIXIN_API_BASE at it in the environment (scripts/run_local.py), so the environment's value
    is read first; a test sets the setting."""
    return (os.environ.get("MIXIN_API_BASE") or settings.MIXIN_API_BASE).rstrip("/")


def demo_mixin_payments(order: MarketMakingOrder) -> list[dict]:
    """What the demo user still has to pay the bot for ``order``, per asset: every leg's requirement less
    the snapshots with the order's memo already recorded (received or credited). Each transfer's trace id
    is fixed by the order, asset and amount, so a stand-in that has it already pays nothing more."""
    required: dict[str, Decimal] = {}
    for _, asset_id, amount, _ in order.payment.legs():
        if amount > 0:
            required[asset_id] = required.get(asset_id, Decimal(0)) + amount
    memo_hex = encode_snapshot_memo(order.pair.pair_id, order.order_id)
    payments = []
    for asset_id, amount in sorted(required.items()):
        recorded = sum(Snapshot.objects.filter(
            memo_hex=memo_hex, asset_id=asset_id, opponent_id=order.user_id,
            outcome__in=(SnapshotOutcome.RECEIVED, SnapshotOutcome.CREDITED)).values_list("amount", flat=True),
            Decimal(0))
        if amount > recorded:
            due = canonical(amount - recorded)
            payments.append({
                "user_id": order.user_id, "asset_id": asset_id, "amount": due,
                "memo": encode_market_making_create_memo(order.pair.pair_id, order.order_id),
                "trace_id": str(uuid.uuid5(DEMO_NAMESPACE, f"mixin-payment:{order.order_id}:{asset_id}:{due}"))})
    return payments


def _pay_mixin(order: MarketMakingOrder) -> str:
    """Pay ``order`` by transfers of the demo user to the bot on the local Mixin Safe stand-in (its
    ``POST /_standin/pay``): each becomes a snapshot of the bot that the beat's poller reads."""
    base = mixin_standin_url()
    payments = demo_mixin_payments(order)
    for payment in payments:
        try:
            response = requests.post(f"{base}/_standin/pay", json=payment, timeout=STANDIN_TIMEOUT_S)
            answer = response.json() if response.content else {}
        except (requests.RequestException, ValueError) as exc:
            raise DemoError(f"the Mixin stand-in at {base} did not take the demo payment: {type(exc).__name__}: "
                            f"{exc}; `MM_PAYMENT_PROVIDER=mixin make run` starts it") from None
        if response.status_code != 200 or not isinstance(answer, dict) or "data" not in answer:
            raise DemoError(f"{base} is not a Mixin stand-in (POST /_standin/pay answered HTTP "
                            f"{response.status_code}): the demo pays only through the local stand-in, never "
                            "real Mixin")
        logger.info("event=demo_mixin_paid order_id=%s asset_id=%s amount=%s snapshot_id=%s", order.order_id,
                    payment["asset_id"], payment["amount"], answer["data"].get("snapshot_id"))
    if not payments:
        return "mixin: nothing left to pay (the order's payments are recorded)"
    paid = ", ".join(f"{p['amount']} of {p['asset_id']}" for p in payments)
    return (f"mixin: the demo user paid the bot {paid} on the stand-in at {base}; the beat's poller reads them "
            f"within {settings.MIXIN_POLL_INTERVAL_S:g}s")


def demo_setup(*, exchange_url: str, api_key: str, api_secret: str, exchange_id: str | None = None) -> DemoSetup:
    """Everything the demo needs, then its order paid as the payment provider receives payments: local
    snapshots through ``ingest_snapshots`` (``local``), or the demo user's transfers to the bot on the Mixin
    stand-in (``mixin``); the account's ccxt id is ``exchange_id`` (default: MM_DEMO_EXCHANGE, else binance)."""
    if settings.MM_PAYMENT_PROVIDER not in PROVIDERS:
        raise DemoError(f"the demo pays its order through the local provider or the Mixin stand-in; "
                        f"MM_PAYMENT_PROVIDER is {settings.MM_PAYMENT_PROVIDER!r}")
    username, password = admin_credentials()
    with transaction.atomic():
        operator_ensure(username=username, password=password)
        account = exchange_account_ensure(exchange_url=exchange_url, api_key=api_key, api_secret=api_secret,
                                          exchange_id=exchange_id or simulator_exchange_id())
        pair = pair_ensure(account=account)
    order, created = _order_ensure(pair)
    if not created and order.state != OrderState.RUNNING:
        # An earlier run stopped mid-way (e.g. Ctrl-C while the order was withdrawing): queue again
        # whatever job the database says is due. The sweeper is idempotent. A refund it cannot send from here
        # (the provider unsure, or not reachable from the supervisor, whose settings were loaded before make
        # run pointed MIXIN_* at the stand-in) stays pending: the beat's sweeper sends it from the worker.
        try:
            lifecycle_resume()
        except ProviderError as exc:
            logger.warning("event=demo_resume_refunds_left error=%s: the beat's sweeper sends them", exc)
    snapshots = "none needed"
    if order.state == OrderState.PAYMENT_PENDING:
        snapshots = _pay_mixin(order) if settings.MM_PAYMENT_PROVIDER == "mixin" else _ingest_local(order)
    order.refresh_from_db()
    logger.info("event=demo_setup order_id=%s created=%s state=%s account=%s exchange_id=%s base_url=%s",
                order.order_id, created, order.state, account.label, account.exchange_id, account.base_url)
    return DemoSetup(order_id=str(order.order_id), order_created=created, state=order.state, snapshots=snapshots,
                     pair_id=str(pair.pair_id), exchange_account=account.label, exchange_id=account.exchange_id,
                     exchange_url=account.base_url,
                     admin_user=username, admin_password=password)

