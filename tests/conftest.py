"""Shared fixtures: the test database settings that subprocess-based tests hand to children."""
import os

import pytest


@pytest.fixture
def child_env(django_db_setup, settings):
    """Environment for a child process (worker, concurrency helper) that must use the test database."""
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    if db["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env["DJANGO_SETTINGS_MODULE"] = "mmproject.settings"
    return env
