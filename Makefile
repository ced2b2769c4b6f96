# Lapis: `make run` sets up and serves; `make test` sets up and runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
SIM_PORT ?= 8001
CHROMIUM ?= /usr/bin/chromium
NGINX ?= /usr/sbin/nginx
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install chromium nginx oidc-provider lint bench clean
OIDC_STAMP := tests/oidc/node_modules/.package-lock.json

$(PY):
	python3 -m venv $(VENV)

# Reinstalls only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

install: $(STAMP)

run: install
	HOST=$(HOST) PORT=$(PORT) SIM_PORT=$(SIM_PORT) PY=$(PY) bash bin/serve

chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing: install Debian's 'chromium' package (sudo apt-get install chromium)"; \
	    echo "or set CHROMIUM=/path/to/chromium, then run make test again."; exit 1; \
	  fi; \
	fi

# compose.yaml's proxy config is checked with the real nginx, and run in front of Lapis
# (tests/observability/test_compose.py): Debian's nginx; RUNLEVEL=1 keeps invoke-rc.d from
# starting its default site on port 80 (the tests run their own nginx on a loopback port).
nginx:
	@if [ ! -x "$(NGINX)" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing Debian's nginx for the proxy-config tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq nginx >/dev/null; \
	  else \
	    echo "nginx is missing: install Debian's 'nginx' package (sudo apt-get install nginx)"; \
	    echo "or set NGINX=/path/to/nginx, then run make test again."; exit 1; \
	  fi; \
	fi

# The tests' OpenID Connect provider (panva's oidc-provider, pinned in tests/oidc/package-lock.json).
$(OIDC_STAMP): tests/oidc/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js (apt-get install nodejs npm) for the sign-in tests"; exit 1; }
	cd tests/oidc && npm ci --no-audit --no-fund --silent
	touch $@

oidc-provider: $(OIDC_STAMP)

test: install chromium nginx oidc-provider
	CHROMIUM=$(CHROMIUM) NGINX=$(NGINX) LAPIS_TIKTOKEN_DOWNLOAD=0 $(PY) -m pytest $(PYTEST_ARGS)

# Rerunnable measurements (figures printed, never asserted): the simulator's own throughput, and
# one 1,000-token answer through the real stack (database writes, first chunk to first render),
# the relay at scale: 50 answers at once, upstream alone vs through Lapis (tests/bench/relay.py;
# BENCH_RELAY="--streams 1000 --pace azure" for the big round), and the server's peak memory for
# refused 100 MB bodies (tests/bench/bodies.py) and for big images (tests/bench/images.py); what
# metrics and tracing cost per answer: the relay without them, then with them (the first run is
# the plain relay figures), and their hooks alone
# (tests/bench/observability.py).
BENCH_RELAY ?= --streams 50 --pace fast
# The usage dashboard over 1,000,000 usage rows (run it with DATABASE_URL=postgres://... for the
# PostgreSQL figure; BENCH_DASHBOARD="--rows 100000" for a quicker round).
BENCH_DASHBOARD ?=
bench: install chromium
	$(PY) -m tests.simulator.bench_simulator
	$(PY) -m tests.bench.stream_reader
	CHROMIUM=$(CHROMIUM) LAPIS_TIKTOKEN_DOWNLOAD=0 $(PY) -m tests.chat.bench_chat
	LAPIS_TIKTOKEN_DOWNLOAD=0 $(PY) -m tests.bench.relay $(BENCH_RELAY) --observability compare
	LAPIS_TIKTOKEN_DOWNLOAD=0 $(PY) -m tests.bench.observability
	LAPIS_TIKTOKEN_DOWNLOAD=0 $(PY) -m tests.bench.bodies
	LAPIS_TIKTOKEN_DOWNLOAD=0 $(PY) -m tests.bench.bench_search
	$(PY) -m tests.bench.images
	LAPIS_TIKTOKEN_DOWNLOAD=0 $(PY) -m tests.bench.bench_budget
	LAPIS_TIKTOKEN_DOWNLOAD=0 $(PY) -m tests.bench.bench_api
	LAPIS_TIKTOKEN_DOWNLOAD=0 $(PY) -m tests.bench.bench_dashboard $(BENCH_DASHBOARD)

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
