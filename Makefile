# Gatehouse — two commands on a fresh Debian machine:
#   make demo   installs what is missing, builds, and runs Gatehouse's main job on embedded defaults
#   make test   installs what is missing, builds, and runs the whole test suite
SHELL := /bin/bash
SWIFT ?= swift
DEBIAN_PACKAGES := libssh-dev libssl-dev pkg-config openssh-client openssh-server tmux asciinema python3 python3-pip xvfb xauth x11-utils \
                   glewlwyd sqlite3 curl openssl wrk postgresql-15 haproxy
STATE := var/demo

.PHONY: deps build demo test clean

# Installs only the Debian packages that are missing (apt-get update once, when needed).
deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  echo "glewlwyd glewlwyd/config_type select No configuration" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@mkdir -p /run/sshd
	@# Python packages the tests use come from PyPI, into whatever python3 is first on PATH: the SSH
	@# clients (asyncssh, paramiko) and prometheus_client, whose parser reads /metrics as Prometheus does.
	@python3 -c 'import asyncssh, paramiko, prometheus_client' 2>/dev/null || python3 -m pip install -q asyncssh paramiko prometheus_client 2>/dev/null || python3 -m pip install -q --break-system-packages asyncssh paramiko prometheus_client
	@# moto's server mode stands in for S3 in ObjectStorageTests (started and stopped by the tests, on loopback).
	@python3 -c 'import moto.server' 2>/dev/null || python3 -m pip install -q 'moto[server]' 2>/dev/null || python3 -m pip install -q --break-system-packages 'moto[server]'

build: deps
	$(SWIFT) build

demo: build
	./scripts/demo.sh "$$($(SWIFT) build --show-bin-path)/gatehouse"

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --disable-swift-testing
	./scripts/cli-tests.sh "$$($(SWIFT) build --show-bin-path)/gatehouse"
	./scripts/python-tests.sh "$$($(SWIFT) build --show-bin-path)/gatehouse"

clean:
	rm -rf .build var
