# Two commands for a new machine: `make demo` (the main job, offline) and `make test`
# (everything CI runs). Both build ./venv from the project's own requirement files first.

PYTHON ?= python3
VENV := venv
BIN := $(VENV)/bin
MLSERVER_VENV := venv-mlserver
STACK ?= tier3
JOBS ?= 2
TO ?=
STACKS := dev tier1 tier2 tier3 tier4
REQUIREMENTS := requirements.txt requirements-dev.txt policies/requirements.txt \
	app/requirements.txt app/requirements-test.txt
LOCKED := requirements-dev.txt app/requirements.txt app/requirements-test.txt
INFRA := components stacks tools policies __main__.py

BASE ?= origin/main

.PHONY: demo test lint typecheck unit plan diff policy rehearse \
	rehearse-all rehearse-growth rehearse-growth-all grow snapshots docs bench mutation clean lock \
	pin-base

# The venv installs from requirements.lock: every package, transitive ones included, pinned
# with its hashes (`make lock` regenerates it and app/requirements.lock after a change of a
# requirement file; a test fails when a pinned requirement is missing from the locks). uv
# installs it (pinned and hashed in requirements-bootstrap.lock): 39 s against pip's 262 s in
# one run on a shared 2-vCPU machine.
$(BIN)/.installed: requirements.lock requirements-bootstrap.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check \
		--require-hashes -r requirements-bootstrap.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes -r requirements.lock
	touch $@

## lock: pin every package of the venv (requirements.lock) and of the image
## (app/requirements.lock) with hashes, from the requirement files.
lock: $(BIN)/.installed
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --no-emit-index-url \
		--no-emit-find-links --output-file=requirements.lock $(LOCKED)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --no-emit-index-url \
		--no-emit-find-links --output-file=app/requirements.lock app/requirements.txt
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --no-emit-index-url \
		--no-emit-find-links --output-file=requirements-bootstrap.lock requirements-bootstrap.txt

## pin-base: pin the image's base (app/Dockerfile ARG BASE) to the digest its tag names today
## (needs Docker with buildx and access to the registry).
pin-base:
	@tag=$$(sed -n 's/^ARG BASE=\([^@]*\)@.*/\1/p' app/Dockerfile); \
	digest=$$(docker buildx imagetools inspect "$$tag" --format '{{json .Manifest.Digest}}' | tr -d '"'); \
	case "$$digest" in sha256:*) ;; *) echo "no digest for $$tag" >&2; exit 1;; esac; \
	sed -i "s|^ARG BASE=.*|ARG BASE=$$tag@$$digest|" app/Dockerfile; \
	echo "app/Dockerfile: $$tag@$$digest"

## demo: the main job on embedded defaults, in a few minutes: plan, cost and policy check of
## every stack, the app end to end (embedded PostgreSQL, synthetic district, training, API
## calls), then one stack's first day rehearsed with its own manifests (STACK, see `rehearse`;
## it and the policy check run beside the others, shown in their turn: tools/demo.py).
## `make rehearse-all` rehearses every stack's first day.
demo: $(BIN)/.installed
	$(BIN)/python -m tools.demo $(STACK)

## test: everything CI runs, the lint, both type checks and the tests at once (the type checks
## use the time the tests spend waiting on servers). The tests include the first-day rehearsal
## of tier3 (it has a cache) and the rehearsal of the move from tier1 to tier2 (its events
## queue switches to SQS), each in a file of its own so that they run beside the other tests.
test: $(BIN)/.installed
	$(MAKE) --jobs 3 --output-sync=target lint typecheck unit

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## typecheck: the infrastructure's and the app's type checks (two runs: both have a
## __main__.py), one after the other: the second reads what the first cached (the standard
## library, the shared packages).
typecheck: $(BIN)/.installed
	$(BIN)/mypy $(INFRA)
	$(BIN)/mypy app benchmarks

## unit: the tests, three workers for every two cores (the tests wait on their servers: with
## one worker per core the cores idle); a file's tests stay on one worker, sharing its fixtures
## (one embedded PostgreSQL per worker; each stack config evaluated once, shared by the
## workers: tests/conftest.py). TEST_WORKERS=N to choose; the 15 slowest are listed at the end.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(max(2, 3 * (os.cpu_count() or 2) // 2))")
unit: $(BIN)/.installed
	$(BIN)/pytest tests -n $(TEST_WORKERS) --dist loadfile --durations=15

## plan STACK=tier3: the offline plan (tree, properties, outputs, cost) of one stack.
plan: $(BIN)/.installed
	$(BIN)/python -m tools.plan $(STACK)

