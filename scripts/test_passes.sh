#!/usr/bin/env bash
# make test's three passes at once: `make test-postgres-rest` in the foreground (its output live), and beside it
# `make test-postgres-runtime` (tests/strategy, intents, exchanges on PostgreSQL) and `make test-sqlite`, each
# with its output in var/, printed whole once all have ended. They share nothing: their own databases, brokers
# (Redis dbs / the filesystem) and var dirs (MM_VAR_DIR, set by the Makefile). Much of each pass waits on
# workers, sockets and sleeps, so on two cores three passes take little longer than the longest alone.
# Exit status: 0 only if every pass passed (pytest's 5, "no tests ran", fails: make then exits 2 with
# "Error 5" in its pass's output).
# Usage (from the Makefile): scripts/test_passes.sh
set -uo pipefail

MAKE=${MAKE:-make}
mkdir -p var
BESIDE=(test-postgres-runtime test-sqlite)
declare -A pids logs

# Each in its own session, SIGINT not ignored (a background job of a script ignores it), so that Ctrl-C below
# can reach its pytest, which then stops the workers and servers it started as it does in the foreground.
for pass in "${BESIDE[@]}"; do
  logs[$pass]=var/$pass.log
  ( trap - INT; exec setsid $MAKE --no-print-directory "$pass" >"${logs[$pass]}" 2>&1 </dev/null ) &
  pids[$pass]=$!
done
interrupt() {
  for pass in "${BESIDE[@]}"; do kill -INT -- "-${pids[$pass]}" 2>/dev/null; done
  wait
  echo "test: interrupted; the other passes' output: ${logs[*]}"
  exit 130
}
trap interrupt INT TERM

echo "test: ${BESIDE[*]} run beside this pass; their output follows once all have ended (${logs[*]})"
$MAKE --no-print-directory test-postgres-rest
declare -A status
status[test-postgres-rest]=$?
for pass in "${BESIDE[@]}"; do
  wait "${pids[$pass]}"
  status[$pass]=$?
done
trap - INT TERM

for pass in "${BESIDE[@]}"; do
  echo
  echo "=================== make $pass, from ${logs[$pass]} ==================="
  cat "${logs[$pass]}"
done
echo "================================================================================================"
verdict() { if [ "$1" -eq 0 ]; then echo "passed"; else echo "FAILED (exit $1)"; fi; }
failed=0
for pass in test-postgres-rest "${BESIDE[@]}"; do
  printf '%-22s %s\n' "$pass:" "$(verdict "${status[$pass]}")"
  [ "${status[$pass]}" -eq 0 ] || failed=1
done
[ "$failed" -eq 0 ]
