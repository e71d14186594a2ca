PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install tools test demo dev bench soak lint format clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml sandbox/pyproject.toml
	$(BIN)/pip install -q -e ./sandbox -e '.[dev,ui,s3]'
	touch $(STAMP)

install: $(STAMP)

# Test servers from the npm registry (azurite, the Azure Storage emulator) in a git-ignored folder.
AZURITE := .tools/node_modules/.bin/azurite-blob
$(AZURITE):
	@command -v npm >/dev/null || { echo "npm not found: the Azure Blob tests will be skipped"; exit 0; }; \
	npm install --prefix .tools --no-audit --no-fund --silent azurite@3
tools: $(AZURITE)

# lint first: .ci/run calls `make test`, so lint and type errors fail CI too
test: $(STAMP) tools lint
	$(BIN)/python -m pytest -q -m "not soak"

# demo and dev share one persistent Dagster instance (runs, partitions, check results) in .dagster/
.dagster/dagster.yaml:
	mkdir -p .dagster
	printf '# The Dagster instance of make demo and make dev.\ntelemetry:\n  enabled: false\n' > $@

demo: $(STAMP) .dagster/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.dagster $(BIN)/python -m ragflow_dagster.demo $(ARGS)

dev: $(STAMP) .dagster/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.dagster $(BIN)/dagster dev -w workspace.yaml

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

soak: $(STAMP)
	$(BIN)/python -m pytest -q -m soak tests/reliability

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .sandbox .tools build *.egg-info sandbox/build sandbox/*.egg-info
