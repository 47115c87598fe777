"""Fixtures of the user's API: a pair, two users whose tokens act for two Mixin users, and a client per token."""
import json
import uuid
from dataclasses import dataclass
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from tests.factories import PairFactory, UserFactory
from tests.orders.conftest import BTC, ETH, USDT


@dataclass
class Caller:
    """A token holder: its username, the Mixin user its token acts for, the token, and a test client."""

    username: str
    mixin_user_id: str
    token: str
    client: Client

    def call(self, method: str, url: str, body=None, **headers):
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {self.token}")
        kwargs = {}
        if body is not None:
            kwargs = {"data": body if isinstance(body, (str, bytes)) else json.dumps(body),
                      "content_type": "application/json"}
        return getattr(self.client, method)(url, **kwargs, **headers)

    def get(self, url, **headers):
        return self.call("get", url, **headers)

    def post(self, url, body=None, **headers):
        return self.call("post", url, body, **headers)

    def patch(self, url, body=None, **headers):
        return self.call("patch", url, body, **headers)


def make_caller(username: str, mixin_user_id: str | None) -> Caller:
    user = UserFactory(username=username)
    args = ["--mixin-user-id", mixin_user_id] if mixin_user_id else []
    call_command("api_token", "create", user.username, *args, stdout=(out := StringIO()))
    return Caller(username, mixin_user_id or "", out.getvalue().strip(), Client())


@pytest.fixture
def pair(db):
    """BTC/USDT; the base fee is paid in BTC itself, the quote fee in ETH."""
    return PairFactory(base_asset_id=BTC, quote_asset_id=USDT, with_fees=True, quote_fee_asset_id=ETH)


@pytest.fixture
def alice(db):
    return make_caller("alice", str(uuid.uuid4()))


@pytest.fixture
def bob(db):
    return make_caller("bob", str(uuid.uuid4()))


@pytest.fixture
def body(pair):
    """A valid order-create request (the payer is the token's Mixin user)."""
    return dict(pair_id=str(pair.pair_id), base_amount="0.5", quote_amount="1000",
                bid_spread="0.001", ask_spread="0.001", order_amount="0.01")
