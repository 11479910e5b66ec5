# The one entry point for set-up, lint, tests and the lab.
#   make lab                      ten local container hosts laid out like inventories/hosted, set up
#                                 by site.yml over SSH, checked end to end; prints the URLs (the site,
#                                 Prometheus, Alertmanager, the dashboards) and screenshots the overview
#   make lab-down                 removes them
#   make test                     everything CI runs: set-up, lint, the double's own suite, every scenario
#   make test-double              the Mastodon contract double's own end-to-end suite
#   make test-role ROLE=postgres  the scenarios of one role (molecule/<role>*)
#   make test-scenario S=redis    one scenario
#   make lint                     yamllint + ansible-lint (production profile)
SHELL := /bin/bash
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export CONTAINERS_CONF := $(CURDIR)/tests/containers.conf
export ANSIBLE_FORCE_COLOR ?= 1
APT_PACKAGES := podman runc debootstrap uidmap openssh-client

# Every scenario, in the order CI runs them.
SCENARIOS ?= $(shell tests/run-scenarios --list)

.PHONY: setup apt venv images lint test test-double test-role test-scenario lab lab-down clean
setup: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

images: setup
	tests/images/build.sh

lint: venv
	yamllint -s .
	ansible-lint
	python3 tools/role-docs.py --check
	ansible-playbook -i inventories/basement --syntax-check site.yml
	ansible-playbook -i inventories/hosted --syntax-check site.yml playbooks/media-to-object-storage.yml
	python3 -m unittest discover -s tests/mastodon
	python3 -m unittest discover -s tests/topology
	python3 -m unittest discover -s tests/monitoring
	tests/monitoring/check-rules
	tests/monitoring/check-config
	tests/monitoring/consoles/check
	tests/tools/test-new-inventory
	tests/preflight/run
	ansible-playbook -i tests/wiring/inventory tests/wiring/test-precedence.yml

# Lint runs while the images build, and the double's suite beside the scenarios: CI's two cores
# are otherwise idle during debootstrap's downloads and the scenarios' waits.
test: setup
	$(MAKE) -j2 --output-sync=target images lint
	@mkdir -p .cache/logs
	@echo "the double's suite runs beside the scenarios: .cache/logs/test-double.log"
	@tests/mastodon-double/test/e2e-container.sh >.cache/logs/test-double.log 2>&1 & double=$$!; \
	tests/run-scenarios $(SCENARIOS); rc=$$?; \
	if wait $$double; then tail -1 .cache/logs/test-double.log; echo "PASS test-double"; \
	else tail -40 .cache/logs/test-double.log; echo "FAIL test-double: .cache/logs/test-double.log"; rc=1; fi; \
	exit $$rc

# The contract double's own suite (each check names the upstream file it mirrors), in a container.
test-double: setup images
	tests/mastodon-double/test/e2e-container.sh

test-role: setup images
	tests/run-scenarios $(filter $(subst _,-,$(ROLE))%,$(SCENARIOS))

test-scenario: setup images
	tests/run-scenarios $(S)

# Chromium takes the lab's screenshot of the monitoring overview.
lab: setup images
	@dpkg -s chromium >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }
	tests/lab/lab up

lab-down: setup
	tests/lab/lab down

clean:
	rm -rf .cache
