# linkload: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: demo test install deps lint bench clean

# System packages (compilers the tests build real code with) and the Python package.
deps:
	bash scripts/install-deps

install: deps
	$(PIP) install -q -e '.[test]'

demo: install
	$(PYTHON) examples/demo.py

test: install
	$(PYTHON) -m ruff check src tests bench examples
	$(PYTHON) -m pytest -q

bench: install
	$(PIP) install -q -e '.[bench]'
	$(PYTHON) bench/link_speed.py
	$(PYTHON) bench/locate_speed.py

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache
