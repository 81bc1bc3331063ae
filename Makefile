# certwiz: `make demo` runs the four steps on a demo profile; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CERTWIZ := $(BIN)/certwiz
PROFILE ?= demo
NAME ?=
DAYS ?= 365
export CERTWIZ_HOME ?= $(CURDIR)/certs

.PHONY: help venv demo test lint ca server client revoke crl list clean

help:
	@echo "make demo | test | lint | ca PROFILE=p | server PROFILE=p NAME=n [DAYS=d]"
	@echo "make client PROFILE=p NAME=n [UNENCRYPTED=1] | revoke PROFILE=p NAME=n | crl | list"

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' -c constraints.txt
	touch $@

venv: $(BIN)/.installed

demo: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

test: venv lint
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict certwiz

ca: venv
	$(CERTWIZ) ca init -p $(PROFILE)

server: venv
	$(CERTWIZ) server issue -p $(PROFILE) -n $(NAME) -d $(DAYS)

client: venv
	$(CERTWIZ) client issue -p $(PROFILE) -n $(NAME) -d $(DAYS) $(if $(UNENCRYPTED),-u)

revoke: venv
	$(CERTWIZ) revoke -p $(PROFILE) -n $(NAME)

crl: venv
	$(CERTWIZ) crl gen -p $(PROFILE)

list: venv
	$(CERTWIZ) list -p $(PROFILE)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
