# tokpulse-agent. `make run` runs the agent on its embedded default config;
# `make test` installs what the tests need (as root, with apt-get) and runs
# every test. See README.md.

GO       ?= go
BIN      := bin/tokpulse-agent
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
export CGO_ENABLED := 0

STATICCHECK_VERSION := v0.8.2

.PHONY: all build run test test-deps test-rules unit lint bench clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tokpulse-agent

run: build
	./$(BIN) run

# test-deps installs the Debian packages and Go tools the tests use; the
# script fails (never skips) when it cannot.
test-deps:
	./.ci/deps

# The default rule pack and its tests, in Prometheus' own format: our
# binary and Debian's promtool must agree on every rule and every test.
RULE_FILES := packaging/rules/runbook.yml
RULE_TESTS := packaging/rules/runbook_test.yml

test-rules: test-deps build
	./$(BIN) test rules $(RULE_TESTS)
	promtool check rules $(RULE_FILES)
	promtool test rules $(RULE_TESTS)

test: test-deps build test-rules
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	TOKPULSE_AGENT_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 40m ./...

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin dist
