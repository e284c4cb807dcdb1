# mae-launch: set-up, tests and the demo. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
INVENTORY ?= inventories/local.yml

N         ?= 4

.PHONY: help install test test-fast demo bench remap deploy cluster-up cluster-down slurm-up slurm-down clean

help:
	@echo "make install   create $(VENV) with pinned torch/torchvision and the project (editable)"
	@echo "make demo      run the demo on this machine (digits dataset, created when absent)"
	@echo "make test      run the whole test suite (cluster and slow tests included)"
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
	$(PY) -m pip install --quiet -e '.[test]'

# tests/prereqs.py: as root, installs what the cluster tests need (apt-get); otherwise says how
test: install
	$(PY) tests/prereqs.py
	$(PY) -m pytest

test-fast: $(PY)
	$(PY) -m pytest -m 'not slow and not cluster and not slurm'

remap: $(PY)
	$(MAKE) -C remap PYTHON=$(abspath $(PY))

demo: install remap
	$(PY) -m mae.data digits --out data/digits
	$(PY) -m launcher pipeline --inventory inventories/local.yml

deploy: $(PY)
	$(PY) -m launcher deploy --inventory $(INVENTORY)

cluster-up: $(PY)
	$(PY) -m mae.data digits --out data/digits
	$(PY) tests/cluster.py up -n $(N) --dir .cluster

cluster-down:
	$(PY) tests/cluster.py down --dir .cluster

slurm-up: $(PY)
	$(PY) -m mae.data digits --out data/digits
	$(PY) tests/slurm.py up --dir .slurm

slurm-down:
	$(PY) tests/slurm.py down --dir .slurm

bench: $(PY)
	$(PY) bench/report.py

clean:
	rm -rf output runs .pytest_cache
	$(MAKE) -C remap clean
