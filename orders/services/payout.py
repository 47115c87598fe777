"""Payout after stop (the spec's "unlockFunds then debitWithdrawal", with the money really moved):

1. ``payout_begin``: a stopped order becomes ``paying_out`` with one ``Payout`` row per asset it held at stop
   (the amounts its stop unlocked in the ledger, ``mm-unlock:{order}:{asset}``).
2. ``payout_advance`` (the ``withdraw_to_user`` job polls it), per row, each step idempotent and resumable:
   - ``pending``: withdraw from the exchange account to the bot's deposit address of the asset
     (``exchanges.services.exchange_withdraw`` under the row's ``client_id``: a retried step finds the first
     withdrawal in the exchange's history instead of sending a second one) -> ``withdrawing``;
   - ``withdrawing``: once the exchange says the withdrawal completed and the provider sees it arrive, the
     user's ledger is debited the exchange's fee (``debit_fee``) and the rest as the refund
     ``mm-payout:{order}:{asset}`` (``debit_withdrawal``) -> ``arrived``;
   - ``arrived``: the refund is transferred to the user (request id derived from its key: paid once; a
     transfer the provider refuses is compensated back to the user's balance) -> ``paid``.
   A withdrawal the exchange refuses or reports failed leaves the money on the exchange and the user's
   balance untouched: the row is ``failed`` with the reason.
3. Every row paid: the order is ``paid_out``. A row failed (and the others final): the order is ``failed``
   with where the money is.

``keep_on_exchange`` (admin, ``mm_payout ORDER --keep``) holds the funds on the exchange: no payout starts
until the operator asks for one (``mm_payout ORDER``, the admin action), which clears it.
"""
from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import ccxt
from django.conf import settings
from django.db import transaction

from exchanges.errors import ExchangeError
from exchanges.policy import Action, error_action
from exchanges.services import exchange_withdraw, exchange_withdrawal_find
from ledger.selectors import entry_amounts
from ledger.services import debit_fee
from mmproject.jobs import enqueue_after_commit

from ..errors import ExchangeUnavailable, OrderNotFound, PayoutNotPossible
from ..models import ORDER_REF, MarketMakingOrder, OrderState, Payout, PayoutStatus, Refund, RefundStatus
from ..outcomes import Outcome
from ..providers import get_payment_provider
from .refunds import refund_create, refund_execute
from .transitions import apply_transition, order_lock

logger = logging.getLogger(__name__)

PAYOUT_NAMESPACE = uuid.UUID("7f4e2b1c-93a5-4d0e-8c61-2b5a9e0f3d47")
P = PayoutStatus
JOB = "withdraw_to_user"


def payout_client_id(order_id, asset_id: str) -> str:
    """The exchange withdrawal's client id: the same on every retry and machine, 32 hex characters (fits
    Binance's withdrawOrderId and OKX's clientId)."""
    return uuid.uuid5(PAYOUT_NAMESPACE, f"mm-payout:{order_id}:{asset_id}").hex


def payout_refund_key(order_id, asset_id: str) -> str:
    return f"mm-payout:{order_id}:{asset_id}"


def _order(order_id) -> MarketMakingOrder:
    try:
        return MarketMakingOrder.objects.select_related("pair", "exchange_account").get(order_id=order_id)
    except (MarketMakingOrder.DoesNotExist, ValueError):
        raise OrderNotFound(f"no market-making order {order_id}") from None


def payout_keep(*, order_id, by: str) -> None:
    """The operator keeps the order's funds on the exchange: no payout until one is asked for."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state not in (OrderState.RUNNING, OrderState.CAMPAIGN_JOINED, OrderState.STOPPED):
            raise PayoutNotPossible(f"order {order.order_id} is {order.state}: its funds are no longer to keep")
        order.keep_on_exchange = True
        order.save(update_fields=["keep_on_exchange", "updated_at"])
    logger.info("event=payout_kept order_id=%s by=%s", order_id, by)


def payout_request(*, order_id, by: str, lift_hold: bool = True) -> str:
    """Start the payout of a stopped order now; the job does the rest. The operator's request
    (``lift_hold``: the command, the admin) clears ``keep_on_exchange``; the user's (the API) is refused
    while the operator holds the funds, checked under the order's lock."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.keep_on_exchange and not lift_hold:
            raise PayoutNotPossible(f"order {order.order_id}: the operator keeps its funds on the exchange; ask the "
                                    "operator to pay them out")
        if order.keep_on_exchange:
            order.keep_on_exchange = False
            order.save(update_fields=["keep_on_exchange", "updated_at"])
        outcome = _begin(order, by=by)
    return outcome


