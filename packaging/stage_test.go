package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// TestStageRefuses runs packaging/stage.sh, which "make deb rpm" runs for
// each architecture, with what it must refuse: a binary of another
// architecture than the one the packages would be labelled with (issue 19:
// an _amd64.deb carried an aarch64 binary), a file that is no ELF
// executable, and versions dpkg or rpm would not take. Each time it fails
// with a message that says what to do, and leaves no stage behind.
func TestStageRefuses(t *testing.T) {
	host := testutil.AgentBinary(t) // built for this machine
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	if other == "" {
		t.Fatalf("no other architecture known for %s", runtime.GOARCH)
	}
	notELF := filepath.Join(t.TempDir(), "tokpulse-agent")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho not a binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var env []string
	for k, v := range readMetadata(t) {
		env = append(env, k+"="+v)
	}
	for _, tc := range []struct {
		name, arch, binary, version, want string
	}{
		{"binary of another architecture", other, host, "1.0.0", "is " + runtime.GOARCH + ", not " + other + ": refusing to label it " + other},
		{"not an ELF file", runtime.GOARCH, notELF, "1.0.0", "is not an ELF file, not " + runtime.GOARCH},
		{"unknown architecture", "mips", host, "1.0.0", "architecture mips is not one of amd64, arm64"},
		{"version with a hyphen", runtime.GOARCH, host, "1.0.0-rc1", "has a character other than"},
		{"version without a leading digit", runtime.GOARCH, host, "v1.0.0", "does not start with a digit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stage := filepath.Join(t.TempDir(), "stage")
			if err := os.MkdirAll(filepath.Join(stage, "old"), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("./packaging/stage.sh", tc.arch, tc.binary, stage)
			cmd.Dir = repoRoot(t)
			cmd.Env = append(append(os.Environ(), env...), "PKG_VERSION="+tc.version)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("stage.sh %s %s succeeded, want it refused:\n%s", tc.arch, tc.binary, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("stage.sh said %q, want %q in it", out, tc.want)
			}
			if _, err := os.Stat(stage); err == nil {
				t.Errorf("stage.sh left the stage %s behind", stage)
			}
		})
	}
	// And it stages the host's binary for the host's architecture.
	stage := filepath.Join(t.TempDir(), "stage")
	cmd := exec.Command("./packaging/stage.sh", runtime.GOARCH, host, stage)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(append(os.Environ(), env...), "PKG_VERSION=1.0.0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stage.sh %s with the host's binary: %v\n%s", runtime.GOARCH, err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(stage, "arch")); strings.TrimSpace(string(got)) != runtime.GOARCH {
		t.Errorf("stage labelled %q, want %s", got, runtime.GOARCH)
	}
}
