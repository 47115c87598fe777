#!/usr/bin/env bash
# make test's two passes at once: `make test-postgres` in the foreground (its output live), `make test-sqlite`
# beside it with its output in var/test-sqlite.log, printed whole once both have ended. They share nothing:
# their own databases, brokers (Redis / the filesystem) and var dirs (MM_VAR_DIR, set by the Makefile).
# Much of each pass waits on workers, sockets and sleeps, so on two cores the pair takes little longer than
# the PostgreSQL pass alone. Exit status: 0 only if both passes passed (pytest's 5, "no tests ran", fails:
# make then exits 2 with "Error 5" in its pass's output).
# Usage (from the Makefile): scripts/test_passes.sh
set -uo pipefail

MAKE=${MAKE:-make}
mkdir -p var
SQLITE_LOG=var/test-sqlite.log

# Its own session, SIGINT not ignored (a background job of a script ignores it), so that Ctrl-C below can
# reach its pytest, which then stops the workers and servers it started as it does in the foreground.
( trap - INT; exec setsid $MAKE --no-print-directory test-sqlite >"$SQLITE_LOG" 2>&1 </dev/null ) &
sqlite_pid=$!
trap 'kill -INT -- "-$sqlite_pid" 2>/dev/null; wait "$sqlite_pid"; echo "test: interrupted; the SQLite pass: $SQLITE_LOG"; exit 130' INT TERM

echo "test: the SQLite pass runs beside this one; its output follows once both have ended ($SQLITE_LOG)"
$MAKE --no-print-directory test-postgres
pg_status=$?
wait "$sqlite_pid"
sqlite_status=$?
trap - INT TERM

echo
echo "=================== make test-sqlite (the embedded default), from $SQLITE_LOG ==================="
cat "$SQLITE_LOG"
echo "================================================================================================"
verdict() { if [ "$1" -eq 0 ]; then echo "passed"; else echo "FAILED (exit $1)"; fi; }
echo "test-postgres: $(verdict "$pg_status")"
echo "test-sqlite:   $(verdict "$sqlite_status")"
[ "$pg_status" -eq 0 ] && [ "$sqlite_status" -eq 0 ]
