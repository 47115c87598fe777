"""Run many ``manage.py`` command lines as real processes for the price of one interpreter start.

Usage: ``python tests/command_runner.py`` with a JSON list of argv lists on stdin; prints a JSON list
of ``{"returncode", "stdout", "stderr"}``. Django and the commands are imported once; each command
line then runs in its own forked process through ``execute_from_command_line`` (what manage.py
runs), so argument parsing, ``sys.exit`` statuses and what reaches file descriptors 1 and 2 are
exactly an operator's. The parent opens no database connection, so none is shared across a fork.
"""
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_one(argv: list) -> dict:
    from django.core.management import execute_from_command_line

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            code = 0
            try:
                execute_from_command_line(["manage.py", *argv])
            except SystemExit as exited:
                code = exited.code if isinstance(exited.code, int) else (0 if exited.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return {"returncode": os.waitstatus_to_exitcode(status), "stdout": out.read().decode(),
                "stderr": err.read().decode()}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmproject.settings")
    import django
    from django.core.management import get_commands, load_command_class

    django.setup()
    argvs = json.load(sys.stdin)
    commands = get_commands()
    for name in {argv[0] for argv in argvs}:
        load_command_class(commands[name], name)  # import once, before forking
    results = [run_one(argv) for argv in argvs]
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main()
