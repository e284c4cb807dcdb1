# mae-launch: set-up, tests and the demo. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
INVENTORY ?= inventories/local.yml

.PHONY: help install test test-fast demo bench remap deploy clean

help:
	@echo "make install   create $(VENV) with pinned torch/torchvision and the project (editable)"
	@echo "make demo      run the demo on this machine (digits dataset, created when absent)"
	@echo "make test      run the whole test suite (cluster and slow tests included)"
	@echo "make test-fast run the tests not marked slow or cluster"
	@echo "make bench     run the benchmarks under bench/"
	@echo "make remap     build the native remap op (remap/remap_ops.so)"
	@echo "make deploy INVENTORY=...  sync the code to every host and build remap there"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'

test: install
	$(PY) -m pytest

test-fast: $(PY)
	$(PY) -m pytest -m 'not slow and not cluster'

remap: $(PY)
	$(MAKE) -C remap PYTHON=$(abspath $(PY))

demo: install
	$(PY) -m mae.data digits --out data/digits
	$(PY) -m mae.pretrain --config digits_pretrain --data_path data/digits --output_dir output/demo/pretrain

bench: $(PY)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf output runs .pytest_cache
	$(MAKE) -C remap clean