## diff BASE=origin/main: what the working tree changes in every stack against BASE (create,
## update, replace, delete, property by property, and the cost). Replacing or deleting protected,
## FERPA or data-tier resources or the load balancer fails unless the environment variable
## ALLOW_REPLACE='<urn> ...' names them (an environment variable: URNs hold `$`, which make eats).
diff: $(BIN)/.installed
	$(BIN)/python -m tools.plan diff $(BASE) --all

## grow STACK=tier1 TO=tier2: what moving the stack to the next tier (TO, default the next one)
## does: each up's diff, the cost change, the steps that need a person with their interruption
## (docs/growth.md is the runbook). Exits 1 when the move is not safe, 2 when it is refused.
grow: $(BIN)/.installed
	$(BIN)/python -m tools.plan grow $(STACK) $(if $(TO),--to $(TO))

## policy STACK=tier3: the policy pack applied to one stack offline.
policy: $(BIN)/.installed
	$(BIN)/python -m tools.policy $(STACK)

## rehearse STACK=tier3: the stack's first day offline: its bootstrap Job, API (until ready),
## training and archive CronJobs and a risk request, each run as `python -m app` with exactly
## the environment its manifest gives it, on embedded PostgreSQL (and Redis where it has one).
rehearse: $(BIN)/.installed
	$(BIN)/python -m tools.rehearse $(STACK)

## rehearse-all JOBS=2: every stack's first day, JOBS at a time, each on its own stand-ins.
rehearse-all: $(BIN)/.installed
	$(BIN)/python -m tools.rehearse --all --jobs $(JOBS)

## rehearse-growth STACK=tier1 TO=tier2: the stack's move to a higher tier offline (TO: the next
## tier when unset). The stack's first day as `rehearse` plays it, events left pending, then
## what `up` applies at the higher tier in its order (queues on moto's SQS, ConfigMap and
## Secrets, the bootstrap Job, the API and two worker pods): fails unless every student, score,
## audit row and event survives, the same API key answers with the same risks and the pending
## events are processed exactly once.
rehearse-growth: $(BIN)/.installed
	$(BIN)/python -m tools.rehearse --grow $(STACK) $(TO)

## rehearse-growth-all: every stack file's move to the next tier (dev, tier1, tier2, tier3), two
## at a time, each on its own stand-ins.
rehearse-growth-all: $(BIN)/.installed
	$(BIN)/python -m tools.rehearse --grow-all

## snapshots: refresh snapshots/ after a reviewed change of the program.
snapshots: $(BIN)/.installed
	$(BIN)/python -m tools.plan --write-snapshots

## docs: regenerate docs/components.md, the components' inputs and outputs, from their docstrings.
docs: $(BIN)/.installed
	$(BIN)/python -m tools.docs

## bench: every benchmark, one after the other (needs wrk: apt-get install wrk). Each prints
## its numbers and records them in benchmarks/results/<name>.json; BENCHMARKS.md sums them up.
bench: $(BIN)/.installed $(MLSERVER_VENV)/.installed
	$(BIN)/python -m benchmarks.serving --mlserver $(MLSERVER_VENV)/bin/mlserver
	$(BIN)/python -m benchmarks.queries
	$(BIN)/python -m benchmarks.training
	$(BIN)/python -m benchmarks.queries_scale
	$(BIN)/python -m benchmarks.training_scale
	$(BIN)/python -m benchmarks.importing
	$(BIN)/python -m benchmarks.concurrency
	$(BIN)/python -m benchmarks.overload
	$(BIN)/python -m benchmarks.events
	$(BIN)/python -m benchmarks.infra
	$(BIN)/python -m benchmarks.district_move
	$(BIN)/python -m benchmarks.real_dataset

## mutation: mutation testing of the modules that decide security and correctness (cosmic-ray),
## each against the tests that exercise it, two modules at a time in copies of the tree; not
## part of `test`. Records the score per module and every survivor in
## benchmarks/results/mutation.json. One module: `python -m benchmarks.mutation policies/rules/rds.py`.
mutation: $(BIN)/.installed
	$(BIN)/python -m benchmarks.mutation --jobs 2

# The serving benchmark's peer (MLServer) lives in its own virtualenv: its pins differ.
$(MLSERVER_VENV)/.installed: benchmarks/requirements-mlserver.txt
	$(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/pip install --quiet --disable-pip-version-check \
		-r benchmarks/requirements-mlserver.txt
	touch $@

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) .mypy_cache .ruff_cache .pytest_cache
