# Warden: `make run` starts web + worker on embedded defaults; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-jobs screenshots bench soak lint typecheck check diagram clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Warden needs Python 3.11 or newer (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m devtools.run

# $(call apt-install,PACKAGE,FOR WHAT,IF IT FAILS): install a Debian package (as root, or with sudo).
define apt-install
@echo "make: installing Debian's $(1) for $(2)"
@if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
  $$sudo apt-get install -y -qq $(1) >/dev/null 2>&1 \
  || { $$sudo apt-get update -qq && $$sudo apt-get install -y -qq $(1) >/dev/null; } \
  || echo "make: could not install $(1): $(3)"
endef

# The browser tests drive Debian's Chromium (Playwright's own browser download needs a network we lack).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(call apt-install,chromium,the browser tests,the browser tests will be skipped (under CI they fail))

# The Prometheus rules' checks and unit tests run promtool, which Debian's prometheus package has.
PROMTOOL := /usr/bin/promtool
$(PROMTOOL):
	$(call apt-install,prometheus,promtool (the alert rules' tests),the rules' tests will be skipped (under CI they fail))

# The terminal test of `make run` types into tmux (Debian's package).
TMUX_BIN := /usr/bin/tmux
$(TMUX_BIN):
	$(call apt-install,tmux,the terminal test of make run,that test will be skipped (under CI it fails))

# PostgreSQL: the server at WARDEN_TEST_POSTGRES_URL when one answers, else a private one started (and
# Debian's postgresql installed) for the run; Redis: 127.0.0.1:6379 when it answers, else a private one.
test: $(STAMP) $(CHROMIUM) $(PROMTOOL) $(TMUX_BIN)
	$(BIN)/python -m tests.support.run

# The pure tier alone (no servers, no processes: tests/unit/conftest.py fails a test that starts one): run it
# constantly.
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

# The worker's room jobs and escalation against in-memory LiveKit, queue, Redis and clock, on SQLite:
# no server, no process, in seconds.
test-jobs: $(STAMP)
	$(BIN)/python -m pytest tests/jobs -q

# The README's screenshots (docs/screenshots): the browser test saves them in var/screenshots, as in every
# run, and they are copied over only when it passed (a skipped test, e.g. no Chromium, leaves none to copy).
SHOTS := rooms.png room.png incidents.png
screenshots: $(STAMP) $(CHROMIUM)
	rm -rf var/screenshots
	$(BIN)/python -m pytest tests/e2e/test_operator_surface.py -k dashboard -q -p no:cacheprovider
	cp $(addprefix var/screenshots/,$(SHOTS)) docs/screenshots/

# The ingest benchmark loads Warden with wrk (Debian's package); without it, from Python (slower, noisier).
WRK := /usr/bin/wrk
$(WRK):
	$(call apt-install,wrk,the ingest benchmark,the ingest benchmark loads from Python instead)

# Every benchmark; writes docs/benchmarks/results.md and docs/benchmarks/scaling.svg (about 4 minutes here).
bench: $(STAMP) $(WRK)
	$(BIN)/python -m tests.bench.run

# Rooms coming and going for about 6 minutes (time compressed ten to one, retention 30 s): do rows, RSS and
# the database stay flat? Writes docs/benchmarks/soak.md and soak.svg. Not part of `make test`.
# SOAK_DATABASE=postgresql runs it on PostgreSQL (soak-postgresql.md/svg); SOAK_TRACE=1 also reports where
# the worker's memory goes (SOAK_TRACE=tracemalloc: with tracemalloc's diff, slowing the worker down).
soak: $(STAMP)
	$(BIN)/python -m tests.bench.soak

# Style, and the import rules between packages (pyproject's [tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check service workers devtools tests
	$(BIN)/ruff format --check service workers devtools tests
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

diagram: $(STAMP)
	$(BIN)/python -m workers.core.diagram README.md

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
