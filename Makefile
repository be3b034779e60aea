# Two commands: `make serve` runs the app, `make test` passes the tests.
# Both create .venv and install what they need first. `make test-fast`
# runs only tests/unit: no child process, no socket, done in seconds.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: serve test test-fast lint install shell zeo clean bench bench-smoke bench-install

$(BIN)/pserve: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[testing]'
	touch $@

install: $(BIN)/pserve

serve: install
	$(BIN)/pserve development.ini

shell: install
	$(BIN)/pshell development.ini

zeo: install
	$(BIN)/runzeo -C zeo.conf

lint: install
	$(BIN)/ruff check pyramid_zeostore tests benchmarks

test: install lint
	$(BIN)/python -m coverage erase
	$(BIN)/python -m coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine --quiet
	$(BIN)/python -m coverage report

# The unit tests only (tests/unit/conftest.py keeps them hermetic).
test-fast: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The benchmark harness (benchmarks/README.md): wrk from Debian, the peer
# (pyramid_zodbconn) from the `bench` extra.
$(VENV)/.bench-installed: $(BIN)/pserve setup.py pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

bench-install: $(VENV)/.bench-installed
	bash .ci/install-bench

bench: bench-install
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

bench-smoke: bench-install
	$(BIN)/python benchmarks/bench.py --smoke

clean:
	rm -rf $(VENV) var .coverage .coverage.* *.egg-info
