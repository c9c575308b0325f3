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

# What the program and the tests run with: the project's engine and venv first on PATH (once, however often
# `make env` is evaluated), and no network calls the engine would make on its own (update checks, plugin
# downloads). State: the backend the environment names in PULUMI_BACKEND_URL (a team's bucket: README, A team's
# stack), or else a local file backend inside the project. Secrets: the passphrase the environment gives
# (PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE), or else one made here. `make env` prints the same
# for a shell, never a secret.
OWN_PATH := $(CURDIR)/$(TOOLS)/bin:$(CURDIR)/$(VENV)/bin
OTHER_PATH := $(shell printf '%s' '$(PATH)' | tr ':' '\n' | grep -vxF -e '$(CURDIR)/$(TOOLS)/bin' \
	-e '$(CURDIR)/$(VENV)/bin' | paste -sd: -)
export PATH := $(OWN_PATH)$(if $(OTHER_PATH),:$(OTHER_PATH))
export PULUMI_HOME := $(CURDIR)/$(TOOLS)/pulumi-home
LOCAL_PASSPHRASE := $(CURDIR)/.pulumi-passphrase
# The local state, without the file store's metadata files: a run killed while it wrote one left it empty, and every
# command after it failed to read the state ("failed to load checkpoint: EOF"); nothing reads them.
LOCAL_BACKEND := file://$(CURDIR)?metadata=skip
# A shell that evaluated another checkout's `make env` (EPHEMEROS_ENV_OF names it) carries that checkout's file
# backend and passphrase file: its defaults, not a choice, so this checkout uses its own.
ifneq ($(filter-out $(CURDIR),$(EPHEMEROS_ENV_OF)),)
ifneq ($(filter file://$(EPHEMEROS_ENV_OF) file://$(EPHEMEROS_ENV_OF)?metadata=skip,$(PULUMI_BACKEND_URL)),)
PULUMI_BACKEND_URL := $(LOCAL_BACKEND)
endif
ifeq ($(PULUMI_CONFIG_PASSPHRASE_FILE),$(EPHEMEROS_ENV_OF)/.pulumi-passphrase)
PULUMI_CONFIG_PASSPHRASE_FILE := $(LOCAL_PASSPHRASE)
endif
endif
export EPHEMEROS_ENV_OF := $(CURDIR)
export PULUMI_BACKEND_URL ?= $(LOCAL_BACKEND)
ifneq ($(origin PULUMI_CONFIG_PASSPHRASE),environment)
export PULUMI_CONFIG_PASSPHRASE_FILE ?= $(LOCAL_PASSPHRASE)
endif
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
ENV_VARS := PATH PULUMI_HOME PULUMI_BACKEND_URL $(if $(PULUMI_CONFIG_PASSPHRASE_FILE),PULUMI_CONFIG_PASSPHRASE_FILE) \
	PULUMI_SKIP_UPDATE_CHECK PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION EPHEMEROS_ENV_OF

# Debian packages: what `make up` needs, and what the tests need on top.
APT_UP := ca-certificates curl fdisk dosfstools mtools syslinux syslinux-common e2fsprogs ignition
APT_TEST := gdisk policycoreutils systemd qemu-system-x86 ovmf seabios busybox-static cpio kmod \
	bind9 bind9-utils bind9-dnsutils cloud-init rclone debootstrap qemu-utils dnsmasq-base gpg

ON_STACK := --stack $(STACK) --non-interactive

# The real servers the tests run, built by testtools/build.sh, one make target each so that they build side by side.
TESTTOOLS := kube-apiserver etcd kine versitygw helm-crds
# How many setup steps `make test` runs at once: the Go builds use every core, while pip, apt, debootstrap and the
# module downloads mostly wait on the network and the disk.
SETUP_JOBS ?= 6
TEST_WORKERS ?= 3

.PHONY: help up preview destroy refresh status env test lint format generate lock setup setup-test deps deps-test engine \
	ipxe nodetools testtools $(addprefix testtools-,$(TESTTOOLS)) test-assets stack new-stack serve clean bench \
	bench-scale bench-datastore kubeconfig

help:
	@echo "make up       set up and run 'pulumi up' on the $(STACK) stack"
	@echo "make test     set up and run the tests"
	@echo "make preview | destroy | refresh   the same Pulumi commands on the $(STACK) stack"
	@echo "eval \"\$$(make -s env)\"   use plain 'pulumi ...' in this shell afterwards"
	@echo "make lint     ruff and mypy;  make lock   re-pin requirements*.txt from requirements*.in"
	@echo "make generate   remake Pulumi.yaml's config block and docs/settings.md from the models in settings/"
	@echo "make serve [SERVE_ADDRESS=0.0.0.0]   serve build/\$$STACK/ignition on port 8080 (default: loopback only)"
	@echo "make bench    measure stick builds (1, 10, 50 nodes) and QEMU boots; make bench-datastore: the datastore"
	@echo "make bench-scale   how pulumi up grows from 3 to 50 nodes (first and no-change up, state, disk)"
	@echo "make new-stack NEW=prod [FROM=dev]   a new stack with the settings of another (README: A new stack)"
	@echo "make kubeconfig   write the $(STACK) stack's admin kubeconfig to build/$(STACK)/kubeconfig (0600)"
	@echo "make status   per node of the $(STACK) stack: its heartbeat, what it booted, whether it needs a reboot"

up: setup stack
	pulumi up $(ON_STACK) --yes

preview: setup stack
	pulumi preview $(ON_STACK)

# refresh and destroy run the program (--run-program), so that the providers use the configuration of now (a
# rotated healthchecksApiKey, say), not the one saved at the last `pulumi up`; told that they make nothing
# (EPHEMEROS_OPERATION), it skips the checks of what making needs (a stick plugged in, the cluster's API).
destroy: setup stack
	EPHEMEROS_OPERATION=destroy pulumi destroy $(ON_STACK) --run-program --yes

refresh: setup stack
	EPHEMEROS_OPERATION=refresh pulumi refresh $(ON_STACK) --run-program --yes

# Which nodes run an old config, and the order to reboot them in; exit status 1 when a node is down or late.
status: $(VENV)/.runtime engine
	$(VENV)/bin/python -m status --stack $(STACK)

env:
	@$(foreach v,$(ENV_VARS),echo 'export $(v)="$($(v))"';)

# The setup steps and the lint side by side (each step still waits for what it needs), then the tests on
# TEST_WORKERS pytest-xdist workers, each module whole on one worker, the longest first (tests/conftest.py); most of
# their time is spent waiting on the engine, servers and VMs, so more workers than cores pay off.
test:
	@$(MAKE) --no-print-directory -j$(SETUP_JOBS) setup-test lint
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

bench: setup-test
	$(VENV)/bin/python -m bench.sticks

bench-scale: setup-test
	$(VENV)/bin/python -m bench.scale

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

# The longest steps first, so that `make -j` starts them first.
setup: engine deps $(VENV)/.runtime ipxe nodetools
setup-test: test-assets testtools setup deps-test $(VENV)/.dev

# Debian packages, one apt at a time (deps-test after deps); the engine and iPXE fetch with what deps installs.
deps:
	@scripts/apt-deps.sh $(APT_UP)

deps-test: deps
	@scripts/apt-deps.sh $(APT_TEST)

# The engine writes a debug log of every command to $(PULUMI_HOME)/logs, with no setting to stop it: a third of its
# CPU in a 50-node `pulumi up`, and 6 MB of disk per such run, kept up to 500 MB. Off: that path is /dev/null, where
# it cannot make the directory, and it goes on without a word. `pulumi -v=9 --logtostderr` still shows everything;
# ENGINE_LOG=1 keeps the log.
engine: deps
	@scripts/ensure-pulumi.sh
	@mkdir -p $(PULUMI_HOME)
	@if [ -n "$(ENGINE_LOG)" ]; then [ ! -L $(PULUMI_HOME)/logs ] || rm $(PULUMI_HOME)/logs; \
		elif [ ! -L $(PULUMI_HOME)/logs ]; then rm -rf $(PULUMI_HOME)/logs; ln -s /dev/null $(PULUMI_HOME)/logs; fi

ipxe: deps
	@scripts/fetch-ipxe.sh

nodetools:
	@nodetools/build.sh

# The real servers the tests run (etcd, kine, kube-apiserver, versitygw), built from pinned Go modules, cached.
testtools: $(addprefix testtools-,$(TESTTOOLS))

$(addprefix testtools-,$(TESTTOOLS)): testtools-%:
	@testtools/build.sh $*

# The tests' assets (VM images, apt repository, boot kernel, stand-ins), built into the shared cache beforehand.
test-assets: deps-test $(VENV)/.runtime
	@scripts/test-assets.sh

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ephemeros needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install -q --require-hashes -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(VENV)/bin/pip install -q --require-hashes -r requirements-dev.txt
	touch $@

# A random passphrase for the passphrase secrets provider, made once when the environment gives none; keep a copy,
# as secrets in the stack's config and state cannot be read without it.
$(LOCAL_PASSPHRASE):
	umask 077; head -c 32 /dev/urandom | base64 > $@

# Creates the stack if need be, without selecting it: every command here names its stack, and a plain `pulumi`
# command afterwards still works on the stack you selected yourself. Its settings file must exist first: the dev
# stack's is copied from stacks/dev.yaml (which git keeps without a salt, so that `make up` in a fresh clone
# changes no file git tracks); another stack's is made by `make new-stack`.
stack: $(filter $(LOCAL_PASSPHRASE),$(PULUMI_CONFIG_PASSPHRASE_FILE))
	@if [ ! -f Pulumi.$(STACK).yaml ]; then \
		if [ -f stacks/$(STACK).yaml ]; then cp stacks/$(STACK).yaml Pulumi.$(STACK).yaml; else \
			echo "Pulumi.$(STACK).yaml does not exist, so the $(STACK) stack has no settings. To start it from the" \
				"dev stack's: make new-stack NEW=$(STACK) FROM=dev, then edit Pulumi.$(STACK).yaml" \
				"(README: A new stack)." >&2; \
			exit 1; \
		fi; \
	fi
	@pulumi stack ls --json 2>/dev/null | grep -q '"name": "$(STACK)"' || \
		pulumi stack init $(STACK) --no-select --non-interactive --secrets-provider passphrase

# A new stack NEW with the settings of the stack FROM (made first if need be), its secret settings encrypted anew
# for NEW, and a salt of its own.
FROM ?= dev
ifneq ($(filter new-stack,$(MAKECMDGOALS)),)
$(if $(NEW),,$(error name the new stack: make new-stack NEW=prod [FROM=dev]))
endif
new-stack: STACK = $(FROM)
new-stack: setup stack
	@[ ! -e Pulumi.$(NEW).yaml ] || { echo "Pulumi.$(NEW).yaml exists already: use it, or remove it first" >&2; exit 1; }
	pulumi stack init $(NEW) --copy-config-from $(FROM) --no-select --non-interactive --secrets-provider passphrase
	@echo "made the $(NEW) stack from $(FROM)'s settings: edit Pulumi.$(NEW).yaml, then STACK=$(NEW) make preview"

# Serve the stack's public Ignition configs on port 8080, where the dev stack's nodes look for them (QEMU guests
# reach the host's loopback as 10.0.2.2). SERVE_ADDRESS=<this machine's LAN address> serves a LAN.
SERVE_ADDRESS ?= 127.0.0.1
serve:
	$(PYTHON) scripts/serve.py --bind $(SERVE_ADDRESS) --port 8080 build/$(STACK)/ignition

clean:
	rm -rf build
