# tokpulse-agent. `make run` runs the agent on its embedded default config;
# `make test` installs what the tests need (as root, with apt-get) and runs
# every test. See README.md.

GO       ?= go
BIN      := bin/tokpulse-agent
# One version for the binary ("tokpulse-agent version", the User-Agent,
# agent_version in events, tokpulse_agent_build_info), the packages and
# their file names: PKG_VERSION (or VERSION) when given, else
# packaging/version.sh from git describe (0.0.0~dev.N.gSHA, a pre-release,
# in a checkout without a release tag).
VERSION  ?= $(or $(PKG_VERSION),$(shell ./packaging/version.sh))
override PKG_VERSION := $(VERSION)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
export CGO_ENABLED := 0

STATICCHECK_VERSION := v0.8.2

# Packages: nfpm at a pinned version, installed into bin/tools by "go install".
NFPM_VERSION := v2.45.2
NFPM         := bin/tools/nfpm-$(NFPM_VERSION)
PKG_ARCH     ?= $(shell $(GO) env GOARCH)
DIST         ?= dist
PKG_STAGE    := build/pkg

.PHONY: all build run test test-deps test-rules unit lint bench fuzz clean deb rpm package pkg-stage

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
RULE_FILES := packaging/rules/runbook.yml packaging/rules/self/agent.yml packaging/prometheus/tokpulse-agent-central.yml
RULE_TESTS := packaging/rules/runbook_test.yml packaging/rules/self/agent_test.yml packaging/prometheus/tokpulse-agent-central_test.yml

test-rules: test-deps build
	./$(BIN) test rules $(RULE_TESTS)
	./$(BIN) check rules $(RULE_FILES)
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

# fuzz runs every native Go fuzz test for FUZZTIME each (make test runs
# their seed corpora only). A failing input is written to the package's
# testdata/fuzz/ and then runs with every go test: commit it with the fix.
# Inputs found interesting are minimised for at most 5 s, so that a large
# seed (the shipped agent.yaml) does not stall the run.
FUZZTIME     ?= 60s
FUZZ_TARGETS := agent:FuzzParseConfig collectors:FuzzLinePipeline collectors:FuzzLinearMatcher \
	collectors:FuzzJournalEntry notify:FuzzTemplates rules/promtest:FuzzRuleTestFile
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn (./$$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s -parallel 1 ./$$pkg || exit 1; \
	done

# deb, rpm and package build the packages into $(DIST)/ (default dist/),
# versioned by packaging/version.sh; PKG_VERSION=1.2.3 overrides it.
package: deb rpm

deb rpm: pkg-stage $(NFPM)
	@mkdir -p $(DIST)
	PKG_VERSION='$(PKG_VERSION)' PKG_ARCH='$(PKG_ARCH)' \
		$(NFPM) package --config packaging/nfpm.yaml --packager $@ --target $(DIST)/

# pkg-stage puts what the packages ship but git does not hold in
# $(PKG_STAGE): the binary (from $(BIN)), the compressed man page, the rule
# pack (whatever packaging/rules/*.yml holds, possibly nothing, except the
# rules' unit tests *_test.yml, which the agent would load as rules) and the
# changelog with an entry for this version on top.
pkg-stage: build
	rm -rf $(PKG_STAGE) && mkdir -p $(PKG_STAGE)/rules
	install -m 0755 $(BIN) $(PKG_STAGE)/tokpulse-agent
	gzip -9n < packaging/tokpulse-agent.8 > $(PKG_STAGE)/tokpulse-agent.8.gz
	for f in packaging/rules/*.yml; do case "$$f" in *_test.yml) ;; *) if [ -f "$$f" ]; then cp "$$f" $(PKG_STAGE)/rules/; fi ;; esac; done
	./packaging/changelog.sh '$(PKG_VERSION)' packaging/changelog.yml > $(PKG_STAGE)/changelog.yml

$(NFPM):
	@mkdir -p bin/tools/nfpm.tmp
	GOBIN=$(CURDIR)/bin/tools/nfpm.tmp $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	mv bin/tools/nfpm.tmp/nfpm $@ && rmdir bin/tools/nfpm.tmp

clean:
	rm -rf bin dist build
