"""Exchange account secrets: encrypted at rest, never in repr, admin pages or logs; key rotation."""
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from exchanges.admin import ExchangeAccountForm
from exchanges.errors import SecretDecryptionError
from exchanges.models import ExchangeAccount
from tests.factories import ExchangeAccountFactory

pytestmark = pytest.mark.embedded

SECRET = "very-secret-api-secret-4f1c"


def _raw_rows(table="exchanges_exchangeaccount"):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")
        return " ".join(str(value) for row in cursor.fetchall() for value in row)


@pytest.mark.django_db
def test_secret_is_not_stored_in_plain_text_but_reads_back():
    account = ExchangeAccount(exchange_id="binance", label="main", api_key="k")
    account.api_secret = SECRET
    account.save()

    assert SECRET not in _raw_rows()
    assert ExchangeAccount.objects.get(pk=account.pk).api_secret == SECRET
    assert SECRET not in repr(account) and SECRET not in str(account)


@pytest.mark.django_db
def test_the_simulator_keeps_its_accounts_secrets_encrypted_too():
    from exchanges.simulator.services import simulator_account_ensure

    account = simulator_account_ensure(label="sim", api_key="k", api_secret=SECRET)

    assert SECRET not in _raw_rows("exchanges_simaccount")
    assert account.api_secret == SECRET and SECRET not in repr(account)


@pytest.mark.django_db
def test_admin_form_never_renders_the_secret():
    account = ExchangeAccountFactory(api_key="k", api_secret=SECRET)

    html = str(ExchangeAccountForm(instance=account))

    assert SECRET not in html and account.api_secret_encrypted not in html


@pytest.mark.django_db
def test_rotation_reencrypts_under_the_new_key_and_old_key_can_be_dropped(settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.EXCHANGE_SECRET_KEYS = [old_key]
    account = ExchangeAccountFactory(api_key="k", api_secret=SECRET)
    before = account.api_secret_encrypted

    settings.EXCHANGE_SECRET_KEYS = [new_key, old_key]
    call_command("rotate_exchange_secrets", stdout=open("/dev/null", "w"))
    settings.EXCHANGE_SECRET_KEYS = [new_key]

    account.refresh_from_db()
    assert account.api_secret_encrypted != before
    assert account.api_secret == SECRET
    settings.EXCHANGE_SECRET_KEYS = [old_key]
    with pytest.raises(SecretDecryptionError):
        account.api_secret


@pytest.mark.embedded
def test_secrets_never_reach_the_logs_of_a_trading_session(simulator, caplog):
    from exchanges.clients import exchange_client
    from exchanges.simulator.services import simulator_set_faults

    caplog.set_level(logging.DEBUG)
    simulator_set_faults(account_label=simulator.sim_label, http_5xx=1)
    binance = exchange_client(account_id=simulator.account.pk)
    try:
        binance.fetch_balance()
    except Exception:
        logging.getLogger("test").exception("fetch_balance failed")
    binance.create_order("BTC/USDT", "limit", "buy", "0.001", "29000", {"clientOrderId": "mm-log-1"})

    logged = "\n".join(record.getMessage() + str(record.exc_info or "") for record in caplog.records)
    assert "sim_order_placed" in logged  # the logs were captured
    assert simulator.account.api_secret not in logged
    assert simulator.account.api_secret not in caplog.text


PASSPHRASE = "okx-passphrase-never-shown-9d2e"


@pytest.mark.django_db
def test_the_passphrase_is_encrypted_like_the_secret_and_never_in_repr_or_the_admin_form():
    account = ExchangeAccount(exchange_id="okx", label="okx", api_key="k", uid="1234")
    account.api_passphrase = PASSPHRASE
    account.save()

    assert PASSPHRASE not in _raw_rows()
    assert ExchangeAccount.objects.get(pk=account.pk).api_passphrase == PASSPHRASE
    assert PASSPHRASE not in repr(account) and PASSPHRASE not in str(account)
    html = str(ExchangeAccountForm(instance=account))
    assert PASSPHRASE not in html and account.api_passphrase_encrypted not in html


@pytest.mark.django_db
def test_the_admin_form_keeps_a_stored_passphrase_when_left_empty_and_checks_the_exchange():
    account = ExchangeAccount(exchange_id="okx", label="okx", api_key="k")
    account.api_passphrase = PASSPHRASE
    account.save()
    data = {"label": "okx", "exchange_id": "okx", "api_key": "k", "api_secret": "", "api_passphrase": "",
            "uid": "", "base_url": "", "enabled": "on"}

    form = ExchangeAccountForm(data=data, instance=account)
    assert form.is_valid(), form.errors
    form.save()
    refused = ExchangeAccountForm(data={**data, "label": "pay", "exchange_id": "paymium"})

    assert ExchangeAccount.objects.get(pk=account.pk).api_passphrase == PASSPHRASE
    assert not refused.is_valid() and "fetchMyTrades" in refused.errors["exchange_id"][0]


@pytest.mark.django_db
def test_rotation_reencrypts_the_passphrase_too(settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.EXCHANGE_SECRET_KEYS = [old_key]
    account = ExchangeAccountFactory(api_key="k", api_secret=SECRET)
    account.api_passphrase = PASSPHRASE
    account.save()

    settings.EXCHANGE_SECRET_KEYS = [new_key, old_key]
    call_command("rotate_exchange_secrets", stdout=open("/dev/null", "w"))
    settings.EXCHANGE_SECRET_KEYS = [new_key]

    account.refresh_from_db()
    assert account.api_passphrase == PASSPHRASE and account.api_secret == SECRET
