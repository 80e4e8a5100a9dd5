# make run   — the shop on http://127.0.0.1:5000 with the sandbox gateway and a demo catalogue
# make test  — the test suite (installs what it needs: a virtualenv, and Debian's chromium)
# make lint  — ruff
# make bench — the benchmarks (prints figures; asserts nothing)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app

.PHONY: run test lint format bench browser clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(BIN)/.installed
	$(FLASK) db upgrade
	$(FLASK) seed
	$(FLASK) run --host 127.0.0.1 --port 5000

# The exactly-once tests run two server processes against PostgreSQL; the script installs and
# starts it when none answers (as root), and prints the URL the tests create databases from.
test: $(BIN)/.installed browser
	STOREFRONT_TEST_POSTGRES_URL="$$(tests/services/ensure-postgres.sh)" \
	  $(BIN)/pytest --scenarios-report=docs/SCENARIOS.md

# The journey tests drive Debian's chromium; Playwright never downloads a browser of its own.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "Please install Debian's chromium: sudo apt-get install chromium"; exit 1; \
	  fi; }

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(BIN)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache test-artifacts
