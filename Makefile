# kvmops.migration developer toolchain.
#
#   make venv            Debian packages (only if missing) + .venv with requirements-dev.txt
#   make unit            unit tests (pytest) against .venv/collections/.../kvmops/migration
#   make sanity          ansible-test sanity on a git copy of the collection (offline-capable)
#   make lint            ansible-lint (production profile) on roles/ and playbooks/
#   make build           ansible-galaxy collection build into build/
#   make ee-check        ansible-builder create (no container build) into a temp dir
#   make changelog-lint  antsibull-changelog lint
#
#   make lab             lab/virtlab up --firewall (4 hypervisors + storage, Debian machines of two releases)
#   make lab-down        remove the lab
#   make lab-status      health table of the lab
#   make lab-test        the lab's own tests (tests/lab), incl. down/up and kill/repair
#   make integration     module tests on the lab (tests/integration)
#   make bench-smoke     the benchmark's smoke profile on the lab (tests/bench), into tests/output/bench-smoke
#   make molecule        molecule scenarios against the lab (roles)
#   make install-check   install the built tarball in a temp dir; ansible-doc shows every module
#   make test            everything CI runs: the checks (unit sanity lint build install-check ee-check changelog-lint) with bench-smoke beside them, then lab-test integration molecule
#   make demo            set up what is missing, bring the lab up, run the migration demo
#   make bench           the full benchmarks (not part of make test), writes .bench/
#   make chaos           the fault campaign: whole matrix + 50 seeded schedules (not part of make test), docs/reliability.md

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
VENV_ABS := $(abspath $(VENV))
VENV_BIN := $(VENV_ABS)/bin

# Interpreter used to create the venv: pyenv's 3.11 if present, else Debian's python3.11.
PYTHON311 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11) $(shell command -v python3.11 2>/dev/null) /usr/bin/python3.11)

# Debian packages the toolchain and tests need: headers/compiler to build libvirt-python,
# Debian's python3-libvirt (the interpreter modules respawn into), python3-firewall,
# virsh, git (ansible-test reads the file list from git), venv support for /usr/bin/python3.
APT_PACKAGES ?= libvirt-dev pkg-config gcc python3-dev python3-venv python3-libvirt python3-firewall libvirt-clients git ca-certificates
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

STAMP := $(VENV_ABS)/.kvmops-dev.stamp

COLLECTION_NAMESPACE := kvmops
COLLECTION_NAME := migration
COLLECTION_VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)

# Unit tests: a SYMLINK .venv/collections/ansible_collections/kvmops/migration -> repo root.
# pytest only needs `ansible_collections.kvmops.migration` importable; pytest-ansible's
# --ansible-unit-inject-only (set in pytest.ini) puts ANSIBLE_COLLECTIONS_PATH on sys.path and
# installs Ansible's collection finder, so edits in the checkout are tested without any copy
# step. ./conftest.py does the same setup for a bare `pytest` run. (Without that option
# pytest-ansible creates a `collections/` tree of symlinks in the repo root.)
# ansible-test cannot use the symlink: it locates the collection from os.getcwd(), which
# resolves symlinks to /work/main-like paths, so `sanity` works on a COPY instead (below).
COLLECTIONS_ROOT := $(VENV_ABS)/collections
COLLECTION_LINK := $(COLLECTIONS_ROOT)/ansible_collections/$(COLLECTION_NAMESPACE)/$(COLLECTION_NAME)

# Sanity: a copy of the files git would track (tracked + untracked, minus .gitignore'd) at a
# path ending in ansible_collections/kvmops/migration, made a git work tree with `git init`
# (no commit needed: ansible-test lists files with `git ls-files --cached --others`).
SANITY_ROOT := $(VENV_ABS)/sanity/ansible_collections/$(COLLECTION_NAMESPACE)/$(COLLECTION_NAME)
SANITY_ARGS ?= --local --python 3.11 --color no
# Paths to leave out, e.g. `make sanity SANITY_EXCLUDE="lab/ tests/lab/"` (default: whole tree).
SANITY_EXCLUDE ?=
# ansible-test downloads get-pip-<ver>.py from a host unreachable offline; it uses this cached
# file first. tools/get_pip_standin.py bootstraps pip with ensurepip instead.
ANSIBLE_TEST_PIP_VERSION ?= 24_2
GET_PIP_CACHE := $(HOME)/.ansible/test/cache/get_pip_$(ANSIBLE_TEST_PIP_VERSION).py

LINT_PATHS ?= roles playbooks molecule extensions
BUILD_DIR ?= build
PYTEST_ARGS ?=
CHAOS_SEEDS ?= $(shell seq -s, 1 50)
CHAOS_MATRIX ?= 1
LAB_PREPARE_LOG := tests/output/lab-prepare.log

.PHONY: help venv unit sanity lint build install-check ee-check changelog-lint clean-venv lab lab-down lab-status lab-test integration chaos bench-smoke molecule test demo bench

help:
	@sed -n 's/^#   make /  make /p' $(MAKEFILE_LIST)

venv: $(STAMP)

