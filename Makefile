# Two commands do all set-up on a fresh Debian machine:
#   make run    set up .venv and serve on embedded defaults (SQLite, in-process layer)
#   make test   install what the tests need (redis-server included) and run the whole suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APT    := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)

.PHONY: run test lint format system-packages venv bench clean

# Debian packages: python3-venv when this Python cannot make a venv; redis-server and postgresql
# for the tests (each test run starts its own throwaway servers); in CI also nginx-light, so the
# nginx site is checked with `nginx -t` (skipped where absent).
# chromium: the web client's browser tests (Playwright drives it; never a downloaded browser).
system-packages:
	@need=""; \
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || need="$$need python3-venv"; \
	command -v redis-server >/dev/null 2>&1 || need="$$need redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$$need postgresql"; \
	command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	if [ -n "$$CI" ] && ! command -v nginx >/dev/null 2>&1; then need="$$need nginx-light"; fi; \
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

# The whole suite on SQLite, then the database-heavy tests again on a throwaway PostgreSQL.
test: system-packages $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest
	$(BIN)/python -m tests.on_postgres $(BIN)/pytest -q tests/chat tests/daemon/test_maintenance.py \
		tests/daemon/test_end_to_end.py

# The benchmark against plain daphne, uvicorn, the reference package and bare Autobahn
# (≈ 45 min; results in bench/results/<stamp>/, see docs/performance.md).
bench: system-packages $(STAMP)
	$(BIN)/python -m bench.run --make-ref-venv --snapshot

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache twisted/plugins/dropin.cache
