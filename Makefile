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

# Packages. Maintainer, vendor, license and repository URL: packaging/metadata.
include packaging/metadata
export PKG_VERSION PKG_MAINTAINER PKG_VENDOR PKG_HOMEPAGE PKG_COPYRIGHT PKG_LICENSE PKG_LICENSE_FILE PKG_REPO_URL
# The architectures "make package" builds, by their Debian names (PKG_ARCH,
# as earlier Makefiles took it, names one).
ARCHS        ?= $(or $(PKG_ARCH),amd64 arm64)
DIST         ?= dist
# Per architecture: the binary in $(BUILD)/linux-ARCH/, the stage (what the
# packages are made of, see packaging/stage.sh) in $(BUILD)/pkg-ARCH/.
BUILD        ?= build
# nfpm (the .deb) at a pinned version, installed into $(NFPM_DIR) by "go
# install" for this host, whatever GOOS and GOARCH say.
NFPM_VERSION := v2.45.2
NFPM_DIR     ?= $(CURDIR)/bin/tools
NFPM         := $(NFPM_DIR)/nfpm-$(NFPM_VERSION)
HOST_GOOS     = $(shell $(GO) env GOHOSTOS)
HOST_GOARCH   = $(shell $(GO) env GOHOSTARCH)
# Signing and repositories: the GPG key (id or fingerprint, in $GNUPGHOME
# or ~/.gnupg) and where "make repo" writes.
SIGN_KEY     ?=
REPO         ?= $(DIST)/repo

.PHONY: all build run test test-deps test-rules unit lint bench fuzz clean deb rpm package stage sign repo

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
FUZZ_TARGETS := agent:FuzzParseConfig collectors:FuzzLinePipeline collectors:FuzzLinearMatcher collectors:FuzzShippedExpressions \
	collectors:FuzzJournalEntry notify:FuzzTemplates rules/promtest:FuzzRuleTestFile
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn (./$$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s -parallel 1 ./$$pkg || exit 1; \
	done

# package builds the .deb and the .rpm of every architecture in ARCHS into
# $(DIST)/ (default dist/): tokpulse-agent_VERSION-1_amd64.deb,
# tokpulse-agent-VERSION-1.x86_64.rpm, and the same for arm64 (aarch64).
# "make deb" or "make rpm" builds one format, ARCHS=amd64 one architecture.
package: deb rpm

# stage builds the binary of each architecture (GOOS and GOARCH set here,
# whatever the environment or the command line says) and fills its stage;
# stage.sh refuses a binary whose ELF machine is not that architecture.
stage:
	@for arch in $(ARCHS); do \
		echo "GOOS=linux GOARCH=$$arch $(GO) build -o $(BUILD)/linux-$$arch/tokpulse-agent"; \
		GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BUILD)/linux-$$arch/tokpulse-agent ./cmd/tokpulse-agent && \
		./packaging/stage.sh $$arch $(BUILD)/linux-$$arch/tokpulse-agent $(BUILD)/pkg-$$arch || exit 1; \
	done

# Each package is labelled with the architecture stage.sh read from its
# binary's ELF header.
deb: stage $(NFPM)
	@mkdir -p $(DIST)
	@for arch in $(ARCHS); do \
		echo "nfpm package --packager deb ($$arch)"; \
		(cd $(BUILD)/pkg-$$arch && PKG_ARCH=$$(cat arch) \
			$(NFPM) package --config $(CURDIR)/packaging/nfpm.yaml --packager deb --target $(abspath $(DIST))/) || exit 1; \
	done

rpm: stage
	@command -v rpmbuild >/dev/null || { echo "make rpm: rpmbuild is missing (Debian, Ubuntu: apt-get install rpm; RHEL: dnf install rpm-build)" >&2; exit 1; }
	@mkdir -p $(DIST)
	@for arch in $(ARCHS); do \
		echo "rpmbuild -bb ($$arch)"; \
		stage=$(abspath $(BUILD))/pkg-$$arch; \
		rpmbuild -bb --quiet --target "$$(cat $$stage/rpm-arch)-linux" \
			--define "_topdir $(abspath $(BUILD))/rpmbuild-$$arch" \
			--define "_rpmdir $(abspath $(DIST))" \
			--define "_build_name_fmt %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm" \
			--define "tp_stage $$stage" \
			$$stage/tokpulse-agent.spec || exit 1; \
	done

# sign adds rpm's own signature, made with SIGN_KEY, to every .rpm in
# $(DIST) (apt checks the repository's signed Release files instead of
# signatures on .deb files). repo builds the signed apt and yum
# repositories from $(DIST) into $(REPO): see docs/install.md.
sign:
	@test -n "$(SIGN_KEY)" || { echo "make sign: set SIGN_KEY to the id or fingerprint of the GPG key that signs the packages" >&2; exit 1; }
	rpmsign --addsign --define "_gpg_name $(SIGN_KEY)" --define "__gpg $$(command -v gpg)" $(DIST)/*.rpm

repo: sign
	./packaging/repo.sh '$(SIGN_KEY)' $(DIST) $(REPO) $(BUILD)/reprepro

$(NFPM):
	@mkdir -p $(@D)
	rm -rf $(@D)/nfpm.tmp
	GOOS=$(HOST_GOOS) GOARCH=$(HOST_GOARCH) GOBIN=$(@D)/nfpm.tmp $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	mv $(@D)/nfpm.tmp/nfpm $@ && rmdir $(@D)/nfpm.tmp

clean:
	rm -rf bin dist build
