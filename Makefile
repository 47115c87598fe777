# Two commands for a newcomer: `make run` and `make test`. Everything else is set up by them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/mm
REDIS_URL ?= redis://127.0.0.1:6379/15
REDIS_URL_RUNTIME ?= redis://127.0.0.1:6379/14

.PHONY: run test test-postgres test-postgres-runtime test-postgres-rest test-sqlite venv migrate clean bench-ledger

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# MM_VAR_DIR (the SQLite file, the filesystem broker, logs) may be set to a folder that does not exist yet.
migrate: venv
	mkdir -p var "$${MM_VAR_DIR:-var}"
	$(PY) manage.py migrate --noinput

# The whole system with a live demo order, on the embedded default (SQLite + filesystem broker);
# DATABASE_URL / CELERY_BROKER_URL switch it. Ctrl-C stops the order (stop_mm), then every process.
# Logs: var/logs/*.log. A checkout reusing a built .venv: `make -o .venv/.installed run`.
run: migrate
	$(PY) scripts/run_local.py

# The whole suite on PostgreSQL + Redis, in two halves at once (the trading runtime: tests/strategy, intents,
# exchanges; and the rest), and beside them the embedded-default tests on SQLite (scripts/test_passes.sh: one
# half's output live, then the others'; fails if any fails). Each pass has its own database, Redis db and var
# dir, so they never meet. The whole PostgreSQL suite in one pass: make test-postgres; alone: make test-sqlite.
test: venv
	scripts/ensure_services.sh postgres redis rabbitmq
	scripts/ensure_browser.sh
	scripts/ensure_promtool.sh
	MAKE="$(MAKE)" scripts/test_passes.sh

test-postgres:
	mkdir -p var/test-postgres
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) MM_VAR_DIR=$(CURDIR)/var/test-postgres \
	  $(PY) -m pytest --create-db --durations=15 -m "not walk" $(PYTEST_ARGS)

RUNTIME_TESTS := tests/strategy tests/intents tests/exchanges
test-postgres-runtime:
	mkdir -p var/test-postgres-runtime
	DATABASE_URL=$(PG_URL)_runtime CELERY_BROKER_URL=$(REDIS_URL_RUNTIME) MM_VAR_DIR=$(CURDIR)/var/test-postgres-runtime \
	  $(PY) -m pytest --create-db --durations=10 -m "not walk" $(RUNTIME_TESTS) $(PYTEST_ARGS)

test-postgres-rest:
	mkdir -p var/test-postgres
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) MM_VAR_DIR=$(CURDIR)/var/test-postgres \
	  $(PY) -m pytest --create-db --durations=10 -m "not walk" $(addprefix --ignore=,$(RUNTIME_TESTS)) $(PYTEST_ARGS)

test-sqlite:
	mkdir -p var/test-sqlite
	DATABASE_URL=sqlite:///var/mm-test.sqlite3 CELERY_BROKER_URL=filesystem:// MM_VAR_DIR=$(CURDIR)/var/test-sqlite \
	  $(PY) -m pytest --create-db --durations=15 -m embedded $(PYTEST_ARGS)

bench-ledger: venv
	scripts/ensure_services.sh postgres
	DATABASE_URL=$(PG_URL) $(PY) bench/ledger.py

# ccxt round trips against the simulator in its own process (database mm_bench_exchange).
.PHONY: bench-exchange
bench-exchange: venv
	scripts/ensure_services.sh postgres
	DATABASE_URL=$(PG_URL) $(PY) bench/exchange.py $(BENCH_ARGS)

# Trading-runtime benchmarks (docs/benchmarks.md, "Trading runtime"): each uses its own database
# (mm_bench_rt) and Redis db 8, and cleans up its processes and queues.
.PHONY: bench-tick bench-intents bench-memory
BENCH_BROKER_URL ?= redis://127.0.0.1:6379/8
bench-tick: venv
	scripts/ensure_services.sh postgres redis
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) $(PY) bench/tick.py $(BENCH_ARGS)

bench-intents: venv
	scripts/ensure_services.sh postgres redis
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) $(PY) bench/intents.py $(BENCH_ARGS)

bench-memory: venv
	scripts/ensure_services.sh postgres redis
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) $(PY) bench/worker_memory.py $(BENCH_ARGS)

# Two-sided quoting seen from outside through ccxt (docs/benchmarks.md, "Two-sided quoting"): simulator,
# worker, beat and N demo sessions on database mm_bench_quoting and Redis db 4; BENCH_ARGS="--base REV" also
# runs another revision's worker and beat, alternating.
.PHONY: bench-quoting
QUOTING_BROKER_URL ?= redis://127.0.0.1:6379/4
bench-quoting: venv
	scripts/ensure_services.sh postgres redis
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(QUOTING_BROKER_URL) $(PY) bench/quoting.py $(BENCH_ARGS)

# The order lifecycle under SIGKILLs of worker, beat and broker (docs/benchmarks.md, "Chaos: a lifecycle under
# kills"): database mm_bench_chaos and a redis-server of its own on a free port (the broker it kills).
.PHONY: bench-chaos
bench-chaos: venv
	scripts/ensure_services.sh postgres
	DATABASE_URL=$(PG_URL) $(PY) bench/chaos.py $(BENCH_ARGS)

# The three above on another revision and on this tree, alternating in one run: make bench-alternate BASE=<rev>
.PHONY: bench-alternate
bench-alternate: venv
	scripts/ensure_services.sh postgres redis
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) $(PY) bench/alternate.py --base $(BASE) $(BENCH_ARGS)

clean:
	rm -rf var/broker var/*.sqlite3* .pytest_cache
