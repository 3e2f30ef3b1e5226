# Outpost — `make demo` runs a local fleet, `make test` runs every check.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Node >= 22.19 is required. Where the system Node is older, `make setup` installs the
# `node` package (24 LTS) from the npm registry into .tools/node and every target uses it.
NODE_VERSION := 24.21.0
TOOLS := $(CURDIR)/.tools
SYSTEM_NODE_OK := $(shell node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null && echo yes)
ifneq ($(SYSTEM_NODE_OK),yes)
export PATH := $(TOOLS)/node/node_modules/.bin:$(PATH)
NODE_TOOL := $(TOOLS)/node/node_modules/.bin/node
endif
# Go from .tools/go when scripts/ensure-go.sh had to install it.
export PATH := $(PATH):$(TOOLS)/go/bin

SETUP_STAMP := node_modules/.outpost-setup

.PHONY: help setup build typecheck lint lint-shell format test test-unit test-integration packages controlplane gitea argocd kwok demo demo-down bench clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(NODE_TOOL):
	@echo "system Node is older than 22.19: installing node@$(NODE_VERSION) into .tools/node"
	mkdir -p $(TOOLS)/node
	cd $(TOOLS)/node && echo '{"private":true}' > package.json && npm install --no-audit --no-fund --silent node@$(NODE_VERSION)

$(SETUP_STAMP): package.json package-lock.json | $(NODE_TOOL)
	@echo "node $$(node --version), npm $$(npm --version)"
	npm ci --no-audit --no-fund
	touch $@

setup: $(SETUP_STAMP) ## Install Node (if needed) and the npm dependencies

build: setup ## Type-check everything
	npm run --silent build

typecheck: setup
	npm run --silent typecheck

lint: setup lint-shell ## ESLint (type-checked rules), Prettier and shellcheck
	npm run --silent lint

# The Debian packages of the real services the tests and the demo run (clamd, an OCI
# registry, Redis for Argo CD) and of the shell linter; installed when missing (as root or
# with passwordless sudo), else the error says which to install.
TEST_PACKAGES := git:git gcc:gcc unzip:unzip clamav-daemon:clamd docker-registry:docker-registry redis-server:redis-server shellcheck:shellcheck
packages: ## Install the Debian packages the tests and the demo need, when missing
	scripts/ensure-packages.sh $(TEST_PACKAGES)

SHELL_SCRIPTS := .ci/run $(wildcard scripts/*.sh test/*/build.sh test/*/go/*.sh test/kind/*.sh)
lint-shell: packages ## shellcheck every shell script (test/kind/ included)
	shellcheck $(SHELL_SCRIPTS)

format: setup ## Format the sources with Prettier
	npm run --silent format

controlplane: setup ## Build (once, cached) kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd
	scripts/ensure-go.sh
	bash test/controlplane/build.sh

gitea: setup ## Build (once, cached) Gitea, the Git host the integration tests run
	scripts/ensure-go.sh
	bash test/gitea/build.sh

argocd: setup ## Build (once, cached) Argo CD (Go 1.27, fetched by the Go command for this build only) and helm
	scripts/ensure-go.sh
	bash test/argocd/build.sh

kwok: setup ## Build (once, cached) kwok, the fake nodes of edges that run workloads
	scripts/ensure-go.sh
	bash test/kwok/build.sh

test-unit: setup ## Unit tests (no servers)
	npm run --silent test:unit

test-integration: packages controlplane gitea kwok argocd ## Integration tests against real API servers, Argo CD and kwok edges
	npm run --silent test:integration

test: lint typecheck test-unit test-integration ## Everything CI runs

# The local fleet needs the control plane, Gitea, clamd and an OCI registry; with KUBECONFIG
# naming a cluster that runs Fleet, the demo installs there and builds none of them.
demo: setup ## A local management + 3 edge fleet running Outpost, delivering examples/
	@if [ -z "$${KUBECONFIG:-}" ] || [ "$${OUTPOST_DEMO:-}" = local ]; then \
	  scripts/ensure-packages.sh clamav-daemon:clamd docker-registry:docker-registry redis-server:redis-server && \
	  $(MAKE) --no-print-directory controlplane gitea kwok argocd; \
	fi
	node --import tsx scripts/demo/main.ts up

demo-down: setup ## Stop every process make demo started
	node --import tsx scripts/demo/main.ts down

bench: packages controlplane gitea kwok argocd ## Benchmarks; results in bench/results/*.json and docs/benchmarks.md
	npm run --silent bench

clean: ## Remove installed dependencies and tools (the control-plane cache in ~/.cache stays)
	rm -rf node_modules .tools dist
