# Two commands matter: `make run` and `make test`. Everything else is a step they use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TOOLS := .tools
BUF := $(TOOLS)/node_modules/.bin/buf
BUF_VERSION := 1.75.0
export PYTHONPATH := $(CURDIR):$(CURDIR)/generated

PROTOS := $(wildcard protos/todo/v1/*.proto)

.PHONY: help venv run test test-unit test-faults test-integration test-e2e generate check-generated \
        test-pg15 lint buf-lint buf-breaking buf-baseline migrate bench bench-streams bench-scale \
        bench-observability bench-observability-instructions bench-login-flood bench-index-costs profile clean system-deps check-ops lock lock-upgrade \
        deploy-lint image test-install check-openapi fuzz client-ts

help:  ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/dev.lock
	@echo "==> creating $(VENV) and installing the locked dependencies (first run: about a minute)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	@$(PY) -m pip install --quiet --no-deps -e .
	@$(PY) .ci/check-lock
	@touch $@

venv: $(STAMP)  ## Create the virtualenv with every dependency

system-deps:  ## Install the Debian packages tests and benchmarks drive (chromium, prometheus, wrk, ...)
	@.ci/system-deps

$(BUF):
	@echo "==> installing buf $(BUF_VERSION) from npm into $(TOOLS)/"
	@mkdir -p $(TOOLS) && npm install --silent --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION) >/dev/null

third_party/googleapis/google/api: $(STAMP)
	@SP=$$($(PY) -c "import site;print(site.getsitepackages()[0])"); \
	mkdir -p third_party/googleapis/google && for d in api rpc; do ln -sfn "$$SP/google/$$d" third_party/googleapis/google/$$d; done

generate: $(STAMP)  ## Regenerate generated/, server/envoy/todo.binpb and server/docs/openapi.* from protos/
	@echo "==> generating Python stubs, the Envoy descriptor set and the OpenAPI document"
	@SP=$$($(PY) -c "import site;print(site.getsitepackages()[0])"); \
	rm -rf generated/todo && mkdir -p generated && \
	$(PY) -m grpc_tools.protoc -I protos -I "$$SP" --python_out=generated --pyi_out=generated \
	  --grpc_python_out=generated $(PROTOS) && \
	$(PY) -m grpc_tools.protoc -I protos -I "$$SP" --include_imports --include_source_info \
	  --descriptor_set_out=server/envoy/todo.binpb $(PROTOS) google/rpc/status.proto google/rpc/error_details.proto && \
	$(PY) -m server.openapi server/docs

check-generated: generate  ## Fail if generated/, server/envoy/todo.binpb or server/docs/openapi.* differ from protos/
	@git diff --exit-code --stat -- generated server/envoy/todo.binpb server/docs/openapi.json server/docs/openapi.yaml && \
	test -z "$$(git status --porcelain -- generated server/envoy/todo.binpb server/docs/openapi.json server/docs/openapi.yaml)" || \
	  { echo "generated code is stale: run 'make generate' and commit"; exit 1; }

check-openapi: $(STAMP)  ## Validate server/docs/openapi.{json,yaml} with openapi-spec-validator (OpenAPI 3.1)
	@$(VENV)/bin/openapi-spec-validator server/docs/openapi.json server/docs/openapi.yaml

buf-lint: $(BUF) third_party/googleapis/google/api  ## buf lint the protos
	@$(BUF) lint

buf-breaking: $(BUF) third_party/googleapis/google/api  ## Fail if protos/ break wire, JSON or source compatibility with protos/baseline.binpb
	@$(BUF) build --exclude-source-info -o $(TOOLS)/current.binpb && \
	$(BUF) breaking $(TOOLS)/current.binpb --against protos/baseline.binpb || \
	  { echo "protos/ break compatibility with protos/baseline.binpb (if on purpose: make buf-baseline, commit)"; exit 1; }

buf-baseline: $(BUF) third_party/googleapis/google/api  ## Accept today's protos as the compatibility baseline (on purpose; commit it)
	@$(BUF) build --exclude-source-info --path protos/todo -o protos/baseline.binpb && \
	echo "protos/baseline.binpb updated: commit it with the change that needed it"

lint: $(STAMP) buf-lint  ## ruff, mypy (--strict on server/, relaxed on tests/ and bench/), buf lint
	@$(VENV)/bin/ruff check server tests bench
	@$(VENV)/bin/ruff format --check server tests bench
	@$(VENV)/bin/mypy server
	@$(VENV)/bin/mypy tests
	@cd bench && MYPYPATH=$(CURDIR):$(CURDIR)/generated ../$(VENV)/bin/mypy --config-file ../pyproject.toml *.py

check-ops: $(STAMP)  ## promtool check + test the alert rules; dashboard/rules name only real metrics
	@command -v promtool >/dev/null || { echo "promtool not found: make system-deps (Debian prometheus)"; exit 1; }
	@promtool check rules ops/alerts.yml
	@cd ops && promtool test rules alerts_test.yml
	@$(PY) -m pytest -q tests/unit/test_ops_files.py

migrate: $(STAMP)  ## Apply the migrations to DATABASE_URL (or the embedded PostgreSQL)
	@$(PY) -m server migrate

run: $(STAMP)  ## Start PostgreSQL (embedded unless DATABASE_URL), the server processes and Envoy
	@$(PY) -m server

test: $(STAMP)  ## Run unit, integration and e2e tests (TEST_DATABASE_URL or embedded PostgreSQL)
	@$(PY) -m pytest

PG15_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
test-pg15: $(STAMP)  ## The whole suite on the machine's PostgreSQL 15 (PG15_URL; a scratch database)
	@TEST_DATABASE_URL=$(PG15_URL) $(PY) -m pytest

test-unit: $(STAMP)  ## Only the unit tests (fakes, no database)
	@$(PY) -m pytest tests/unit

test-integration: $(STAMP)  ## Only the integration tests (marker `integration`: real PostgreSQL)
	@$(PY) -m pytest -m integration

test-e2e: $(STAMP)  ## Only the end-to-end tests (marker `e2e`: real processes and Envoy)
	@$(PY) -m pytest -m e2e

test-faults: $(STAMP)  ## Fault tests: PostgreSQL restarts, kill -9, drains, pool exhaustion, per-user limit (~4 min)
	@$(PY) -m pytest -m faults tests/faults -rA

fuzz: $(STAMP)  ## schemathesis through Envoy, longer than make test's run (TODO_FUZZ_EXAMPLES=100)
	@TODO_FUZZ_EXAMPLES=$${TODO_FUZZ_EXAMPLES:-100} TODO_FUZZ_SEED=$${TODO_FUZZ_SEED:-$$RANDOM} \
	  $(PY) -m pytest -p no:cacheprovider tests/e2e/test_fuzz.py -v

client-ts:  ## Generate and type-check the TypeScript client from server/docs/openapi.json
	@cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && \
	  npm run --silent generate && npm run --silent build && \
	  echo "==> clients/typescript/generated/schema.d.ts type-checks; run: node clients/typescript/build/src/flow.js URL"

bench: $(STAMP)  ## Throughput: REST vs gRPC vs a trivial RPC, side by side (bench/README.md)
	@$(PY) bench/throughput.py

profile: $(STAMP)  ## py-spy flame graph summaries of a server process under REST get/create and gRPC get load
	@$(PY) bench/flame.py $(PROFILE_ARGS)

bench-streams: $(STAMP)  ## Watch capacity and latency, streaming, batchCreate (bench/README.md)
	@$(PY) bench/streams.py

bench-index-costs: $(STAMP)  ## What each index on tasks and the aggregate triggers cost a batchCreate of 500 (backend CPU)
	@$(PY) bench/index_costs.py

bench-observability: $(STAMP)  ## get-task req/s with observability off, logs+metrics, +tracing (side by side)
	@$(PY) bench/observability.py

bench-observability-instructions: $(STAMP)  ## Instructions per get-task with observability off and on (callgrind; repeatable on a busy box; ~10 min)
	@$(PY) bench/observability_instructions.py

bench-scale: $(STAMP)  ## Query latency with 5M tasks, 1M of them one user's (about 15 min; SCALE_ARGS="--big 100000 --others 400000" for a quick run)
	@$(PY) bench/data_scale.py $(SCALE_ARGS)

FLOOD_ARGS ?= --repeats 6 --duration 5 --placebo
bench-login-flood: $(STAMP)  ## Get latency during wrong-password login floods of 4/16/64 connections, 6 rounds (about 9 min)
	@$(PY) bench/login_flood.py $(FLOOD_ARGS)

LOCK := $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes -q

$(VENV)/bin/uv:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet "$$(grep -o 'uv==[0-9.]*' pyproject.toml)"

lock: $(VENV)/bin/uv  ## Re-resolve requirements/*.lock after a pin in pyproject.toml changed (keeps the rest)
	@$(LOCK) -o requirements/prod.lock
	@$(LOCK) --extra dev -o requirements/dev.lock
	@echo "==> requirements/prod.lock and requirements/dev.lock updated: review and commit them"

lock-upgrade: $(VENV)/bin/uv  ## Re-resolve the locks to the newest versions the pins allow
	@$(LOCK) --upgrade -o requirements/prod.lock
	@$(LOCK) --upgrade --extra dev -o requirements/dev.lock

deploy-lint: $(STAMP)  ## hadolint the Dockerfile, validate docker-compose.yml (CI)
	@$(VENV)/bin/hadolint Dockerfile
	@deploy/check-compose

image: $(STAMP)  ## Build the image with buildah (base made by debootstrap, no registry needed)
	@deploy/build-image

test-install: $(STAMP)  ## pip install . (no extras) into a fresh venv; migrate and serve from elsewhere
	@TODO_TEST_INSTALL=1 $(PY) -m pytest -q tests/e2e/test_installed_wheel.py

clean:  ## Remove the virtualenv, tools and caches (keeps .data/)
	rm -rf $(VENV) $(TOOLS) third_party .pytest_cache .mypy_cache .ruff_cache