$(STAMP): requirements-dev.txt constraints-dev.txt
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  $(SUDO) apt-get update -q; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@test -x $(VENV_BIN)/python || { echo "creating $(VENV) with $(PYTHON311)"; $(PYTHON311) -m venv $(VENV_ABS); }
	@# (the grep drops this machine's pip.conf noise about missing local index directories)
	$(VENV_BIN)/python -m pip install -q -r requirements-dev.txt -c constraints-dev.txt 2>&1 \
	  | { grep -v 'is neither a file nor a directory' || true; }
	@mkdir -p $(dir $(COLLECTION_LINK))
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	@touch $@

unit: $(STAMP)
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	KVMOPS_COLLECTIONS_ROOT=$(COLLECTIONS_ROOT) ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS_ROOT) \
	  $(VENV_BIN)/python -m pytest -p no:cacheprovider -q $(PYTEST_ARGS) $(call junit,unit) tests/unit

$(GET_PIP_CACHE): tools/get_pip_standin.py
	@mkdir -p $(dir $@)
	install -m 0644 $< $@

sanity: $(STAMP) $(GET_PIP_CACHE)
	@rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_ROOT)
	@git ls-files -z --cached --others --exclude-standard \
	  | tar --null --ignore-failed-read -T - -cf - | tar -C $(SANITY_ROOT) -xf -
	@git -C $(SANITY_ROOT) init -q
	cd $(SANITY_ROOT) && PATH=$(VENV_BIN):$$PATH $(VENV_BIN)/ansible-test sanity $(SANITY_ARGS) $(foreach p,$(SANITY_EXCLUDE),--exclude $(p))

lint: $(STAMP)
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	@paths=""; for p in $(LINT_PATHS); do [ -e "$$p" ] && paths="$$paths $$p"; done; \
	ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS_ROOT) PATH=$(VENV_BIN):$$PATH \
	  $(VENV_BIN)/ansible-lint --profile production --offline $$paths

build: $(STAMP)
	@mkdir -p $(BUILD_DIR)
	$(VENV_BIN)/ansible-galaxy collection build --force --output-path $(BUILD_DIR) .

ee-check: $(STAMP) build
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(VENV_BIN)/ansible-builder create -f execution-environment.yml -c "$$tmp" --output-filename Containerfile -v 1; \
	test -s "$$tmp/Containerfile"; \
	tarball=kvmops-migration-$(COLLECTION_VERSION).tar.gz; \
	if ! grep -q "/build/collections/$$tarball" "$$tmp/_build/requirements.yml" \
	   || [ ! -f "$$tmp/_build/collections/$$tarball" ]; then \
	  echo "ee-check: execution-environment.yml must install /build/collections/$$tarball (galaxy.yml version)" >&2; exit 1; \
	fi; \
	echo "ee-check: Containerfile and build context OK ($$(find "$$tmp" -type f | wc -l) files, collection $$tarball)"

changelog-lint: $(STAMP)
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	$(VENV_BIN)/antsibull-changelog lint

clean-venv:
	rm -rf $(VENV_ABS)

