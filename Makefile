# mae-launch: set-up, tests and the demo. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
INVENTORY ?= inventories/local.yml

N         ?= 4

# IPU profile: a venv from the Python the SDK's poptorch wheel was built for, with that wheel
SDK        ?=
IPU_PYTHON ?= python3
IPU_VENV   ?= .venv-ipu
# SDK compatibility check: torch 2.0.1 (the SDK's) from the package registry on Python 3.8-3.11
# (3.10 or 3.8 preferred, as on the SDK's Ubuntu releases; else this system's python3.11)
COMPAT_VENV   ?= .venv-compat
COMPAT_PYTHON ?= $(shell for p in python3.10 $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) python3.8 \
	$(wildcard $(HOME)/.pyenv/versions/3.8*/bin/python3.8) python3.11 python3.9 python3; do \
	v=$$($$p -c 'import sys; print(sys.version_info[:2] >= (3, 8) and sys.version_info[:2] <= (3, 11))' 2>/dev/null); \
	if [ "$$v" = True ]; then command -v $$p; break; fi; done)
CONSTRAINTS_SDK := constraints/torch-2.0.1.txt
# the Pythons of the SDK's Ubuntu releases (20.04: 3.8, 22.04: 3.10): .[test] must resolve for each
SDK_PYTHONS ?= 3.8 3.10

.PHONY: help install install-ipu docs docs-install docs-serve test test-convergence test-faults test-fast test-sdk-compat demo data bench remap deploy schema cluster-up cluster-down slurm-up slurm-down clean

help:
	@echo "make install   create $(VENV) with pinned torch/torchvision and the project (editable)"
	@echo "make demo      run the demo on this machine (digits dataset, created when absent)"
	@echo "make data      write the digits dataset (1,797 small images from scikit-learn) to data/digits"
	@echo "make docs      build the documentation site into site/ (mkdocs, strict: a broken link or anchor fails)"
	@echo "make docs-serve  serve the documentation site at http://127.0.0.1:8000/ (DOCS_ADDR=host:port to change)"
	@echo "make schema    regenerate inventories/inventory.schema.json (the inventory's JSON Schema, for editors)"
	@echo "make install-ipu SDK=/path/to/poplar_sdk  create $(IPU_VENV) beside the Poplar SDK (its poptorch, torch 2.0.1)"
	@echo "make test      run the test suite (cluster and slow tests included), all but convergence and injected faults"
	@echo "make test-convergence  train the digits pipeline (pretrain, finetune, validate) to its accuracy bar"
	@echo "make test-faults  inject faults into runs on the loopback cluster (blip, lost/hung host, killed rank); the README walk-through"
	@echo "make test-sdk-compat  prove .[test] resolves for Python $(SDK_PYTHONS) with the SDK's constraints, then run the mae tests that need no IPU under torch 2.0.1 in $(COMPAT_VENV)"
	@echo "make test-fast run the tests not marked slow, cluster or slurm"
	@echo "make bench     run the benchmarks under bench/, write bench/results/<time>/report.md"
	@echo "make remap     build the native remap op (remap/remap_ops.so)"
	@echo "make deploy INVENTORY=...  sync the code to every host and build remap there"
	@echo "make cluster-up N=4  start N sshd 'hosts' on 127.0.0.x (as root) and write .cluster/inventory.yml"
	@echo "make cluster-down    stop them"
	@echo "make slurm-up        start a real Slurm cluster here (munged, slurmctld, 2 slurmd; as root) in .slurm/"
	@echo "make slurm-down      stop it"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e '.[cpu-gpu,test]'