def payout_after_stop(order: MarketMakingOrder, *, by: str) -> str:
    """Called in the stop's transaction once the order is stopped: start the payout unless the operator keeps
    the funds on the exchange, payouts are manual (MM_PAYOUT_AFTER_STOP=manual), or nothing was moved there
    (MM_WITHDRAW_MODE other than transfer)."""
    if order.keep_on_exchange or settings.MM_PAYOUT_AFTER_STOP != "auto" or settings.MM_WITHDRAW_MODE != "transfer":
        return Outcome.NOOP
    return _begin(order, by=by)


def _begin(order: MarketMakingOrder, *, by: str) -> str:
    """Under the order's lock: stopped -> paying_out with one row per asset held; queue the job."""
    if order.state == OrderState.PAYING_OUT:
        enqueue_after_commit(JOB, str(order.order_id))
        return Outcome.PENDING
    if order.state != OrderState.STOPPED:
        raise PayoutNotPossible(f"order {order.order_id} is {order.state}; only a stopped order is paid out")
    if order.keep_on_exchange:
        raise PayoutNotPossible(f"order {order.order_id}: the operator keeps its funds on the exchange "
                                "(mm_payout ORDER_ID to pay out)")
    pair = order.pair
    assets = ((pair.base_asset_id, pair.base_exchange_asset, pair.base_network),
              (pair.quote_asset_id, pair.quote_exchange_asset, pair.quote_network))
    unlocked = entry_amounts(f"mm-unlock:{order.order_id}:{asset_id}" for asset_id, _, _ in assets)
    for asset_id, exchange_asset, network in assets:
        amount = unlocked.get(f"mm-unlock:{order.order_id}:{asset_id}") or Decimal(0)
        if amount > 0:
            Payout.objects.get_or_create(order=order, asset_id=asset_id, defaults=dict(
                exchange_asset=exchange_asset, network=network or "", amount=amount,
                client_id=payout_client_id(order.order_id, asset_id)))
    apply_transition(order, "begin_payout", by=by)
    logger.info("event=payout_begun order_id=%s assets=%s", order.order_id,
                ",".join(f"{p.asset_id}:{p.amount}" for p in order.payouts.all()))
    enqueue_after_commit(JOB, str(order.order_id))
    return Outcome.PENDING


def payout_advance(*, order_id) -> str:
    """Take every payout row of the order one step further; ``pending`` while any is on its way, else the
    order's final outcome (``complete``: paid out; ``failed``). Raises ExchangeUnavailable or
    TransferUncertain when a step's outcome is not known yet (the job retries the same step)."""
    order = _order(order_id)
    if order.state != OrderState.PAYING_OUT:
        return Outcome.NOOP
    account_id = order.exchange_account_id or order.pair.exchange_account_id
    provider = get_payment_provider()
    for payout in order.payouts.order_by("pk"):
        if payout.status == P.PENDING:
            _withdraw(payout, account_id=account_id, provider=provider)
        if payout.status == P.WITHDRAWING:
            _receive(payout, account_id=account_id, provider=provider)
        if payout.status == P.ARRIVED:
            _pay(payout)
    return _conclude(order_id)


def _withdraw(payout: Payout, *, account_id: int, provider) -> None:
    try:
        target = provider.deposit_target(asset_id=payout.asset_id, exchange_asset=payout.exchange_asset,
                                         network=payout.network)
        withdrawal = exchange_withdraw(account_id=account_id, asset=payout.exchange_asset, amount=payout.amount,
                                       address=target.address, tag=target.tag, network=payout.network,
                                       client_id=payout.client_id)
    except PayoutNotPossible as exc:
        return _fail(payout, f"{exc}; the funds stay on the exchange")
    except ExchangeError as exc:
        return _fail(payout, f"exchange account: {exc}; the funds stay on the exchange")
    except ccxt.BaseError as exc:
        if error_action(exc, "create") in (Action.RETRY, Action.LOOKUP):
            # Maybe sent: the next try finds it by client id in the withdrawal history before sending.
            raise ExchangeUnavailable(f"withdrawal {payout.client_id}: {type(exc).__name__}: {exc}") from exc
        return _fail(payout, f"the exchange refused the withdrawal: {type(exc).__name__}: {exc}; "
                             "the funds stay on the exchange")
    Payout.objects.filter(pk=payout.pk, status=P.PENDING).update(
        status=P.WITHDRAWING, address=target.address, tag=target.tag, withdrawal_id=withdrawal.id)
    payout.refresh_from_db()
    logger.info("event=payout_withdrawn order_id=%s asset_id=%s amount=%s withdrawal_id=%s status=%s",
                payout.order.order_id, payout.asset_id, payout.amount, withdrawal.id, withdrawal.status)