# The built tarball installs with ansible-galaxy and ansible-doc renders every module from it.
install-check: build
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(VENV_BIN)/ansible-galaxy collection install --force --no-deps -p "$$tmp" $(BUILD_DIR)/kvmops-migration-$(COLLECTION_VERSION).tar.gz; \
	for module in $$(ls plugins/modules/*.py | xargs -n1 basename | sed 's/\.py$$//'); do \
	  ANSIBLE_COLLECTIONS_PATH="$$tmp" $(VENV_BIN)/ansible-doc kvmops.migration.$$module > "$$tmp/doc.txt" \
	    && grep -q "kvmops.migration.$$module" "$$tmp/doc.txt" \
	    || { echo "install-check: ansible-doc cannot show kvmops.migration.$$module from the installed tarball" >&2; exit 1; }; \
	done; echo "install-check: installed tarball documents $$(ls plugins/modules/*.py | wc -l) modules"

# --- lab, integration, CI --------------------------------------------------------------
JUNIT_DIR := tests/output/junit
junit = --junitxml=$(CURDIR)/$(JUNIT_DIR)/$(1).xml
# Integration tests run modules with ansible from the venv against the lab inventory.
# A guest kernel oops with the known QEMU TCG signature after a migration is an emulator fault
# (tests/support/lab.py GuestKernelOops; docs/lab.md): such a test runs once more, and the closing
# summary counts it. Nothing else is retried: a stalled heartbeat is a finding, not noise.
LAB_RERUN := --reruns 1 --only-rerun GuestKernelOops
LAB_ENV := PATH=$(VENV_BIN):$$PATH ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS_ROOT)
# The lab's Ansible inventory: .lab/inventory.yml, or another lab instance's (VIRTLAB_INSTANCE,
# docs/lab.md); lab/vlab/config.py is the one place that knows.
LAB_INVENTORY = $(shell /usr/bin/python3 -c 'import sys; sys.path.insert(0, "lab"); from vlab import config; print(config.INVENTORY)')

lab:
	lab/virtlab up --firewall

lab-down:
	lab/virtlab down

lab-status:
	lab/virtlab status

lab-test: $(STAMP) lab
	cd tests && $(LAB_ENV) $(VENV_BIN)/python -m pytest -p no:cacheprovider -q $(LAB_RERUN) $(PYTEST_ARGS) $(call junit,lab) lab

integration: $(STAMP) lab
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	cd tests && $(LAB_ENV) $(VENV_BIN)/python -m pytest -p no:cacheprovider -q $(LAB_RERUN) -m "not chaos" $(PYTEST_ARGS) $(call junit,integration) integration

# The fault campaign (issue 15): the whole fault x phase matrix and 50 seeded random schedules, about
# two hours; writes docs/reliability.md. Not part of make test. CHAOS_SEEDS=3,17 CHAOS_MATRIX=0 reruns seeds.
chaos: $(STAMP) lab
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	cd tests && $(LAB_ENV) CHAOS_SEEDS=$(CHAOS_SEEDS) CHAOS_MATRIX=$(CHAOS_MATRIX) $(VENV_BIN)/python -m pytest -p no:cacheprovider -q -m chaos $(PYTEST_ARGS) $(call junit,chaos) integration/test_chaos.py

# The benchmark's smoke profile (one small case of each figure): figures reported, the run fails
# only when a figure or chart is missing or a guest was not on exactly one host.
bench-smoke: $(STAMP) lab
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	cd tests && $(LAB_ENV) $(VENV_BIN)/python -m pytest -p no:cacheprovider -q -s $(PYTEST_ARGS) $(call junit,bench-smoke) bench

molecule: $(STAMP) lab
	$(LAB_ENV) KVMOPS_LAB_INVENTORY=$(LAB_INVENTORY) $(VENV_BIN)/molecule test -s default

# Every stage runs even if an earlier one failed, so one CI run shows every problem; the
# closing line counts the tests of all stages and the exit code is non-zero if anything failed.
# Two lanes at first: the checks, which need no lab, and beside them the benchmark's smoke run, which
# needs the lab but mostly waits on migrations, and whose figures are reported, never asserted (so
# sharing the CPUs with the checks costs it nothing it is judged by). The other lab stages then run
# alone: lab-test takes the lab down and up, and integration and molecule judge guests by heartbeats
# that must not stall for want of CPU. The beside lane's output is printed when it ends.
CHECK_STAGES := unit sanity lint build install-check ee-check changelog-lint
BESIDE_CHECKS := bench-smoke
LAB_STAGES := lab-test integration molecule
STAGE_DIR := tests/output/stages
# The lab's images and guest kernel are built in the background meanwhile (minutes on a fresh machine,
# mostly downloads and unpacking): the first lab stage's `virtlab up` waits for that build instead of
# starting its own. If it fails, `up` tries again and reports the error.
test: $(STAMP)
	@rm -rf $(JUNIT_DIR) $(STAGE_DIR); mkdir -p $(JUNIT_DIR) $(STAGE_DIR); \
	run_stage() { \
	  echo "=== make $$1"; start=$$(date +%s); \
	  if $(MAKE) --no-print-directory $$1; then status=ok; else status=FAILED; echo $$1 >> $(STAGE_DIR)/failed; fi; \
	  echo "=== make $$1: $$status in $$(( $$(date +%s) - start ))s"; \
	}; \
	lab/virtlab images --build > $(LAB_PREPARE_LOG) 2>&1 & \
	echo "=== lab images and guest kernel: built in the background, log in $(LAB_PREPARE_LOG)"; \
	started=$$(date +%s); \
	( for stage in $(BESIDE_CHECKS); do run_stage $$stage; done ) > $(STAGE_DIR)/beside.log 2>&1 & beside=$$!; \
	echo "=== make $(BESIDE_CHECKS): beside the checks, its output follows them (log in $(STAGE_DIR)/beside.log)"; \
	for stage in $(CHECK_STAGES); do run_stage $$stage; done; \
	wait $$beside || true; cat $(STAGE_DIR)/beside.log; \
	echo "=== both lanes: done in $$(( $$(date +%s) - started ))s"; \
	for stage in $(LAB_STAGES); do run_stage $$stage; done; \
	$(VENV_BIN)/python tools/test_summary.py $(JUNIT_DIR) $$(cat $(STAGE_DIR)/failed 2>/dev/null || true)

# The demo an operator would run before maintenance: drain host-a, show that every guest kept
# running (heartbeats), bring them back.
DEMO_GUESTS := demo-web1 demo-web2 demo-db demo-build
demo: $(STAMP) lab
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	$(LAB_ENV) $(VENV_BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/demo.yml
	$(LAB_ENV) $(VENV_BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/evacuate.yml -l host-a
	@for guest in $(DEMO_GUESTS); do lab/virtlab guest heartbeat $$guest; done
	$(LAB_ENV) $(VENV_BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/return.yml -l host-a
	@for guest in $(DEMO_GUESTS); do lab/virtlab guest heartbeat $$guest; done

bench: $(STAMP) lab
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	$(LAB_ENV) $(VENV_BIN)/python bench/run.py