install-ipu:
	@test -n "$(SDK)" || { echo "error: name the Poplar SDK folder: make install-ipu SDK=/path/to/poplar_sdk" >&2; exit 2; }
	@ls "$(SDK)"/poptorch-*.whl >/dev/null 2>&1 || { echo "error: $(SDK) holds no poptorch-*.whl; give the unpacked Poplar SDK folder" >&2; exit 2; }
	$(IPU_PYTHON) -m venv $(IPU_VENV)
	$(IPU_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(IPU_VENV)/bin/python -m pip install --quiet "$(SDK)"/poptorch-*.whl
	@if ls "$(SDK)"/popdist-*.whl >/dev/null 2>&1; then $(IPU_VENV)/bin/python -m pip install --quiet "$(SDK)"/popdist-*.whl; fi
	$(IPU_VENV)/bin/python -m pip install --quiet -c $(CONSTRAINTS_SDK) -e '.[test]' mpi4py
	@echo "done: source $(SDK)/enable, then $(IPU_VENV)/bin/python -m mae.align (or: $(IPU_VENV)/bin/mae-launch ...)"

$(COMPAT_VENV)/bin/python:
	@test -n "$(COMPAT_PYTHON)" || { echo "error: no Python 3.8-3.11 found for torch 2.0.1; install python3.10 (pyenv) or pass COMPAT_PYTHON=/path/to/python3.X" >&2; exit 2; }
	$(COMPAT_PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip

test-sdk-compat: $(COMPAT_VENV)/bin/python
	$(COMPAT_VENV)/bin/python -m pip install --quiet -c $(CONSTRAINTS_SDK) -e '.[test]'
	for v in $(SDK_PYTHONS); do $(COMPAT_VENV)/bin/python tests/sdk_compat_resolve.py --python-version $$v \
		--constraints $(CONSTRAINTS_SDK) || exit 1; done
	$(COMPAT_VENV)/bin/python -c 'import sys, torch; print("sdk-compat: Python", sys.version.split()[0], "torch", torch.__version__)'
	$(COMPAT_VENV)/bin/python -m pytest -m sdk_compat -p no:cacheprovider -q --durations=10

# tests/prereqs.py: as root, installs what the cluster tests need (apt-get); otherwise says how
test: install
	$(PY) tests/prereqs.py
	$(PY) -m pytest -m 'not faults and not convergence and not walkthrough' --durations=15

# the digits pipeline trained through its real command lines to the accuracy bar: minutes of training
test-convergence: install
	$(PY) -m pytest -m convergence --durations=5

# faults injected into runs on the loopback cluster (a blip, a lost or hung host, a killed rank): minutes of
# waiting; and the README's first-cluster walk-through, command by command
test-faults: install
	$(PY) tests/prereqs.py
	$(PY) -m pytest -m 'faults or walkthrough' --durations=5

test-fast: $(PY)
	$(PY) -m pytest -m 'not slow and not cluster and not slurm'

remap: $(PY)
	$(MAKE) -C remap PYTHON=$(abspath $(PY))

data: $(PY)
	$(PY) -m mae.data digits --out data/digits

# the documentation site (mkdocs.yml, docs/): the `docs` extra into $(VENV) beside what make install
# puts there (the same pinned torch: the reference pages import the launcher); the CLI, inventory-key and
# config pages are generated from the code at each build (docs/hooks.py)
DOCS_ADDR ?= 127.0.0.1:8000
docs-install: $(PY)
	$(PY) -m pip install --quiet -e '.[cpu-gpu,test,docs]'

docs: docs-install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

docs-serve: docs-install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve --strict -a $(DOCS_ADDR)

schema: $(PY)
	$(PY) -m launcher inventory schema > inventories/inventory.schema.json

demo: install remap data
	$(PY) -m launcher pipeline --inventory inventories/local.yml

deploy: $(PY)
	$(PY) -m launcher deploy --inventory $(INVENTORY)

cluster-up: data
	$(PY) tests/cluster.py up -n $(N) --dir .cluster

cluster-down:
	$(PY) tests/cluster.py down --dir .cluster

slurm-up: data
	$(PY) tests/slurm.py up --dir .slurm

slurm-down:
	$(PY) tests/slurm.py down --dir .slurm

bench: $(PY) remap
	$(PY) bench/report.py

clean:
	rm -rf output runs site .pytest_cache $(COMPAT_VENV)
	$(MAKE) -C remap clean
