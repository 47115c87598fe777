"""``mm_pair create ...`` / ``mm_pair list``: the pairs users can pay into."""
import json

from django.core.management.base import BaseCommand, CommandError

from ledger.amounts import canonical
from orders.errors import OrderError
from orders.models import MarketMakingPair
from orders.services.pairs import pair_create


def pair_json(pair: MarketMakingPair) -> dict:
    return {
        "pair_id": str(pair.pair_id), "symbol": pair.symbol, "exchange_id": pair.exchange_id,
        "exchange_account_id": pair.exchange_account_id, "base_asset_id": pair.base_asset_id,
        "quote_asset_id": pair.quote_asset_id, "enabled": pair.enabled,
        "base_fee": {"asset_id": pair.base_fee_asset_id, "amount": canonical(pair.base_fee_amount)},
        "quote_fee": {"asset_id": pair.quote_fee_asset_id, "amount": canonical(pair.quote_fee_amount)},
    }


class Command(BaseCommand):
    help = "Market-making pairs: create one, or list them as JSON lines."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a pair")
        create.add_argument("--symbol", required=True, help="exchange symbol, e.g. BTC/USDT")
        create.add_argument("--base-asset", required=True, help="Mixin asset id of the base")
        create.add_argument("--quote-asset", required=True, help="Mixin asset id of the quote")
        create.add_argument("--exchange-account", type=int, help="ExchangeAccount id the orders trade on")
        create.add_argument("--exchange", default="", help="ccxt exchange id when no account is given")
        create.add_argument("--base-network", default="")
        create.add_argument("--quote-network", default="")
        create.add_argument("--base-fee-asset", default="")
        create.add_argument("--base-fee", default="0")
        create.add_argument("--quote-fee-asset", default="")
        create.add_argument("--quote-fee", default="0")
        create.add_argument("--disabled", action="store_true")
        sub.add_parser("list", help="list the pairs")

    def handle(self, *args, action, **o):
        if action == "list":
            for pair in MarketMakingPair.objects.order_by("created_at"):
                self.stdout.write(json.dumps(pair_json(pair), sort_keys=True))
            return
        try:
            pair = pair_create(
                symbol=o["symbol"], base_asset_id=o["base_asset"], quote_asset_id=o["quote_asset"],
                exchange_account_id=o["exchange_account"], exchange_id=o["exchange"],
                base_network=o["base_network"], quote_network=o["quote_network"],
                base_fee_asset_id=o["base_fee_asset"], base_fee_amount=o["base_fee"],
                quote_fee_asset_id=o["quote_fee_asset"], quote_fee_amount=o["quote_fee"], enabled=not o["disabled"],
            )
        except OrderError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(pair_json(pair), sort_keys=True))
