"""Production settings: with the production environment values, `check --deploy` reports nothing;
the embedded defaults are what it warns about; the public embedded key is refused behind HTTPS."""
import os
import runpy
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "mmproject" / "settings.py"
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "mm.example.com",
    "DJANGO_HTTPS": "true",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO=https",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://mm.example.com",
}
SECURITY_NAMES = [name for name in os.environ if name.startswith("DJANGO_") and name != "DJANGO_SETTINGS_MODULE"]


def check_deploy(extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SECURITY_NAMES}
    env.update(extra, DJANGO_SETTINGS_MODULE="mmproject.settings")
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_has_no_warnings_with_the_production_environment():
    done = check_deploy(PRODUCTION)
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout
    assert "WARNINGS" not in done.stderr


def test_check_deploy_names_what_the_embedded_defaults_leave_open():
    done = check_deploy({})
    assert done.returncode == 1
    for warning in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016"):
        assert warning in done.stderr


def load_settings(monkeypatch, env: dict) -> dict:
    for name in SECURITY_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


def test_https_turns_on_secure_cookies_hsts_redirect_and_trusts_the_proxy_header(monkeypatch):
    values = load_settings(monkeypatch, PRODUCTION)
    assert values["SECURE_SSL_REDIRECT"] and values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://mm.example.com"]
    # and each can still be set on its own
    values = load_settings(monkeypatch, dict(PRODUCTION, DJANGO_SECURE_HSTS_SECONDS="60"))
    assert values["SECURE_HSTS_SECONDS"] == 60


def test_embedded_defaults_keep_plain_http_working(monkeypatch):
    values = load_settings(monkeypatch, {})
    assert not values["SECURE_SSL_REDIRECT"] and not values["SESSION_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] == 0 and values["SECURE_PROXY_SSL_HEADER"] is None


def test_https_with_the_public_embedded_key_refuses_to_start(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        load_settings(monkeypatch, {"DJANGO_HTTPS": "true"})
