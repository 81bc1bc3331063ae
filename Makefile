# certwiz: `make demo` runs the four steps on a demo profile; `make test` runs every test.
#
# Every variable reaches its command as exactly one argument, holding exactly what was
# given: `make client NAME='bot;touch x'` names a client "bot;touch x", `NAME='x -n y'`
# is one name, and a `$` is neither a make nor a shell reference. How: each variable given
# from outside (command line, environment) becomes a simple variable holding its raw text
# ($(value ...)), and recipes put it on a command line only through $(call arg,...),
# which single-quotes it.
SHELL := /bin/bash
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PYTHON ?= python3
VENV ?= $(ROOT)/.venv
PROFILE ?= demo
NAME ?=
DAYS ?= 365
UNENCRYPTED ?=
CERTWIZ_HOME ?= $(CURDIR)/certs
$(foreach v,PYTHON VENV PROFILE NAME DAYS UNENCRYPTED CERTWIZ_HOME,\
  $(if $(filter command% environment%,$(origin $(v))),$(eval override $(v) := $$(value $(v)))))
export CERTWIZ_HOME

# $(call arg,TEXT): TEXT as one shell word (single quotes; a ' inside becomes '\'').
arg = '$(subst ','\'',$(1))'
BIN := $(VENV)/bin
CERTWIZ := $(call arg,$(BIN)/certwiz)
CERTWIZ_ARGS = -p $(call arg,$(PROFILE))
NAME_ARGS = -n $(call arg,$(NAME))

.PHONY: help venv demo test lint bench ca server client revoke crl list clean

help:
	@echo "make demo | test | lint | bench [BENCH_ARGS='--runs 7 --fleet 1000'] | ca PROFILE=p | server PROFILE=p NAME=n [DAYS=d]"
	@echo "make client PROFILE=p NAME=n [UNENCRYPTED=1] | revoke PROFILE=p NAME=n | crl | list"

$(BIN)/.installed: $(ROOT)/pyproject.toml $(ROOT)/constraints.txt
	$(call arg,$(PYTHON)) -m venv $(call arg,$(VENV))
	$(call arg,$(BIN)/pip) install -q --upgrade pip
	$(call arg,$(BIN)/pip) install -q -e $(call arg,$(ROOT)[test]) -c $(call arg,$(ROOT)/constraints.txt)
	touch $(call arg,$@)

venv: $(BIN)/.installed

demo: venv
	cd $(call arg,$(ROOT)) && PATH=$(call arg,$(abspath $(BIN))):"$$PATH" bash examples/demo.sh

# The suite on every core up to 4 (pytest-xdist), one test file per worker at a time: a
# file's module-scoped CA and nginx are built once. `pytest` alone runs in one process.
test: venv lint
	cd $(call arg,$(ROOT)) && $(call arg,$(BIN)/pytest) -q -n auto --maxprocesses 4 --dist loadfile

# certwiz vs raw openssl vs easy-rsa; writes bench/results.md (minutes; not part of test).
bench: venv
	@command -v /usr/share/easy-rsa/easyrsa >/dev/null || $(if $(filter 0,$(shell id -u)),,sudo) \
		apt-get install -y -qq easy-rsa
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: venv
	cd $(call arg,$(ROOT)) && $(call arg,$(BIN)/ruff) check .
	cd $(call arg,$(ROOT)) && $(call arg,$(BIN)/ruff) format --check .
	cd $(call arg,$(ROOT)) && $(call arg,$(BIN)/mypy) --strict certwiz

ca: venv
	$(CERTWIZ) ca init $(CERTWIZ_ARGS)

server: venv
	$(CERTWIZ) server issue $(CERTWIZ_ARGS) $(NAME_ARGS) -d $(call arg,$(DAYS))

client: venv
	$(CERTWIZ) client issue $(CERTWIZ_ARGS) $(NAME_ARGS) -d $(call arg,$(DAYS)) $(if $(UNENCRYPTED),-u)

revoke: venv
	$(CERTWIZ) revoke $(CERTWIZ_ARGS) $(NAME_ARGS)

crl: venv
	$(CERTWIZ) crl gen $(CERTWIZ_ARGS)

list: venv
	$(CERTWIZ) list $(CERTWIZ_ARGS)

clean:
	cd $(call arg,$(ROOT)) && rm -rf $(call arg,$(VENV)) build dist *.egg-info .pytest_cache .ruff_cache
