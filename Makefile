# Two commands do all set-up on a fresh Debian machine:
#   make run    set up .venv and serve on embedded defaults (SQLite, in-process layer)
#   make test   install what the tests need (redis-server included) and run the whole suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APT    := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)

.PHONY: run test test-quick lint format system-packages venv bench clean conformance

# Debian packages: python3-venv when this Python cannot make a venv; redis-server, postgresql and
# nginx-light for the tests (each test run starts its own throwaway servers; the nginx site is
# checked with `nginx -t` and run in front of several daemons); in CI also systemd, so the units
# are checked with `systemd-analyze verify` and `security` (those tests skip where absent).
# chromium: the web client's browser tests (Playwright drives it; never a downloaded browser).
# fonts-noto-color-emoji: emoji in the browser tests' screenshots (boxes without a colour font).
system-packages:
	@need=""; \
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || need="$$need python3-venv"; \
	command -v redis-server >/dev/null 2>&1 || need="$$need redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$$need postgresql"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$$need nginx-light"; \
	if [ -n "$$CI" ] && ! command -v systemd-analyze >/dev/null 2>&1; then need="$$need systemd"; fi; \
	command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || need="$$need fonts-noto-color-emoji"; \
	if [ -n "$$need" ]; then \
		echo "installing Debian packages:$$need"; \
		$(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq $$need; \
	fi

$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || { \
		$(MAKE) --no-print-directory system-packages && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	# compat mode keeps the repository on sys.path, so twistd finds twisted/plugins/ here.
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	# the web client and the admin's static files, with gzip and Brotli copies (var/static)
	$(BIN)/chatserver collectstatic --noinput -v0
	$(BIN)/twistd -n --pidfile= -l - chat --port 8000

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The whole suite on SQLite, then on a throwaway PostgreSQL the database-heavy tests again and
# the tests marked `postgres` (PostgreSQL only: the fault tests, the nginx cluster).
test: system-packages $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not postgres"
	$(BIN)/python -m tests.on_postgres $(BIN)/pytest -q -m "not postgres" tests/chat \
		tests/daemon/test_maintenance.py tests/daemon/test_end_to_end.py \
		tests/daemon/test_socket_activation.py tests/daemon/test_health.py
	$(BIN)/python -m tests.on_postgres $(BIN)/pytest -q -m postgres

# The loop while developing: no daemon, nginx or browser, no bench or fault runs (SQLite only).
test-quick: $(STAMP)
	$(BIN)/pytest -q -m "not slow and not e2e"

# The benchmark against plain daphne, uvicorn, the reference package and bare Autobahn
# (≈ 60 min on 2 cores; results in bench/results/<stamp>/, see docs/performance.md).
bench: system-packages $(STAMP)
	$(BIN)/python -m bench.run --make-ref-venv --snapshot

# WebSocket conformance: the Autobahn|Testsuite fuzzing client against the daemon's echo route
# (chatserver.settings.conformance; see docs/operations.md). The suite runs on Python 2.7 only
# (Debian 12 has none): PYTHON2 is a python2.7 on PATH or pyenv's, or give PYTHON2=... . Its own
# virtualenv, .venv-conformance, gets autobahntestsuite, which pins its old Twisted and
# cryptography itself. CONFORMANCE_EXCLUDE="9.*" skips case groups.
PYTHON2 ?= $(shell for p in python2.7 $$HOME/.pyenv/versions/2.7*/bin/python2.7; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null && command -v $$p && break; done)
CONF_VENV := .venv-conformance
CONFORMANCE_EXCLUDE ?=

$(CONF_VENV)/.installed:
	@[ -n "$(PYTHON2)" ] || { echo "make conformance needs a python2.7 (Autobahn|Testsuite is" \
		"Python 2 only): install one and pass PYTHON2=/path/to/python2.7"; exit 1; }
	$(PYTHON2) -m pip install -q --disable-pip-version-check --target $(CONF_VENV).bootstrap \
		'virtualenv<20.22'
	PYTHONPATH=$(CONF_VENV).bootstrap $(PYTHON2) -m virtualenv -q $(CONF_VENV)
	$(CONF_VENV)/bin/pip install -q --disable-pip-version-check 'autobahntestsuite==25.10.1'
	@touch $@

conformance: $(STAMP) $(CONF_VENV)/.installed
	$(BIN)/python -m tests.conformance.run $(CONF_VENV)/bin/wstest $(CONFORMANCE_EXCLUDE)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache twisted/plugins/dropin.cache
