# Two commands for a new machine: `make demo` (the main job, offline) and `make test`
# (everything CI runs). Both build ./venv from the project's own requirement files first.

PYTHON ?= python3
VENV := venv
BIN := $(VENV)/bin
STACK ?= tier3
STACKS := dev tier1 tier2 tier3 tier4
REQUIREMENTS := requirements.txt requirements-dev.txt policies/requirements.txt \
	app/requirements.txt app/requirements-test.txt
INFRA := components tools policies __main__.py

.PHONY: demo test lint typecheck unit plan policy snapshots bench clean

$(BIN)/.installed: $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check \
		-r requirements-dev.txt -r app/requirements.txt -r app/requirements-test.txt
	touch $@

## demo: the main job on embedded defaults: plan, cost and policy check of every stack,
## then the app end to end (embedded PostgreSQL, synthetic district, training, API calls).
demo: $(BIN)/.installed
	$(BIN)/python -m tools.plan --all
	$(BIN)/python -m tools.policy --all
	$(BIN)/python -m app.demo

## test: everything CI runs.
test: lint typecheck unit

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy $(INFRA)
	$(BIN)/mypy app

unit: $(BIN)/.installed
	$(BIN)/pytest tests

## plan STACK=tier3: the offline plan (tree, properties, outputs, cost) of one stack.
plan: $(BIN)/.installed
	$(BIN)/python -m tools.plan $(STACK)

## policy STACK=tier3: the policy pack applied to one stack offline.
policy: $(BIN)/.installed
	$(BIN)/python -m tools.policy $(STACK)

## snapshots: refresh snapshots/ after a reviewed change of the program.
snapshots: $(BIN)/.installed
	$(BIN)/python -m tools.plan --write-snapshots

## bench: the app's throughput benchmark (numbers recorded in BENCHMARKS.md).
bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.app_invocations

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
