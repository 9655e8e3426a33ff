# linkload: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: demo test install deps lint bench fuzz clean

# System packages (compilers the tests build real code with) and the Python package.
deps:
	bash scripts/install-deps

install: deps
	$(PIP) install -q -e '.[test]'

demo: install
	$(PYTHON) examples/demo.py

test: install
	$(PYTHON) -m ruff check src tests bench examples scripts
	$(PYTHON) -m pytest -q

# The fuzzer's long run: FUZZ_COUNT mutants of each format (the test suite runs 2,000).
FUZZ_COUNT ?= 50000
FUZZ_SEED ?= 2
fuzz: install
	$(PYTHON) scripts/fuzz.py --count $(FUZZ_COUNT) --seed $(FUZZ_SEED)

bench: install
	$(PIP) install -q -e '.[bench]'
	$(PYTHON) bench/link_speed.py
	$(PYTHON) bench/makerel_speed.py
	$(PYTHON) bench/locate_speed.py
	$(PYTHON) bench/nxflat_speed.py
	$(PYTHON) bench/call_cost.py

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache
