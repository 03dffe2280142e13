# Two commands do everything on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
POSTGRES_TEST_URL ?= postgres://postgres@127.0.0.1:5432/tutum
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15

.PHONY: install run test test-sqlite test-postgres fuzz lint format bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## The server on the embedded default (SQLite, a SQLite broker, simulated clouds); prints an API key.
run: install
	$(PYTHON) manage.py runstack

## Every test: the whole suite on SQLite, then again on PostgreSQL with Redis and real worker processes.
test: install
	bash .ci/services
	bash .ci/browser
	bash .ci/official-clients
	$(MAKE) --no-print-directory test-sqlite test-postgres

test-sqlite: install
	env -u DATABASE_URL -u CELERY_BROKER_URL -u REDIS_URL $(PYTHON) -m pytest -m "not integration" -q

test-postgres: install
	DATABASE_URL=$(POSTGRES_TEST_URL) CELERY_BROKER_URL=$(REDIS_TEST_URL) TEST_REDIS_URL=$(REDIS_TEST_URL) $(PYTHON) -m pytest -q -m "not stack"

## The nightly-size fuzz run (tests/schema/test_fuzz.py): every Schemathesis check, more examples, a random seed
## (printed with a failure; replay with FUZZ_SEED=<it>). CI runs the same tests smaller, with a fixed seed.
FUZZ_EXAMPLES ?= 400
FUZZ_SEED ?= random
fuzz: install
	env -u DATABASE_URL -u CELERY_BROKER_URL -u REDIS_URL FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) \
		$(PYTHON) -m pytest tests/schema/test_fuzz.py -q -p no:logging

## Benchmarks (bench/README.md): the API against a one-query baseline, engine convergence, memory.
bench: install
	bash .ci/services
	$(PYTHON) -m bench

lint: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: install
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

clean:
	rm -rf var .pytest_cache
