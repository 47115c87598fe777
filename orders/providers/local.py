"""The local payment provider: incoming snapshots come from ``ingest_snapshots``; outgoing transfers
are recorded in the database, and a transfer to a simulator deposit address credits the simulator."""
from __future__ import annotations

import logging
import uuid
from decimal import Decimal

from django.db import IntegrityError, transaction

from exchanges.simulator.errors import UnknownDepositAddress
from exchanges.simulator.services import simulator_receive_transfer, simulator_withdrawal_sent

from ..errors import TransferRejected
from ..models import OutgoingTransfer
from .base import DepositTarget, PaymentProvider, TransferReceipt

logger = logging.getLogger(__name__)


class LocalPaymentProvider(PaymentProvider):
    name = "local"

    def _record(self, *, request_id: str, **fields) -> tuple[OutgoingTransfer, bool]:
        try:
            with transaction.atomic():
                return OutgoingTransfer.objects.create(request_id=request_id, **fields), True
        except IntegrityError:
            existing = OutgoingTransfer.objects.get(request_id=request_id)
        same = all(getattr(existing, name) == value for name, value in fields.items() if name != "memo")
        if not same:
            raise TransferRejected(f"request id {request_id} was already used for a different transfer")
        return existing, False

    def transfer(self, *, request_id: str, asset_id: str, amount: Decimal, opponent_id: str,
                 memo: str = "") -> TransferReceipt:
        try:
            recipient = str(uuid.UUID(opponent_id))
        except (ValueError, TypeError):
            raise TransferRejected(f"recipient {opponent_id!r} is not a Mixin user id") from None
        record, created = self._record(request_id=request_id, asset_id=asset_id, amount=amount,
                                       opponent_id=recipient, memo=memo)
        logger.info("event=local_transfer request_id=%s opponent_id=%s asset_id=%s amount=%s created=%s",
                    request_id, recipient, asset_id, amount, created)
        return TransferReceipt(ref=str(record.request_id), tx_id=str(record.request_id))

    def withdraw(self, *, request_id: str, asset_id: str, exchange_asset: str, amount: Decimal, address: str,
                 tag: str = "", network: str = "") -> TransferReceipt:

        if not address:
            raise TransferRejected("withdrawal without a destination address")
        with transaction.atomic():
            record, created = self._record(request_id=request_id, asset_id=asset_id, amount=amount,
                                           address=address, tag=tag)
            # Same transaction: the record and the simulator's credit exist together or not at all.
            try:
                simulator_receive_transfer(address=address, asset=exchange_asset, amount=amount, tx_id=str(request_id))
            except UnknownDepositAddress as exc:
                raise TransferRejected(f"address {address} is not a deposit address the local provider can reach: {exc}") from None
        logger.info("event=local_withdrawal request_id=%s address=%s asset=%s amount=%s created=%s",
                    request_id, address, exchange_asset, amount, created)
        return TransferReceipt(ref=str(record.request_id), tx_id=str(request_id))

    # --- receiving: the simulator's withdrawals to the bot's local address are its "chain" ----
    def deposit_target(self, *, asset_id: str, exchange_asset: str, network: str = "") -> DepositTarget:
        return DepositTarget(address=local_deposit_address(asset_id))

    def deposit_received(self, *, asset_id: str, tx_id: str) -> Decimal | None:
        sent = simulator_withdrawal_sent(tx_id=tx_id)
        if sent is None or sent.address != local_deposit_address(asset_id):
            return None
        return sent.amount - sent.fee


def local_deposit_address(asset_id: str) -> str:
    """The local bot's deposit address of an asset (what the exchange simulator's withdrawals are sent to)."""
    return f"local-bot-{asset_id}"
