"""The payment-provider interface: send a transfer to a user or an address, idempotent by request id."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class TransferReceipt:
    ref: str
    tx_id: str = ""


@dataclass(frozen=True)
class DepositTarget:
    """Where an exchange sends the bot an asset: an address and, on chains that need one, a tag/memo."""

    address: str
    tag: str = ""


class PaymentProvider(ABC):
    """Both calls are idempotent: the same ``request_id`` never moves money twice.

    They raise ``TransferRejected`` when the provider refused for good and
    ``TransferUncertain`` when the outcome is unknown (retry with the same request id).
    """

    name: str

    @abstractmethod
    def transfer(self, *, request_id: str, asset_id: str, amount: Decimal, opponent_id: str,
                 memo: str = "") -> TransferReceipt:
        """Pay ``amount`` of ``asset_id`` to the user ``opponent_id``."""

    @abstractmethod
    def withdraw(self, *, request_id: str, asset_id: str, exchange_asset: str, amount: Decimal, address: str,
                 tag: str = "", network: str = "") -> TransferReceipt:
        """Send ``amount`` of ``asset_id`` to an external address (an exchange deposit address)."""

    # --- receiving (the payout after stop: exchange -> bot -> user) ----------------------
    def deposit_target(self, *, asset_id: str, exchange_asset: str, network: str = "") -> DepositTarget:
        """The bot's own deposit address of ``asset_id`` for a withdrawal from an exchange."""
        from ..errors import PayoutNotPossible

        raise PayoutNotPossible(f"the {self.name} payment provider has no deposit address for payouts")

    def deposit_received(self, *, asset_id: str, tx_id: str) -> Decimal | None:
        """The amount of the deposit ``tx_id`` once the bot has it (confirmed), else None."""
        from ..errors import PayoutNotPossible

        raise PayoutNotPossible(f"the {self.name} payment provider cannot see deposits for payouts")