def _receive(payout: Payout, *, account_id: int, provider) -> None:
    try:
        withdrawal = exchange_withdrawal_find(account_id=account_id, asset=payout.exchange_asset,
                                              client_id=payout.client_id)
    except ccxt.BaseError as exc:
        raise ExchangeUnavailable(f"withdrawal {payout.client_id}: {type(exc).__name__}: {exc}") from exc
    if withdrawal is None:
        return _fail(payout, "the exchange has no withdrawal under our client id any more; check the exchange "
                             "account's withdrawal history before paying by hand")
    if withdrawal.status in ("failed", "canceled"):
        return _fail(payout, f"the exchange reports the withdrawal {withdrawal.status}; the funds are back on "
                             "the exchange (the user's balance is untouched)")
    if withdrawal.status != "ok" or not withdrawal.tx_id:
        return None
    try:
        received = provider.deposit_received(asset_id=payout.asset_id, tx_id=withdrawal.tx_id)
    except PayoutNotPossible as exc:
        # The money left the exchange; whether it arrived cannot be read now (e.g. the provider refuses the
        # bot's credentials). Still on its way as far as we know: polled again, and once the job's checks
        # are used up the order stays paying_out, overdue for the operator (mm_orders_overdue).
        logger.warning("event=payout_arrival_unknown order_id=%s asset_id=%s tx_id=%s error=%s",
                       payout.order.order_id, payout.asset_id, withdrawal.tx_id, exc)
        return None
    if received is None:
        return None
    received = received.normalize() if received else Decimal(0)
    with transaction.atomic():
        row = Payout.objects.select_for_update().select_related("order").get(pk=payout.pk)
        if row.status != P.WITHDRAWING:
            payout.refresh_from_db()
            return None
        order = row.order
        fee = row.amount - received
        if fee < 0:
            return _fail(payout, f"received {received}, more than the {row.amount} withdrawn: check by hand")
        if fee > 0:
            debit_fee(user_id=order.user_id, asset_id=row.asset_id, amount=fee,
                      idempotency_key=f"{payout_refund_key(order.order_id, row.asset_id)}:fee",
                      ref_type=ORDER_REF, ref_id=str(order.order_id))
        if received > 0:
            refund_create(key=payout_refund_key(order.order_id, row.asset_id), user_id=order.user_id,
                          asset_id=row.asset_id, amount=received, reason="payout after stop", order=order)
        row.status = P.ARRIVED if received > 0 else P.PAID
        row.tx_id, row.fee, row.received = withdrawal.tx_id, fee, received
        row.save(update_fields=["status", "tx_id", "fee", "received", "updated_at"])
    payout.status, payout.tx_id, payout.fee, payout.received = row.status, row.tx_id, row.fee, row.received
    logger.info("event=payout_arrived order_id=%s asset_id=%s received=%s fee=%s tx_id=%s", order.order_id,
                payout.asset_id, received, fee, withdrawal.tx_id)


def _pay(payout: Payout) -> None:
    refund = Refund.objects.get(key=payout_refund_key(payout.order.order_id, payout.asset_id))
    status = refund_execute(refund_id=refund.pk)  # TransferUncertain propagates: the job retries
    if status == RefundStatus.SENT:
        Payout.objects.filter(pk=payout.pk, status=P.ARRIVED).update(status=P.PAID)
        payout.status = P.PAID
    elif status == RefundStatus.COMPENSATED:
        _fail(payout, f"the transfer to the user was refused ({refund.error}); the amount is back on the user's "
                      "balance and the funds are in the bot's wallet")


def _fail(payout: Payout, reason: str) -> None:
    Payout.objects.filter(pk=payout.pk).exclude(status__in=(P.PAID, P.FAILED)).update(status=P.FAILED, error=reason)
    payout.status, payout.error = P.FAILED, reason
    logger.warning("event=payout_failed order_id=%s asset_id=%s amount=%s reason=%r", payout.order.order_id,
                   payout.asset_id, payout.amount, reason)


def _conclude(order_id) -> str:
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state != OrderState.PAYING_OUT:
            return Outcome.NOOP
        rows = list(order.payouts.order_by("pk"))
        if any(p.status not in (P.PAID, P.FAILED) for p in rows):
            return Outcome.PENDING
        failed = [p for p in rows if p.status == P.FAILED]
        if not failed:
            apply_transition(order, "finish_payout", by=f"task:{JOB}")
            return Outcome.COMPLETE
        reason = "payout failed: " + "; ".join(f"{p.asset_id} {p.amount}: {p.error}" for p in failed)
        apply_transition(order, "fail", by=f"task:{JOB}", reason=reason)
        return Outcome.FAILED


def payout_abandon(*, order_id, polls: int) -> str:
    """The job polled ``polls`` times and a withdrawal is still on its way: leave the order ``paying_out``
    (the money is between the exchange and the bot, nothing is lost) and say so; the lifecycle sweeper or
    the operator (``mm_payout``) starts the job again."""
    logger.warning("event=payout_still_pending order_id=%s polls=%s: a withdrawal has not arrived yet; the "
                   "sweeper polls it again", order_id, polls)
    return Outcome.TIMEOUT
