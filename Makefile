# ephemeros — the two commands:
#   make up     set everything up and run `pulumi up` on the $(STACK) stack (default dev)
#   make test   set everything up and run the tests
# Both install what they need: Debian packages, the virtualenv, and the Pulumi engine.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

STACK ?= dev
PYTHON ?= python3
VENV := .venv
TOOLS := .tools

# What the program and the tests run with: the project's engine and venv first on PATH, state in a local file
# backend inside the project, a passphrase secrets provider, and no network calls the engine would make on its
# own (update checks, plugin downloads). `make env` prints the same for a shell.
export PATH := $(CURDIR)/$(TOOLS)/bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export PULUMI_HOME := $(CURDIR)/$(TOOLS)/pulumi-home
export PULUMI_BACKEND_URL := file://$(CURDIR)
export PULUMI_CONFIG_PASSPHRASE_FILE := $(CURDIR)/.pulumi-passphrase
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
ENV_VARS := PATH PULUMI_HOME PULUMI_BACKEND_URL PULUMI_CONFIG_PASSPHRASE_FILE PULUMI_SKIP_UPDATE_CHECK \
	PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION

# Debian packages: what `make up` needs, and what the tests need on top.
APT_UP := ca-certificates curl gdisk dosfstools mtools syslinux syslinux-common e2fsprogs
APT_TEST := ignition policycoreutils systemd qemu-system-x86 ovmf seabios busybox-static cpio kmod \
	bind9 bind9-utils bind9-dnsutils cloud-init rclone debootstrap qemu-utils dnsmasq-base

ON_STACK := --stack $(STACK) --non-interactive

.PHONY: help up preview destroy refresh env test lint format generate lock setup setup-test deps deps-test engine ipxe \
	nodetools testtools stack serve clean bench bench-datastore kubeconfig

help:
	@echo "make up       set up and run 'pulumi up' on the $(STACK) stack"
	@echo "make test     set up and run the tests"
	@echo "make preview | destroy | refresh   the same Pulumi commands on the $(STACK) stack"
	@echo "eval \"\$$(make -s env)\"   use plain 'pulumi ...' in this shell afterwards"
	@echo "make lint     ruff and mypy;  make lock   re-pin requirements*.txt from requirements*.in"
	@echo "make generate   remake Pulumi.yaml's config block and docs/settings.md from the models in settings/"
	@echo "make serve [SERVE_ADDRESS=0.0.0.0]   serve build/\$$STACK/ignition on port 8080 (default: loopback only)"
	@echo "make bench    measure stick builds (1, 10, 50 nodes) and QEMU boots; make bench-datastore: the datastore"
	@echo "make kubeconfig   write the $(STACK) stack's admin kubeconfig to build/$(STACK)/kubeconfig (0600)"

up: setup stack
	pulumi up $(ON_STACK) --yes

preview: setup stack
	pulumi preview $(ON_STACK)

destroy: setup stack
	pulumi destroy $(ON_STACK) --yes

refresh: setup stack
	pulumi refresh $(ON_STACK) --yes

env:
	@$(foreach v,$(ENV_VARS),echo 'export $(v)="$($(v))"';)

test: setup-test lint
	$(VENV)/bin/pytest

bench: setup-test
	$(VENV)/bin/python -m bench.sticks

bench-datastore: setup-test
	$(VENV)/bin/python -m bench.datastore

# The $(STACK) stack's admin kubeconfig, into build/$(STACK)/kubeconfig (mode 0600; never printed).
kubeconfig: setup stack
	@mkdir -p build/$(STACK)
	@rm -f build/$(STACK)/kubeconfig; umask 077; \
		pulumi stack output kubeconfig --show-secrets --stack $(STACK) > build/$(STACK)/kubeconfig
	@echo "wrote build/$(STACK)/kubeconfig: kubectl --kubeconfig build/$(STACK)/kubeconfig get nodes"

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

generate: $(VENV)/.runtime
	$(VENV)/bin/python -m settings.schema

lock: $(VENV)/.dev
	$(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -o requirements.txt requirements.in
	$(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -o requirements-dev.txt requirements-dev.in

setup: deps $(VENV)/.runtime engine ipxe nodetools
setup-test: setup deps-test $(VENV)/.dev testtools

deps:
	@scripts/apt-deps.sh $(APT_UP)

deps-test:
	@scripts/apt-deps.sh $(APT_TEST)

engine:
	@scripts/ensure-pulumi.sh

ipxe:
	@scripts/fetch-ipxe.sh

nodetools:
	@nodetools/build.sh

# The real servers the tests run (etcd, kine, kube-apiserver, versitygw), built from pinned Go modules, cached.
testtools:
	@testtools/build.sh

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ephemeros needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install -q --require-hashes -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(VENV)/bin/pip install -q --require-hashes -r requirements-dev.txt
	touch $@

# A random passphrase for the passphrase secrets provider, made once; keep a copy, as secrets in the stack's
# config and state cannot be read without it.
.pulumi-passphrase:
	umask 077; head -c 32 /dev/urandom | base64 > $@

# Creates the stack if need be, without selecting it: every command here names its stack, and a plain `pulumi`
# command afterwards still works on the stack you selected yourself.
stack: .pulumi-passphrase
	@pulumi stack ls --json 2>/dev/null | grep -q '"name": "$(STACK)"' || \
		pulumi stack init $(STACK) --no-select --non-interactive --secrets-provider passphrase

# Serve the stack's public Ignition configs on port 8080, where the dev stack's nodes look for them (QEMU guests
# reach the host's loopback as 10.0.2.2). SERVE_ADDRESS=<this machine's LAN address> serves a LAN.
SERVE_ADDRESS ?= 127.0.0.1
serve:
	$(PYTHON) scripts/serve.py --bind $(SERVE_ADDRESS) --port 8080 build/$(STACK)/ignition

clean:
	rm -rf build
