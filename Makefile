# The README's two commands: `make run` (the main job) and `make test`.
# Each one creates the virtual environment with Python 3.10 and installs the
# pinned stack first when that has not been done yet.

VENV := .venv
STAMP := $(VENV)/.installed
# kubectl (kustomize), kubernetes-validate, hadolint and checkov for the infra tests, in their own
# environment: checkov's dependencies clash with TFX's.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
# python3.10 from PATH, else a pyenv-installed 3.10 (pyenv's shim refuses when 3.10 is not selected).
PYTHON310 := $(shell (python3.10 -c 'import sys' >/dev/null 2>&1 && command -v python3.10) || ls -d $$HOME/.pyenv/versions/3.10*/bin/python3.10 2>/dev/null | tail -n 1)
export PYTHONWARNINGS := ignore::FutureWarning
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install run test lint bench clean
.DEFAULT_GOAL := install

# Debian's Chromium for the browser test (Playwright drives it; nothing is downloaded by Playwright).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

# Debian's PostgreSQL server for the history tests (each test run starts and deletes its own cluster).
POSTGRES := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) /usr/lib/postgresql/15/bin/initdb)
$(POSTGRES):
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql

install: $(STAMP) $(INFRA_STAMP) $(CHROMIUM) $(POSTGRES)

$(STAMP): setup.py constraints.txt
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is required: install python3.10 (e.g. pyenv install 3.10)"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON310) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade "pip==26.3" "setuptools==84.2.1" "wheel==0.48.0"
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@touch $(STAMP)

$(INFRA_STAMP): infra/requirements.txt infra/constraints.txt
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is required: install python3.10 (e.g. pyenv install 3.10)"; exit 1; }
	@test -x $(INFRA_VENV)/bin/python || $(PYTHON310) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet -c infra/constraints.txt -r infra/requirements.txt
	@touch $(INFRA_STAMP)

run: $(STAMP)
	$(VENV)/bin/python pipeline_runner.py local

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: lint $(INFRA_STAMP) $(CHROMIUM) $(POSTGRES)
	$(VENV)/bin/python -m pytest

# Every bench in turn, each stating its goal and writing its figures to outputs/bench/<bench>.json (train_bench
# and service_bench are the heavy ones). generalisation_bench scores a model on
# videos it never saw, so it runs only when given them: make bench MODEL=SAVED_MODEL_DIR EXAMPLES=INGEST_DIR
# (and the verdict bench with VIDEOS="FOLDER...", folders of labelled videos; the explain bench with
# TRAINER_MODEL=RUN/pipeline_root/Trainer.blend_resnet/model/ID SAMPLE_SETS="FOLDER:SEED...", sample_data folders).
bench: $(STAMP)
	$(VENV)/bin/python bench/ingest_bench.py
	$(VENV)/bin/python bench/train_bench.py
	$(VENV)/bin/python bench/serving_bench.py
	$(VENV)/bin/python bench/service_bench.py
	$(VENV)/bin/python bench/fair_share_bench.py
	$(VENV)/bin/python bench/hostile_probe.py
	$(VENV)/bin/python bench/edge_bench.py
	$(VENV)/bin/python bench/continuous_bench.py
	$(VENV)/bin/python bench/warm_start_bench.py
	$(VENV)/bin/python bench/fault_probe.py
	$(if $(and $(MODEL),$(EXAMPLES)),$(VENV)/bin/python bench/generalisation_bench.py --model $(MODEL) --examples $(EXAMPLES))
	$(if $(and $(MODEL),$(VIDEOS)),$(VENV)/bin/python bench/verdict_bench.py --model-dir $(MODEL) --videos $(VIDEOS))
	$(if $(and $(TRAINER_MODEL),$(SAMPLE_SETS)),$(VENV)/bin/python bench/explain_bench.py --model-uri $(TRAINER_MODEL) --videos $(SAMPLE_SETS))

clean:
	rm -rf outputs
