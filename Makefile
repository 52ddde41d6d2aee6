# GPU fleet manager: the two commands a newcomer needs are `make dev` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install dev test test-unit test-integration test-e2e lint format proto asyncapi bench bench-scheduler bench-vs-slurm bench-submit bench-scheduler-submit bench-consumers bench-agent chaos clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Set up and run the whole system on the embedded default (PostgreSQL + Kafka-protocol broker).
dev: $(STAMP)
	$(PY) -m shared.devstack up $(ARGS)

## The whole test suite (unit, integration, end-to-end); starts its own PostgreSQL and broker.
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

test-e2e: $(STAMP)
	$(PY) -m pytest -q tests/e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

proto: $(STAMP)
	PYTHON=$(abspath $(PY)) proto/codegen.sh

asyncapi: $(STAMP)
	$(PY) -m shared.contracts.asyncapi > docs/asyncapi.yaml

bench: $(STAMP)
	$(PY) -m tests.bench.smoke

## The scheduler's pure cycle at 10,000 GPUs x 100,000 queued jobs, against today's place() as the baseline.
bench-scheduler: $(STAMP)
	$(PY) -m tests.bench.scheduler_cycle $(ARGS)

## This system against Slurm on this machine (apt-installs slurm-wlm + munge as root): 8 and 64 GPUs, shipped and tuned.
bench-vs-slurm: $(STAMP)
	$(PY) -m tests.bench.vs_slurm $(ARGS)

## CPU per submit of every service of the embedded stack (held jobs), beside each one's idle CPU in the same run;
## ARGS="--batch 100" adds batches of 100 (POST /v1/jobs:batchCreate) beside the single submits.
bench-submit: $(STAMP)
	$(PY) -m tests.bench.submit_profile $(ARGS)

## The scheduler process alone: CPU per gRPC submit and per job lifecycle, against a bare asyncpg insert in the same run.
bench-scheduler-submit: $(STAMP)
	$(PY) -m tests.bench.scheduler_submit $(ARGS)

## Notification's and billing's CPU per consumed job event, against a claim-only consumer in the same run.
bench-consumers: $(STAMP)
	$(PY) -m tests.bench.consumers_cpu $(ARGS)

## The node agent's CPU per trivial job (agent and its supervisors), against fork+exec of /bin/true in the same run.
bench-agent: $(STAMP)
	$(PY) -m tests.bench.agent_jobs $(ARGS)

## Chaos soak on its own embedded stack: SIGKILLs services and the broker, then checks nothing was lost,
## run twice or billed twice. `make chaos SEED=42` replays a run; ARGS="--jobs 200" for a shorter one.
chaos: $(STAMP)
	$(PY) -m tests.chaos.soak --jobs 1000 --gpus 32 --kill-every 4 $(if $(SEED),--seed $(SEED)) $(ARGS)

clean:
	rm -rf $(VENV) .state
