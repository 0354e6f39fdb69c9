# scalefit developer tasks. `make help` lists them.
PYTHON ?= python3

.PHONY: help install demo test lint bench calibration study costclaim clean

help:  ## this list
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install scalefit with the test extras into the current environment
	$(PYTHON) -m pip install -e '.[test]'

demo:  ## the bundled real data end to end: fit, forecast, curve law, schedules, HTML reports (writes out/demo/)
	examples/demo.sh out/demo

test:  ## the test suite (what CI runs)
	$(PYTHON) -m pytest

lint:  ## static checks
	$(PYTHON) -m ruff check scalefit laws tests benchmarks

bench:  ## speed benchmarks against real data; writes benchmarks/results/
	$(PYTHON) benchmarks/run.py

calibration:  ## interval coverage: simulation (point and curve laws) and held-out real runs; writes benchmarks/results/
	$(PYTHON) benchmarks/calibration.py
	$(PYTHON) benchmarks/calibration_curves.py
	$(PYTHON) benchmarks/curve_coverage.py
	$(PYTHON) benchmarks/isoflop_coverage.py

study:  ## multipower on the MPL split: fitted optimum vs the official recipe, joint fit across sizes, calibration records; writes benchmarks/results/
	$(PYTHON) benchmarks/mpl_split_study.py
	$(PYTHON) benchmarks/joint_fit_study.py
	$(PYTHON) benchmarks/calibration_records.py

costclaim:  ## the memory-copy claim on measured CPU step times; writes benchmarks/results/cost_claim.md
	$(PYTHON) benchmarks/cost_claim.py

clean:
	rm -rf build dist *.egg-info .pytest_cache fit.json fit.png
