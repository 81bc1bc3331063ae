# certwiz: `make demo` runs the four steps on a demo profile; `make test` runs every test.
#
# Every variable reaches its command as exactly one argument, holding exactly what was
# given: `make client NAME='bot;touch x'` names a client "bot;touch x", `NAME='x -n y'`
# is one name, and a `$` is neither a make nor a shell reference. How: each variable given
# from outside (command line, environment) becomes a simple variable holding its raw text
# ($(value ...)), and recipes put it on a command line only through $(call arg,...),
# which single-quotes it. The certificate variables (PROFILE, NAME, DAYS, UNENCRYPTED) are
# taken from the command line only: one left in the environment (WSL sets NAME for every
# shell) would revoke or issue the wrong name, so a target that uses it stops instead.
# What a recipe runs (PYTHON, and VENV's bin/) or passes on word by word (BENCH_ARGS) is
# taken from the command line only too: an environment value is ignored and the default
# holds, since whatever set it (a wrapper, a CI job, `sudo -E`) would choose what runs.
# `clean` removes $(ROOT)/.venv, never another VENV, and never CERTWIZ_HOME.
SHELL := /bin/bash
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
$(foreach v,PYTHON VENV BENCH_ARGS,\
  $(if $(filter environment%,$(origin $(v))),$(eval override undefine $(v))))
PYTHON ?= python3
VENV ?= $(ROOT)/.venv
PROFILE ?= demo
NAME ?=
DAYS ?= 365
UNENCRYPTED ?=
CERTWIZ_HOME ?= $(CURDIR)/certs
FROM_ENV := $(foreach v,PROFILE NAME DAYS UNENCRYPTED,$(if $(filter environment%,$(origin $(v))),$(v)))
$(foreach v,PYTHON VENV BENCH_ARGS PROFILE NAME DAYS UNENCRYPTED CERTWIZ_HOME,\
  $(if $(filter command% environment%,$(origin $(v))),$(eval override $(v) := $$(value $(v)))))
export CERTWIZ_HOME

# $(call arg,TEXT): TEXT as one shell word (single quotes; a ' inside becomes '\'').
arg = '$(subst ','\'',$(1))'
# $(call cli_only,VAR): nothing, or make stops when VAR came from the environment.
cli_only = $(if $(filter $(1),$(FROM_ENV)),$(error $(1) is set in the environment, not on \
  the command line: give it as make $@ $(1)=..., or unset $(1)))
# $(call given,VAR): VAR's value (from the command line) as one shell word.
given = $(call cli_only,$(1))$(call arg,$($(1)))
# -u for UNENCRYPTED=1, yes or true; nothing for 0, no, false or empty; anything else stops.
unencrypted = $(call cli_only,UNENCRYPTED)$(if \
  $(filter-out 0 1 yes no true false,$(UNENCRYPTED))$(word 2,$(UNENCRYPTED)),\
  $(error UNENCRYPTED must be 1, yes or true (a bundle with the empty password) or 0, no, \
  false or empty, not '$(UNENCRYPTED)'),$(if $(filter 1 yes true,$(UNENCRYPTED)),-u))
BIN := $(VENV)/bin
CERTWIZ := $(call arg,$(BIN)/certwiz)
CERTWIZ_ARGS = -p $(call given,PROFILE)
NAME_ARGS = -n $(call given,NAME)

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
	cd $(call arg,$(ROOT)) && $(call arg,$(BIN)/python) bench/run.py $(foreach w,$(BENCH_ARGS),$(call arg,$(w)))

lint: venv
	cd $(call arg,$(ROOT)) && $(call arg,$(BIN)/ruff) check .
	cd $(call arg,$(ROOT)) && $(call arg,$(BIN)/ruff) format --check .
	cd $(call arg,$(ROOT)) && $(call arg,$(BIN)/mypy) --strict certwiz

ca: venv
	$(CERTWIZ) ca init $(CERTWIZ_ARGS)

server: venv
	$(CERTWIZ) server issue $(CERTWIZ_ARGS) $(NAME_ARGS) -d $(call given,DAYS)

client: venv
	$(CERTWIZ) client issue $(CERTWIZ_ARGS) $(NAME_ARGS) -d $(call given,DAYS) $(unencrypted)

revoke: venv
	$(CERTWIZ) revoke $(CERTWIZ_ARGS) $(NAME_ARGS)

crl: venv
	$(CERTWIZ) crl gen $(CERTWIZ_ARGS)

list: venv
	$(CERTWIZ) list $(CERTWIZ_ARGS)

clean:
	cd $(call arg,$(ROOT)) && rm -rf .venv build dist *.egg-info .pytest_cache .ruff_cache
