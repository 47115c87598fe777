"""`make run`'s first step, `make migrate`, creates MM_VAR_DIR when it is set to a folder that does not exist
yet (the embedded database is made in it): before, migrate failed with "unable to open database file"."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.embedded


def test_make_migrate_creates_a_var_dir_that_does_not_exist(tmp_path):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("runs on the embedded default whatever the suite runs on: once, in the SQLite pass")
    # given MM_VAR_DIR naming a folder two levels below one that exists, on the embedded default
    var_dir = tmp_path / "not" / "yet" / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "MAKEFLAGS")}
    env["MM_VAR_DIR"] = str(var_dir)
    # when make migrate runs (with the virtualenv of this run, not installed again)
    done = subprocess.run(["make", "-s", "-o", ".venv/.installed", f"PY={sys.executable}", "migrate"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    # then the folder exists and holds the migrated database
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (var_dir / "mm.sqlite3").stat().st_size > 0
