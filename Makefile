# Everything runs inside .venv, created on first use from python3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test proto bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wharf demo

test: $(STAMP)
	$(BIN)/python -m pytest

# OpenMined's PSI pins an older protobuf, so it gets a venv of its own.
.venv-openmined/.installed:
	$(PYTHON) -m venv .venv-openmined
	.venv-openmined/bin/python -m pip install --quiet openmined-psi
	touch $@

bench: $(STAMP) .venv-openmined/.installed
	$(BIN)/python -m benchmarks all

proto: $(STAMP)
	$(BIN)/python -m datawharf.protoc

clean:
	rm -rf $(VENV) build *.egg-info
