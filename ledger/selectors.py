"""Reads of the ledger: the audit that proves balances equal the sum of their postings, what an order
holds and owes, and which asset an exchange currency code is."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.models import Sum

from .amounts import exact_context
from .models import Account, Balance, ExchangeCurrency, LedgerEntry, Posting

ZERO = Decimal(0)


@dataclass
class AuditReport:
    ok: bool
    drifts: list[str]
    balances_checked: int
    assets_checked: int
    entries_checked: int
    # Derived balances of system accounts: {(account, asset_id): amount}.
    system_balances: dict[tuple[str, str], Decimal] = field(default_factory=dict)


def posting_sums(keys: tuple[str, ...], queryset=None) -> dict[tuple, Decimal]:
    """Sum of posting amounts grouped by ``keys``.

    PostgreSQL sums exactly in SQL. SQLite stores amounts as text and would sum them as floats,
    so there the rows are streamed and summed in Decimal.
    """
    queryset = Posting.objects.all() if queryset is None else queryset
    if connection.vendor == "postgresql":
        return {
            tuple(row[k] for k in keys): row["total"]
            for row in queryset.values(*keys).annotate(total=Sum("amount")).order_by()
        }
    totals: dict[tuple, Decimal] = defaultdict(lambda: ZERO)
    with exact_context():  # 31+ digit sums must not be rounded to Decimal's default 28
        for *group, amount in queryset.values_list(*keys, "amount").iterator(chunk_size=5000):
            totals[tuple(group)] += amount
    return dict(totals)


def audit_ledger() -> AuditReport:
    """Recompute every user balance and every asset's total from the postings; name each drift."""
    drifts: list[str] = []

    user_sums = posting_sums(("account", "user_id", "asset_id"),
                      Posting.objects.filter(account__in=[Account.USER_AVAILABLE, Account.USER_LOCKED]))
    balances = {
        (user_id, asset_id): (available, locked)
        for user_id, asset_id, available, locked in Balance.objects.values_list(
            "user_id", "asset_id", "available", "locked").iterator(chunk_size=5000)
    }
    expected_keys = {(user_id, asset_id) for _, user_id, asset_id in user_sums}
    for key in sorted(expected_keys | set(balances)):
        user_id, asset_id = key
        want_available = user_sums.get((Account.USER_AVAILABLE, user_id, asset_id), ZERO)
        want_locked = user_sums.get((Account.USER_LOCKED, user_id, asset_id), ZERO)
        have_available, have_locked = balances.get(key, (ZERO, ZERO))
        if key not in balances and (want_available or want_locked):
            drifts.append(f"balance {user_id}:{asset_id} missing; postings say available={want_available} "
                          f"locked={want_locked}")
            continue
        if have_available != want_available:
            drifts.append(f"balance {user_id}:{asset_id} available={have_available}, postings sum to "
                          f"{want_available} (drift {have_available - want_available})")
        if have_locked != want_locked:
            drifts.append(f"balance {user_id}:{asset_id} locked={have_locked}, postings sum to "
                          f"{want_locked} (drift {have_locked - want_locked})")
        if have_available < 0 or have_locked < 0:
            drifts.append(f"balance {user_id}:{asset_id} is negative: available={have_available} "
                          f"locked={have_locked}")

    asset_sums = posting_sums(("asset_id",))
    for (asset_id,), total in sorted(asset_sums.items()):
        if total != 0:
            drifts.append(f"asset {asset_id}: postings sum to {total}, not 0")

    entry_sums = posting_sums(("entry_id", "asset_id"))
    for (entry_id, asset_id), total in sorted(entry_sums.items()):
        if total != 0:
            drifts.append(f"entry {entry_id}: {asset_id} postings sum to {total}, not 0")

    system = {
        (account, asset_id): total
        for (account, asset_id), total in posting_sums(
            ("account", "asset_id"), Posting.objects.exclude(account__in=[Account.USER_AVAILABLE, Account.USER_LOCKED])
        ).items()
    }
    return AuditReport(
        ok=not drifts,
        drifts=drifts,
        balances_checked=len(expected_keys | set(balances)),
        assets_checked=len(asset_sums),
        entries_checked=len({entry_id for entry_id, _ in entry_sums}),
        system_balances=system,
    )


def ref_positions(*, ref_type: str, ref_ids) -> dict[tuple[str, str], Decimal]:
    """What each referenced thing (e.g. an order) holds locked, per asset: {(ref_id, asset_id): amount}.

    The sum of the ``user_locked`` postings of the entries carrying that ref: its locks minus its
    unlocks, plus its settled fills net of fees. This is what a stopped order really holds.
    """
    queryset = Posting.objects.filter(account=Account.USER_LOCKED, entry__ref_type=ref_type,
                                      entry__ref_id__in=[str(r) for r in ref_ids])
    return {(ref_id, asset_id): total for (ref_id, asset_id), total in
            posting_sums(("entry__ref_id", "asset_id"), queryset).items()}


def ref_fee_debts(*, ref_type: str, ref_ids=None) -> dict[tuple[str, str], Decimal]:
    """What each referenced thing (e.g. an order) owes in fees charged in an asset it does not hold
    (a third currency): {(ref_id, asset_id): amount}, negative (owed). Every ref of ``ref_type``
    when ``ref_ids`` is None. These never count in ref_positions: they are not funds the order has.
    """
    queryset = Posting.objects.filter(account=Account.FEE_DEBT, entry__ref_type=ref_type)
    if ref_ids is not None:
        queryset = queryset.filter(entry__ref_id__in=[str(r) for r in ref_ids])
    return {(ref_id, asset_id): total for (ref_id, asset_id), total in
            posting_sums(("entry__ref_id", "asset_id"), queryset).items() if total}


def exchange_currency_asset(*, exchange_id: str, code: str) -> str | None:
    """The Mixin asset id an exchange's currency code is mapped to (ExchangeCurrency), or None."""
    return ExchangeCurrency.objects.filter(exchange_id=exchange_id.strip().lower(),
                                           code=code.strip().upper()).values_list("asset_id", flat=True).first()


def exchange_currency_codes(*, exchange_ids) -> dict[tuple[str, str], str]:
    """{(exchange id, asset id): currency code} of the mapped currencies of those exchanges."""
    return {(exchange_id, asset_id): code for exchange_id, asset_id, code in ExchangeCurrency.objects.filter(
        exchange_id__in=[e.lower() for e in exchange_ids]).values_list("exchange_id", "asset_id", "code")}


def entry_amounts(keys) -> dict[str, Decimal]:
    """The amount of each applied mutation among ``keys`` (idempotency keys): {key: amount}; a key never
    applied is absent."""
    return dict(LedgerEntry.objects.filter(idempotency_key__in=list(keys)).values_list("idempotency_key", "amount"))
