# make run   — the shop on http://127.0.0.1:5000 with the sandbox gateway and a demo catalogue
#              (make run PORT=5050 HOST=0.0.0.0 for another port or address)
# make test  — the test suite (installs what it needs: a virtualenv, and Debian's chromium)
# make lint  — ruff and mypy
# make lock  — regenerate requirements.txt and requirements-dev.txt from the .in files
# make bench — the benchmarks (prints figures; asserts nothing)
# make i18n-extract, i18n-update, i18n-compile — the translation catalogues (see README)

PYTHON ?= python3
PORT ?= 5000
HOST ?= 127.0.0.1
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app

.PHONY: run test lint format bench browser lock clean i18n-extract i18n-update i18n-compile

$(BIN)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "Storefront needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1)." >&2; \
	  echo "Install one and run e.g. make PYTHON=python3.12 (pyproject.toml: requires-python)." >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

# The locks pin every package of the tree with the hashes of its files; the .in files are the
# hand-edited top-level lists. The dev lock is held to the runtime lock's versions
# (requirements-dev.in takes requirements.txt as a constraint). Pins already in a lock are kept:
# upgrade with make lock LOCK_FLAGS="--upgrade-package NAME" (or --upgrade for everything).
PIP_COMPILE = $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(LOCK_FLAGS)
lock: $(BIN)/.installed
	$(PIP_COMPILE) --output-file requirements.txt requirements.in
	$(PIP_COMPILE) --output-file requirements-dev.txt requirements-dev.in

# The translations: storefront/translations/<lang>/LC_MESSAGES/messages.po, edited by hand
# (English is the source and has none). i18n-extract collects the texts marked in the code and
# templates into messages.pot; i18n-update merges it into each .po; the compiled .mo files are
# built from the .po files, by make run and make test too, and never committed.
TRANSLATIONS := storefront/translations
PYBABEL := $(BIN)/pybabel
CATALOGUES := $(wildcard $(TRANSLATIONS)/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGUES:.po=.mo)

i18n-extract: $(BIN)/.installed
	$(PYBABEL) --quiet extract -F babel.cfg -k _l -k lazy_gettext --add-location=file \
	  --sort-by-file --project=Storefront -o $(TRANSLATIONS)/messages.pot .

i18n-update: i18n-extract
	$(PYBABEL) --quiet update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) \
	  --no-fuzzy-matching --ignore-obsolete

i18n-compile: $(COMPILED)

$(TRANSLATIONS)/%/LC_MESSAGES/messages.mo: $(TRANSLATIONS)/%/LC_MESSAGES/messages.po | $(BIN)/.installed
	$(PYBABEL) --quiet compile -l $* -i $< -o $@

# Every return and callback URL the gateways get is built from STOREFRONT_PUBLIC_URL: it must
# name this shop's port, or a second shop sends its gateways to whatever runs on :5000.
run: export STOREFRONT_PUBLIC_URL ?= http://127.0.0.1:$(PORT)
run: $(BIN)/.installed i18n-compile
	$(FLASK) db upgrade
	$(FLASK) seed
	$(FLASK) run --host $(HOST) --port $(PORT)

# The exactly-once tests run two server processes against PostgreSQL; the script installs and
# starts it when none answers (as root), and prints the URL the tests create databases from.
test: $(BIN)/.installed browser i18n-compile
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
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(BIN)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache test-artifacts $(COMPILED) $(TRANSLATIONS)/messages.pot
