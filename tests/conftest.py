"""Shared fixtures: the test database settings that subprocess-based tests hand to children."""
import os

import pytest

pytest_plugins = ["tests.runtime_fixtures"]


@pytest.fixture(scope="session", autouse=True)
def fast_password_hasher():
    """Users made by the tests (tests/factories.py's UserFactory, the demo's admin) get MD5 password hashes,
    not PBKDF2's million rounds (0.2-0.3 CPU-s per user, over a minute of the suite): no test is about the
    hash's strength, and check_password works the same. Child processes keep the default."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database; on PostgreSQL with ``synchronous_commit`` off for every connection to it (this
    process's and its children's): a commit is visible to every other session as before and is lost only if
    the PostgreSQL server itself crashes, so nothing a test asserts changes, but the transactional tests'
    commits and the flush after each no longer wait for the WAL to reach the disk."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            name = connection.ops.quote_name(connection.settings_dict["NAME"])
            cursor.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
            cursor.execute("SET synchronous_commit = off")


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


@pytest.fixture
def celery_worker(child_env, settings, tmp_path):
    """Start real Celery worker processes on the broker of the settings (the environment's URL).

    ``celery_worker(queues=("market-making",), env={...})`` starts one (solo pool by default),
    purges its queues first so no message of an earlier test reaches it, waits until it is
    ready and returns its Popen; every worker is stopped (TERM, then KILL) when the test ends.
    The worker's output is in ``proc.log_path``.
    """
    import signal
    import subprocess
    import sys
    import time
    import uuid

    from mmproject.celery import app

    started = []

    def start(*, queues=("market-making",), env=None, pool="solo", concurrency=1, purge=True, ready_timeout=60):
        if purge:
            with app.connection_for_write() as conn:
                for queue in queues:
                    try:
                        conn.default_channel.queue_purge(queue)
                    except Exception:  # a queue that was never declared has nothing to purge
                        pass
        worker_env = dict(child_env, CELERY_BROKER_URL=settings.CELERY_BROKER_URL, **(env or {}))
        log_path = tmp_path / f"celery-worker-{len(started)}.log"
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        cmd = [sys.executable, "-m", "celery", "-A", "mmproject", "worker", "-Q", ",".join(queues),
               "-P", pool, "-c", str(concurrency), "-n", name, "-l", "INFO",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, env=worker_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log_path
        started.append(proc)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if b" ready." in log_path.read_bytes():
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"celery worker did not become ready:\n{log_path.read_text()[-4000:]}")

    yield start

    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


class JobQueue:
    """Lifecycle jobs the services enqueue, kept here (``sent``: name and args) instead of going to the broker;
    calling it runs them, and whatever they enqueue, through their Celery task bodies, in order."""

    def __init__(self):
        self.sent: list[tuple[str, tuple]] = []

    def __call__(self, limit: int = 50, before_each=None) -> list[str]:
        from mmproject.celery import app

        ran = []
        while self.sent:
            assert len(ran) < limit, ran
            name, args = self.sent.pop(0)
            if before_each is not None:
                before_each()
            result = app.tasks[name].apply(args=list(args))
            assert result.successful(), (name, result.traceback)
            ran.append(name)
        return ran


@pytest.fixture
def jobs(monkeypatch):
    """The jobs the code under test enqueues, run by calling the fixture (``JobQueue``)."""
    from mmproject.celery import app

    app.loader.import_default_modules()  # the apps' tasks, as a worker registers them
    queue = JobQueue()
    monkeypatch.setattr("mmproject.jobs._send_logged", lambda name, args, countdown: queue.sent.append((name, args)))
    return queue
