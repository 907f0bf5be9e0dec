# Quick start:  make demo   (offline demo study, CPU, a few minutes)
#               make test   (the test suite)
VENV ?= .venv
PYTHON ?= python3
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: demo test study watch bench gpu-check lint stale config-reference clean clean-results-and-downloaded-datasets

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch is installed on its own, pinned, so pip takes the CPU wheel of that release
# instead of a multi-GB CUDA build; a GPU machine installs its CUDA build beforehand.
# The other packages at the versions the tests ran with (envs/pip-constraints.txt).
# The NIR importers (envs/nir-importers.txt) without their declared dependencies, which
# they do not need and which would bring a torch of their own; the extra "nir" holds what
# they import. NeuroBench (envs/neurobench.txt) likewise: it declares a torchaudio that
# pins another torch.
$(VENV)/.installed: pyproject.toml envs/pip-constraints.txt envs/nir-importers.txt \
		envs/neurobench.txt | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c envs/pip-constraints.txt -e '.[nir]'
	$(BIN)/python -m pip install -q --no-deps -r envs/nir-importers.txt
	$(BIN)/python -m pip install -q --no-deps -r envs/neurobench.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -c envs/pip-constraints.txt -e '.[test,slurm,nir]'
	touch $@

# The demo writes results-demo/ (config key results_dir in workflow/demo.yaml), never the
# study's results/.
demo: $(VENV)/.installed
	$(BIN)/snakemake --cores $(CORES) --configfile workflow/demo.yaml

study: $(VENV)/.installed
	$(BIN)/snakemake --cores 8 --resources gpu=1

# The runs' live curves in TensorBoard (docs/watching.md): every run and sweep variant of
# the study in RESULTS_DIR (config key results_dir; the demo's: RESULTS_DIR=results-demo),
# served on WATCH_HOST:WATCH_PORT, this machine only by default (a cluster's: README,
# "Watch a study while it runs").
RESULTS_DIR ?= results
WATCH_HOST ?= 127.0.0.1
WATCH_PORT ?= 6006
watch: $(VENV)/.installed
	@if [ -d "$(RESULTS_DIR)" ]; then \
	    echo "make watch: the live curves of the study in $(RESULTS_DIR)/ (RESULTS_DIR=... for another)"; \
	else \
	    echo "make watch: $(RESULTS_DIR)/ does not exist yet: no study with results_dir $(RESULTS_DIR) started here (RESULTS_DIR=... names another, e.g. results-small); its curves appear as it trains"; \
	fi
	mkdir -p "$(RESULTS_DIR)/tensorboard"
	$(BIN)/tensorboard --logdir "$(RESULTS_DIR)/tensorboard" --host "$(WATCH_HOST)" --port "$(WATCH_PORT)"

# Two workers, a test file each at a time (module fixtures stay in one worker): most of
# the suite waits on Snakemake jobs, so two files at once take about half the time.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(VENV)/.installed
	mkdir -p results
	$(BIN)/python benchmarks/bench.py --prep-samples 70000 --peers --json results/bench.json

# The CUDA path checked and timed on a GPU machine (docs/gpu.md, "Checking the GPU path"),
# with the Python that already holds torch there; elsewhere with the project's
# environment. Every file goes into GPU_CHECK_OUT. GPU_CHECK_ARGS: e.g. --device cuda:1
# --budget-minutes 12. The script's exit status tells the outcome (0 passed, 1 mismatch
# or incomplete, 2 cannot run here) and its last line says it; make reports any failing
# recipe as its own exit status 2, with the script's in its "Error N" line.
GPU_CHECK_OUT ?= results/gpu-check
GPU_CHECK_ARGS ?=
gpu-check:
	@if $(PYTHON) -c "import torch" 2>/dev/null; then py=$(PYTHON); \
	else $(MAKE) -s $(VENV)/.installed && py=$(BIN)/python; fi; \
	$$py benchmarks/gpu_check.py --out "$(GPU_CHECK_OUT)" $(GPU_CHECK_ARGS)

# Files in a results folder that the current config no longer makes (a dropped T, seed or
# sweep row, an earlier config's runs): listed; REMOVE=1 removes them. CONFIG: the options
# the study runs with, e.g. make stale CONFIG="--configfile my.yaml" (the demo's:
# CONFIG="--configfile workflow/demo.yaml").
CONFIG ?=
stale: $(VENV)/.installed
	$(BIN)/python -m snnflow.plan.stale $(if $(REMOVE),--remove) --cores 1 $(CONFIG)

# docs/configuration.md, generated from the schema's descriptions and config.yaml's values
config-reference: $(VENV)/.installed
	$(BIN)/python -m snnflow.plan.config_reference

lint: $(VENV)/.installed
	$(BIN)/snakemake --lint

# Everything the study and the demo computed, but the downloads (results/raw: about 1 GB
# of N-MNIST) and the checkpoints of unfinished runs: rerunning starts from the data stages.
clean:
	for folder in results results-demo; do \
	    find $$folder -mindepth 1 -maxdepth 1 ! -name raw ! -name checkpoints -exec rm -rf {} + 2>/dev/null || true; \
	done
	rm -rf .snakemake

# Everything, the downloaded datasets and checkpoints included; named so that nobody
# types it by accident.
clean-results-and-downloaded-datasets:
	rm -rf results results-demo .snakemake
