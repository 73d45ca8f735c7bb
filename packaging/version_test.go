package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionScript runs packaging/version.sh, the one source of the
// binary's and the packages' version, in real git repositories: a
// checkout without a release tag gets a pre-release version, a tag its
// version, commits after it a snapshot version.
func TestVersionScript(t *testing.T) {
	script, err := filepath.Abs("version.sh")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(run(t, repo, []string{
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		}, "git", args...))
	}
	commit := func() string {
		t.Helper()
		git("commit", "--allow-empty", "-q", "-m", "c")
		return git("rev-parse", "--short", "HEAD")
	}
	version := func() string {
		t.Helper()
		return strings.TrimSpace(run(t, repo, []string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}, "sh", script))
	}

	if got := version(); got != "0.0.0~dev.unknown" {
		t.Errorf("outside a git checkout: %q, want 0.0.0~dev.unknown", got)
	}
	git("init", "-q")
	steps := []struct {
		name string
		do   func() string // changes the repository, returns the version wanted
	}{
		{"untagged checkout: a pre-release", func() string {
			commit()
			sha := commit()
			return "0.0.0~dev.2.g" + sha
		}},
		{"a tag that is no release is not a version", func() string {
			git("tag", "build-42")
			return "0.0.0~dev.2.g" + git("rev-parse", "--short", "HEAD")
		}},
		{"uncommitted changes", func() string {
			if err := os.WriteFile(filepath.Join(repo, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			git("add", "f")
			return "0.0.0~dev.2.g" + git("rev-parse", "--short", "HEAD") + ".dirty"
		}},
		{"release tag", func() string {
			git("commit", "-q", "-m", "f")
			git("tag", "v1.2.3")
			return "1.2.3"
		}},
		{"snapshot after a release", func() string {
			return "1.2.3+1.g" + commit()
		}},
		{"pre-release tag", func() string {
			git("tag", "v1.3.0-rc1")
			return "1.3.0~rc1"
		}},
		{"snapshot after a pre-release", func() string {
			return "1.3.0~rc1+1.g" + commit()
		}},
	}
	for _, s := range steps {
		want := s.do()
		if got := version(); got != want {
			t.Errorf("%s: version.sh = %q, want %q", s.name, got, want)
		}
	}
}

// TestVersionOrder checks that dpkg and rpm both order the versions
// version.sh makes as the docs say: a pre-release before its release and
// before every tagged release, a snapshot between its release and the
// next.
func TestVersionOrder(t *testing.T) {
	ascending := []string{
		"0.0.0~dev.2.gabc1234",
		"0.0.0~dev.10.gabc1234",
		"0.0.0",
		"1.2.3",
		"1.2.3+1.gabc1234",
		"1.2.3+12.gabc1234",
		"1.3.0~rc1",
		"1.3.0~rc1+1.gabc1234",
		"1.3.0",
	}
	for i := 0; i+1 < len(ascending); i++ {
		lo, hi := ascending[i], ascending[i+1]
		if err := exec.Command("dpkg", "--compare-versions", lo+"-1", "lt", hi+"-1").Run(); err != nil {
			t.Errorf("dpkg does not sort %s before %s", lo, hi)
		}
		out := run(t, "", nil, "rpm", "--eval", `%{lua:print(rpm.vercmp("`+lo+`-1", "`+hi+`-1"))}`)
		if strings.TrimSpace(out) != "-1" {
			t.Errorf("rpm does not sort %s before %s (vercmp %s)", lo, hi, out)
		}
	}
}
