"""Bearer tokens (only a digest stored, bound to a Mixin user by ``api_token``) and the per-user rate limit:
401 without a valid token, 429 with Retry-After over the limit, counted atomically in Redis or the database
so that concurrent requests never pass it."""
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from api import throttling
from api.models import ApiRateCount, ApiToken
from orders.models import MarketMakingOrder
from tests.api.conftest import make_caller
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

ORDERS = "/api/orders/"
PAIRS = "/api/pairs/"


def token_command(*args) -> str:
    call_command("api_token", *args, stdout=(out := StringIO()))
    return out.getvalue().strip()


# --- tokens ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer   ", "Bearer mm_not-a-token", "Token {token}",
                                           "{token}", "Bearer {token} extra", "Basic YWxpY2U6cHc="])
def test_anonymous_and_bad_tokens_get_401_with_the_bearer_challenge(alice, body, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization.format(token=alice.token)}
    for response in (alice.client.post(ORDERS, body, content_type="application/json", **headers),
                     alice.client.get(PAIRS, **headers)):
        assert response.status_code == 401
        assert "Bearer" in response.json()["error"] and response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not MarketMakingOrder.objects.exists()


def test_the_token_of_an_inactive_user_gets_401(alice):
    get_user_model().objects.filter(username="alice").update(is_active=False)
    assert alice.get(PAIRS).status_code == 401


def test_a_new_token_replaces_the_old_keeps_its_binding_and_only_digests_are_stored(alice, body):
    new = token_command("create", "alice")
    row = ApiToken.objects.get()
    assert new != alice.token and row.mixin_user_id == alice.mixin_user_id
    assert alice.token not in row.digest and new not in row.digest and len(row.digest) == 64
    assert alice.post(ORDERS, body).status_code == 401
    assert alice.post(ORDERS, body, HTTP_AUTHORIZATION=f"Bearer {new}").status_code == 201
    token_command("revoke", "alice")
    assert alice.get(PAIRS, HTTP_AUTHORIZATION=f"Bearer {new}").status_code == 401


def test_api_token_binds_a_token_to_a_mixin_user_and_refuses_what_is_not_one(db):
    UserFactory(username="dave")
    token_command("create", "dave")
    assert ApiToken.objects.get().mixin_user_id == ""
    mixin = str(uuid.uuid4())
    said = token_command("bind", "dave", "--mixin-user-id", mixin.upper())
    assert said == f"token of dave bound to Mixin user {mixin.upper()}"
    assert ApiToken.objects.get().mixin_user_id == mixin
    with pytest.raises(CommandError, match="must be a UUID, got 'bob'"):
        token_command("create", "dave", "--mixin-user-id", "bob")
    with pytest.raises(CommandError, match="bind needs --mixin-user-id"):
        token_command("bind", "dave")
    with pytest.raises(CommandError, match="no user 'nobody'"):
        token_command("create", "nobody")
    UserFactory(username="erin")
    with pytest.raises(CommandError, match="erin has no API token"):
        token_command("bind", "erin", "--mixin-user-id", mixin)
    assert ApiToken.objects.get().mixin_user_id == mixin


# --- rate limit -----------------------------------------------------------------------------------------------
@pytest.fixture(params=["database", "redis"])
def throttle(request, settings, monkeypatch):
    """The rate limit counting in the database or in the broker's Redis (there only when the broker is Redis),
    keys of this test's own, and a clock 15.5 s into a window (no window ends mid-test)."""
    if request.param == "redis":
        if not settings.CELERY_BROKER_URL.startswith("redis://"):
            pytest.skip("the broker is not Redis")
        settings.API_THROTTLE_URL = settings.CELERY_BROKER_URL
    else:
        settings.API_THROTTLE_URL = "database"
    settings.API_THROTTLE_KEY_PREFIX = f"test-api-rate:{uuid.uuid4().hex}"
    now = 60 * 29_000_000 + 15.5
    monkeypatch.setattr(throttling, "clock", lambda: now)
    return now


def test_over_the_limit_a_user_gets_429_with_retry_after_and_others_do_not(alice, bob, body, settings, throttle):
    settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_S = 3, 60
    # when alice sends 4 (a refused one counts too)
    statuses = [alice.post(ORDERS, body).status_code, alice.get(PAIRS).status_code, alice.post(ORDERS, {}).status_code]
    limited = alice.post(ORDERS, body)
    # then the 4th is refused until the window ends, and bob is not affected
    assert statuses == [201, 200, 400]
    assert limited.status_code == 429 and limited["Retry-After"] == "45"
    assert limited.json() == {"error": "rate limit exceeded; retry in 45 s"}
    assert MarketMakingOrder.objects.count() == 1
    assert bob.get(PAIRS).status_code == 200


def test_the_next_window_lets_requests_through_again(alice, settings, throttle, monkeypatch):
    settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_S = 1, 60
    assert [alice.get(PAIRS).status_code for _ in range(2)] == [200, 429]
    monkeypatch.setattr(throttling, "clock", lambda: throttle + 60)
    assert [alice.get(PAIRS).status_code for _ in range(2)] == [200, 429]
    if settings.API_THROTTLE_URL == "database":  # the user's older windows are gone
        assert list(ApiRateCount.objects.values_list("slot", "count")) == [(int((throttle + 60) // 60), 2)]


def test_the_schema_is_not_rate_limited(alice, settings, throttle):
    settings.API_RATE_LIMIT = 1
    assert [alice.get("/api/schema/").status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_300_concurrent_requests_let_exactly_the_limit_through(live_server, settings, throttle):
    # given a limit of 60 a minute and one token
    settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_S = 60, 60
    caller = make_caller("burst", str(uuid.uuid4()))
    start = threading.Barrier(30)

    def send(n):
        if n < 30:
            start.wait()
        request = Request(live_server.url + PAIRS, headers={"Authorization": f"Bearer {caller.token}"})
        try:
            with urlopen(request, timeout=60) as response:
                return response.status, None
        except HTTPError as error:
            return error.code, error.headers.get("Retry-After")

    # when 300 requests are sent by 30 threads at once
    with ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(send, range(300)))

    # then exactly 60 pass, and every other one is a 429 with its Retry-After
    statuses = [status for status, _ in results]
    assert statuses.count(200) == 60, {s: statuses.count(s) for s in set(statuses)}
    assert statuses.count(429) == 240
    assert {retry for status, retry in results if status == 429} == {"45"}
