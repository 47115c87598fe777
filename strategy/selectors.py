"""Strategy session reads used outside the cycle: what the trackers follow and which sessions may
still send new orders (the executor's last check, registered with intents in StrategyConfig.ready)."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import connection

from intents.halt import halt_row_sql
from intents.ids import order_id_of
from mmproject.sql import column

from . import sql
from .params import LAST_PRICE_NAMES, reference_market
from .models import SessionStatus, StrategySession
from .order_rows import MarketMakingOrder


def tracker_targets() -> tuple[list[tuple[int, str]], list[int], set[tuple[int, str]]]:
    """What the trackers follow, from one read of the running sessions: the (account, symbol) markets
    they trade on or take their reference price from, the accounts they trade on (whose orders are
    tracked), and the markets whose last trade price one of them quotes around (the market data tracker
    reads it for these only)."""
    rows = StrategySession.objects.filter(status=SessionStatus.RUNNING).values_list(
        "order__exchange_account_id", "order__pair__symbol", "order__price_source_account",
        "order__price_source_market", "order__price_source_type").distinct()
    rows = [row for row in rows if row[0]]
    traded = {(account_id, symbol) for account_id, symbol, *_ in rows}
    sources = {reference_market(*row[:4]) for row in rows}
    last_price = {reference_market(*row[:4]) for row in rows if row[4] in LAST_PRICE_NAMES}
    return sorted(traded | sources), sorted({account_id for account_id, _ in traded}), last_price


def tracked_markets_and_accounts() -> tuple[list[tuple[int, str]], list[int]]:
    """The markets and accounts of ``tracker_targets``."""
    markets, accounts, _ = tracker_targets()
    return markets, accounts


def sessions_accepting_orders(keys) -> set[str]:
    """The strategy keys among ``keys`` whose new orders may leave: the session is running (not
    stopping, stopped or missing), its order's exchange account is not halted and the kill switch is
    off. One plain statement for a whole batch of intents: the last check before an executor sends a
    create."""
    keys = list(dict.fromkeys(keys))
    if settings.STRATEGY_KILL_SWITCH or not keys:  # halt_engaged()'s setting; its row is in the statement
        return set()
    prep = MarketMakingOrder._meta.get_field("order_id").get_db_prep_value
    by_order_id = {str(uuid.UUID(order_id_of(key))): key for key in keys}
    halted, halted_params = halt_row_sql(account=column(MarketMakingOrder, "o", "exchange_account"))
    # By hand: the ORM's two queries cost ~6x this one (docs/decisions.md, "Figures behind the hot paths").
    with connection.cursor() as cur:
        cur.execute(sql.sessions_accepting_sql(len(by_order_id), halted),
                    [*(prep(uuid.UUID(o), connection) for o in by_order_id), SessionStatus.RUNNING.value,
                     *halted_params])
        return {by_order_id[str(uuid.UUID(str(row[0])))] for row in cur.fetchall()}
