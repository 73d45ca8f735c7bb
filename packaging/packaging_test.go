package packaging

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/nspawn"
)

// maxExposure is the highest "systemd-analyze security" exposure score the
// unit may have (docs/install.md records the current one).
const maxExposure = 2.0

// repoRoot is the repository, one level above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs a host command and fails the test with its output if it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pkgFiles are the .deb and the .rpm of one architecture.
type pkgFiles struct {
	deb, rpm string
}

// built is one "make deb rpm": both packages of each architecture.
type built struct {
	version string
	dist    string
	pkgs    map[string]pkgFiles // by Debian architecture
	deb     string              // the amd64 .deb
	rpm     string              // the amd64 .rpm
}

// buildDir holds the packages built by this test binary; TestMain removes
// it. Tests share builds of the same version (see buildPackages).
var (
	buildDir string
	buildsMu sync.Mutex
	builds   = map[string]built{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokpulse-agent-packaging-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	stopGPGAgents()
	testutil.RemoveBuiltBinary()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildPackages runs "make deb rpm" for amd64, with binaries, stages and
// packages in a temporary directory, so the repository's bin/ and build/
// (which other tests and engineers use) are left alone. The version is
// given as PKG_VERSION only: the binary must take it from there too. Each
// version is built once per test binary.
func buildPackages(t *testing.T, version string) built {
	t.Helper()
	return buildWith(t, version, []string{"amd64"}, nil, nil)
}

// buildWith runs "make deb rpm" with ARCHS=archs, the extra make arguments
// and the extra environment, and returns what it made. An empty version
// takes the Makefile's, from git describe.
func buildWith(t *testing.T, version string, archs, makeArgs, env []string) built {
	t.Helper()
	buildsMu.Lock()
	defer buildsMu.Unlock()
	key := version + "|" + strings.Join(archs, " ") + "|" + strings.Join(makeArgs, " ") + "|" + strings.Join(env, " ")
	if b, ok := builds[key]; ok {
		return b
	}
	root := repoRoot(t)
	tmp, err := os.MkdirTemp(buildDir, "build-")
	if err != nil {
		t.Fatal(err)
	}
	b := built{version: version, dist: filepath.Join(tmp, "dist"), pkgs: map[string]pkgFiles{}}
	args := []string{"-s", "deb", "rpm", "ARCHS=" + strings.Join(archs, " "), "BUILD=" + filepath.Join(tmp, "build"), "DIST=" + b.dist}
	if version != "" {
		args = append(args, "PKG_VERSION="+version)
	} else {
		b.version = strings.TrimSpace(run(t, root, nil, "./packaging/version.sh"))
	}
	run(t, root, env, "make", append(args, makeArgs...)...)
	for _, arch := range archs {
		rpmArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
		p := pkgFiles{
			deb: filepath.Join(b.dist, "tokpulse-agent_"+b.version+"-1_"+arch+".deb"),
			rpm: filepath.Join(b.dist, "tokpulse-agent-"+b.version+"-1."+rpmArch+".rpm"),
		}
		for _, f := range []string{p.deb, p.rpm} {
			if _, err := os.Stat(f); err != nil {
				all, _ := filepath.Glob(filepath.Join(b.dist, "*"))
				t.Fatalf("make deb rpm did not make %s (a name from the version and architecture): %v; it made %q", filepath.Base(f), err, all)
			}
		}
		b.pkgs[arch] = p
	}
	if all, _ := filepath.Glob(filepath.Join(b.dist, "*")); len(all) != 2*len(archs) {
		t.Fatalf("make deb rpm made %q, want one .deb and one .rpm per architecture in %q", all, archs)
	}
	b.deb, b.rpm = b.pkgs["amd64"].deb, b.pkgs["amd64"].rpm
	builds[key] = b
	return b
}

// packageFiles lists the regular files, directories and symlinks the .deb
// installs, without the leading ".".
func packageFiles(t *testing.T, deb string) []string {
	t.Helper()
	var files []string
	out := run(t, "", nil, "sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -t`, "sh", deb)
	for _, f := range strings.Fields(out) {
		f = strings.TrimSuffix(strings.TrimPrefix(f, "."), "/")
		if f != "" {
			files = append(files, f)
		}
	}
	return files
}

// rpmFiles lists the files and directories the .rpm installs.
func rpmFiles(t *testing.T, rpm string) []string {
	t.Helper()
	return strings.Fields(run(t, "", nil, "rpm", "-qpl", rpm))
}

// extractRPM unpacks the .rpm's payload into dir the way rpmlint and
// packagers do, with rpm2cpio and cpio, and fails if any member's name is
// not relative ("./usr/bin/..."): an absolute one would land in the real
// root (goreleaser/nfpm#1122).
func extractRPM(t *testing.T, rpm, dir string) {
	t.Helper()
	names := run(t, "", nil, "sh", "-c", `rpm2cpio "$1" | cpio --quiet -t`, "sh", rpm)
	for _, n := range strings.Fields(names) {
		if !strings.HasPrefix(n, "./") {
			t.Fatalf("the .rpm's payload has the member %q, not relative to ./: cpio -i would write it outside the directory", n)
		}
	}
	run(t, dir, nil, "sh", "-c", `rpm2cpio "$1" | cpio --quiet -idm --no-absolute-filenames`, "sh", rpm)
}

// elfMachine is what file(1) would say of an executable's architecture,
// read with debug/elf.
func elfMachine(t *testing.T, path string) elf.Machine {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	return f.Machine
}

// TestPackages checks the unit and the packages of both architectures,
// built in one "make deb rpm", with the tools their formats come with,
// without installing anything on this host. The build runs the way issue
// 19 found it broken: GOARCH=arm64 in the environment and on make's
// command line, and no nfpm installed yet.
func TestPackages(t *testing.T) {
	b := buildWith(t, "", []string{"amd64", "arm64"},
		[]string{"GOARCH=arm64", "NFPM_DIR=" + filepath.Join(buildDir, "fresh-tools")},
		[]string{"GOARCH=arm64", "GOOS=linux"})
	root := repoRoot(t)

	// An untagged checkout is a pre-release (0.0.0~dev.N.gSHA); a tagged
	// one is the tag, or a snapshot after it.
	if want := regexp.MustCompile(`^(0\.0\.0~dev\.\d+\.g[0-9a-f]+|\d+\.\d+\.\d+(~[0-9A-Za-z.]+)?(\+\d+\.g[0-9a-f]+)?)(\.dirty)?$`); !want.MatchString(b.version) {
		t.Errorf("package version %q from git describe is neither X.Y.Z[~pre][+N.gSHA][.dirty] nor 0.0.0~dev.N.gSHA[.dirty]", b.version)
	}

	for _, arch := range []string{"amd64", "arm64"} {
		p := b.pkgs[arch]
		t.Run(arch+" labels and binaries", func(t *testing.T) {
			wantMachine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
			wantRPM := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
			if got := strings.TrimSpace(run(t, "", nil, "dpkg-deb", "--field", p.deb, "Architecture")); got != arch {
				t.Errorf("%s: Architecture %q, want %s", filepath.Base(p.deb), got, arch)
			}
			if got := run(t, "", nil, "rpm", "-qp", "--qf", "%{ARCH}", p.rpm); got != wantRPM {
				t.Errorf("%s: arch %q, want %s", filepath.Base(p.rpm), got, wantRPM)
			}
			debDir, rpmDir := t.TempDir(), t.TempDir()
			run(t, "", nil, "dpkg-deb", "-x", p.deb, debDir)
			extractRPM(t, p.rpm, rpmDir)
			for _, bin := range []string{filepath.Join(debDir, "usr/bin/tokpulse-agent"), filepath.Join(rpmDir, "usr/bin/tokpulse-agent")} {
				if got := elfMachine(t, bin); got != wantMachine {
					t.Errorf("%s: ELF machine %v in a package labelled %s", bin, got, arch)
				}
			}
		})
	}

	t.Run("the binary inside reports the package version", func(t *testing.T) {
		// One version everywhere: "tokpulse-agent version" (and with it the
		// User-Agent, agent_version and tokpulse_agent_build_info, which
		// all read the same variable) says what the package and its file
		// name say.
		for _, pkg := range []string{b.deb, b.rpm} {
			dir := t.TempDir()
			if strings.HasSuffix(pkg, ".deb") {
				run(t, "", nil, "dpkg-deb", "-x", pkg, dir)
			} else {
				extractRPM(t, pkg, dir)
			}
			out := run(t, "", nil, filepath.Join(dir, "usr/bin/tokpulse-agent"), "version")
			if !strings.HasPrefix(out, "tokpulse-agent "+b.version+" ") {
				t.Errorf("%s: the binary says %q, want version %s", filepath.Base(pkg), out, b.version)
			}
		}
		if got := strings.TrimSpace(run(t, "", nil, "dpkg-deb", "--field", b.deb, "Version")); got != b.version+"-1" {
			t.Errorf(".deb Version %q, want %s-1", got, b.version)
		}
		if got := run(t, "", nil, "rpm", "-qp", "--qf", "%{VERSION}-%{RELEASE}", b.rpm); got != b.version+"-1" {
			t.Errorf(".rpm version %q, want %s-1", got, b.version)
		}
	})

	t.Run("shipped config checks", func(t *testing.T) {
		tmp := t.TempDir()
		run(t, "", nil, "sh", "-c", `dpkg-deb -x "$1" "$2"`, "sh", b.deb, tmp)
		out := run(t, "", nil, filepath.Join(tmp, "usr/bin/tokpulse-agent"), "check", "--config", filepath.Join(tmp, "etc/tokpulse-agent/agent.yaml"))
		if !strings.Contains(out, "OK") {
			t.Errorf("tokpulse-agent check of the shipped agent.yaml: %s", out)
		}
	})

	t.Run("every path the shipped agent.yaml names is in both packages", func(t *testing.T) {
		// The comments of agent.yaml send the operator to the docs, the man
		// page and the rule pack: each must be there after installing
		// either package.
		yaml, err := os.ReadFile(filepath.Join(root, "packaging", "agent.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		paths := shippedPaths(string(yaml))
		if len(paths) == 0 {
			t.Fatal("found no /usr/share path in packaging/agent.yaml; has the pattern changed?")
		}
		debFiles, rpmList := packageFiles(t, b.deb), rpmFiles(t, b.rpm)
		for _, path := range paths {
			for name, files := range map[string][]string{".deb": debFiles, ".rpm": rpmList} {
				if !hasPath(files, path) {
					t.Errorf("agent.yaml names %s, which the %s does not ship", path, name)
				}
			}
		}
		// And the docs: every file of README.md and docs/ is in
		// /usr/share/doc/tokpulse-agent/ of both.
		docs, _ := filepath.Glob(filepath.Join(root, "docs", "*"))
		docs = append(docs, filepath.Join(root, "README.md"))
		for _, d := range docs {
			want := "/usr/share/doc/tokpulse-agent/" + filepath.Base(d)
			if !slices.Contains(debFiles, want) || !slices.Contains(rpmList, want) {
				t.Errorf("%s is not shipped as %s in both packages", filepath.Base(d), want)
			}
		}
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		// verify resolves the unit's binaries and dependencies in --root:
		// the package's files plus this host's own systemd units.
		tmp := t.TempDir()
		run(t, "", nil, "sh", "-c", `dpkg-deb -x "$1" "$2" && mkdir -p "$2/usr/lib/systemd" && cp -a /usr/lib/systemd/system "$2/usr/lib/systemd/"`, "sh", b.deb, tmp)
		cmd := exec.Command("systemd-analyze", "verify", "--root="+tmp, "--man=no", filepath.Join(tmp, "lib/systemd/system/tokpulse-agent.service"))
		out, err := cmd.CombinedOutput()
		// verify exits 0 on unknown keys but says so: any output is a fault.
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		// The man page it points to renders without warnings.
		out, err = exec.Command("man", "--warnings", "-l", filepath.Join(tmp, "usr/share/man/man8/tokpulse-agent.8.gz")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "tokpulse-agent") {
			t.Errorf("man tokpulse-agent.8: %v\n%s", err, out)
		}
	})

	t.Run("systemd-analyze security", func(t *testing.T) {
		out := run(t, "", nil, "systemd-analyze", "security", "--offline=yes", "--no-pager", filepath.Join(root, "tokpulse-agent.service"))
		score := exposure(t, out)
		t.Logf("systemd-analyze security --offline=yes: exposure %.1f", score)
		if score > maxExposure {
			t.Errorf("exposure %.1f > %.1f:\n%s", score, maxExposure, out)
		}
	})

	t.Run("lintian", func(t *testing.T) {
		// Both architectures in one run. Errors and warnings fail
		// (binary-from-other-architecture among them); every override in
		// packaging/lintian-overrides carries its reason. Info tags are
		// listed in the log.
		cmd := exec.Command("lintian", "--allow-root", "--display-info", "--tag-display-limit", "0", b.pkgs["amd64"].deb, b.pkgs["arm64"].deb)
		out, err := cmd.CombinedOutput()
		t.Logf("lintian:\n%s", out)
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
				t.Errorf("lintian: %s", line)
			}
		}
		if err != nil && !t.Failed() {
			t.Errorf("lintian failed without an error or warning: %v", err)
		}
	})
	t.Run("lintian overrides have reasons", func(t *testing.T) {
		checkReasons(t, filepath.Join(root, "packaging", "lintian-overrides"), func(line string) bool {
			return strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#")
		})
	})

	t.Run("deb contents", func(t *testing.T) {
		files := packageFiles(t, b.deb)
		for _, want := range []string{
			"/usr/bin/tokpulse-agent",
			"/lib/systemd/system/tokpulse-agent.service",
			"/etc/tokpulse-agent/agent.yaml",
			"/etc/tokpulse-agent/rules.d",
			"/usr/share/tokpulse-agent/rules",
			"/etc/default/tokpulse-agent",
			"/usr/share/man/man8/tokpulse-agent.8.gz",
			"/usr/share/doc/tokpulse-agent/copyright",
			"/usr/share/doc/tokpulse-agent/changelog.Debian.gz",
			"/usr/share/doc/tokpulse-agent/install.md",
		} {
			if !slices.Contains(files, want) {
				t.Errorf(".deb lacks %s; it has %q", want, files)
			}
		}
		ruleFiles, _ := filepath.Glob(filepath.Join(root, "packaging", "rules", "*.yml"))
		for _, f := range ruleFiles {
			shipped := "/usr/share/tokpulse-agent/rules/" + filepath.Base(f)
			switch isTest := strings.HasSuffix(f, "_test.yml"); {
			case isTest && slices.Contains(files, shipped):
				t.Errorf(".deb ships the rule test %s, which the agent would load as rules", shipped)
			case !isTest && !slices.Contains(files, shipped):
				t.Errorf(".deb lacks the rule file %s", shipped)
			}
		}
		conffiles := run(t, "", nil, "sh", "-c", `d=$(mktemp -d) && dpkg-deb -e "$1" "$d" && cat "$d/conffiles" && rm -rf "$d"`, "sh", b.deb)
		for _, want := range []string{"/etc/tokpulse-agent/agent.yaml", "/etc/default/tokpulse-agent"} {
			if !strings.Contains(conffiles, want+"\n") {
				t.Errorf("conffiles lack %s:\n%s", want, conffiles)
			}
		}
		control := run(t, "", nil, "dpkg-deb", "--field", b.deb, "Depends", "Version")
		for _, want := range []string{"passwd", "procps", b.version + "-1"} {
			if !strings.Contains(control, want) {
				t.Errorf("control fields lack %q:\n%s", want, control)
			}
		}
	})

	t.Run("rpm files", func(t *testing.T) {
		// Flags: c config, n noreplace, d doc, l license. Every directory
		// of the package's own is the package's (rpm -qf answers for it).
		out := run(t, "", nil, "rpm", "-qp", "--qf", `[%{FILEFLAGS:fflags} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]`, b.rpm)
		for _, want := range []string{
			" -rwxr-xr-x root:root /usr/bin/tokpulse-agent\n",
			" -rw-r--r-- root:root /usr/lib/systemd/system/tokpulse-agent.service\n",
			" drwxr-xr-x root:root /etc/tokpulse-agent\n",
			"cn -rw-r--r-- root:root /etc/tokpulse-agent/agent.yaml\n",
			"cn -rw-r--r-- root:root /etc/sysconfig/tokpulse-agent\n",
			" drwxr-xr-x root:root /etc/tokpulse-agent/rules.d\n",
			" drwxr-xr-x root:root /usr/share/tokpulse-agent\n",
			" drwxr-xr-x root:root /usr/share/tokpulse-agent/rules\n",
			" drwxr-xr-x root:root /usr/share/doc/tokpulse-agent\n",
			"d -rw-r--r-- root:root /usr/share/doc/tokpulse-agent/install.md\n",
			"d -rw-r--r-- root:root /usr/share/man/man8/tokpulse-agent.8.gz\n",
			"l -rw-r--r-- root:root /usr/share/licenses/tokpulse-agent/copyright\n",
			" drwxr-x--- tokpulse-agent:tokpulse-agent /var/lib/tokpulse-agent\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("rpm file list lacks %q:\n%s", want, out)
			}
		}
		for _, f := range rpmFiles(t, b.rpm) {
			if strings.HasPrefix(f, "/etc/default/") || strings.HasPrefix(f, "/lib/") || strings.Contains(f, "lintian") {
				t.Errorf("rpm ships the Debian path %s", f)
			}
		}
		// Both formats ship the same files, but for the family-specific
		// places of the unit, the environment file and the copyright.
		family := map[string]string{
			"/lib/systemd/system/tokpulse-agent.service":        "/usr/lib/systemd/system/tokpulse-agent.service",
			"/etc/default/tokpulse-agent":                       "/etc/sysconfig/tokpulse-agent",
			"/usr/share/doc/tokpulse-agent/copyright":           "/usr/share/licenses/tokpulse-agent/copyright",
			"/usr/share/doc/tokpulse-agent/changelog.Debian.gz": "",
			"/usr/share/lintian/overrides/tokpulse-agent":       "",
		}
		rpmSet := map[string]bool{}
		for _, f := range rpmFiles(t, b.rpm) {
			rpmSet[f] = true
		}
		for _, f := range packageFiles(t, b.deb) {
			if !strings.Contains(f, "tokpulse") {
				continue // directories the system owns, such as /usr/bin
			}
			want, ok := family[f]
			if !ok {
				want = f
			}
			if want != "" && !rpmSet[want] {
				t.Errorf("the .deb ships %s, the .rpm not %s", f, want)
			}
		}
	})

	t.Run("rpm --scripts", func(t *testing.T) {
		out := run(t, "", nil, "rpm", "-qp", "--scripts", b.rpm)
		for _, want := range []string{
			"preinstall scriptlet", "useradd --system", "usermod --append --groups",
			"postinstall scriptlet", "systemctl --no-reload preset tokpulse-agent.service",
			"preuninstall scriptlet", "systemctl --no-reload disable --now tokpulse-agent.service",
			"postuninstall scriptlet", "systemctl try-restart tokpulse-agent.service",
			"set -e",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("rpm scripts lack %q:\n%s", want, out)
			}
		}
		// The state directory belongs to the package with its owner, so no
		// scriptlet changes owners (rpmlint: dangerous-command-in-%post).
		if strings.Contains(out, "chown") {
			t.Errorf("an rpm scriptlet runs chown:\n%s", out)
		}
	})

	t.Run("rpm requirements", func(t *testing.T) {
		// Each scriptlet's needs, declared for its phase, as Fedora's
		// guidelines ask (Requires(pre): shadow-utils for useradd; systemd
		// for systemctl in %post, %preun and %postun).
		out := run(t, "", nil, "rpm", "-qp", "--qf", `[%{REQUIREFLAGS:deptype} %{REQUIRENAME}\n]`, b.rpm)
		for _, want := range []string{"pre shadow-utils", "post systemd", "preun systemd", "postun systemd", "manual systemd", "manual util-linux", "pre,interp /bin/sh"} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(out) {
				t.Errorf("rpm requirements lack %q:\n%s", want, out)
			}
		}
		if cl := run(t, "", nil, "rpm", "-qp", "--changelog", b.rpm); !strings.Contains(cl, b.version+"-1") {
			t.Errorf("rpm %%changelog has no entry for %s:\n%s", b.version, cl)
		}
	})

	t.Run("arm64 under qemu", func(t *testing.T) {
		testArm64UnderQemu(t, b.pkgs["arm64"].deb, b.version)
	})
}

// shippedPaths returns the paths under /usr/share that text names, plus
// the man page a "tokpulse-agent(8)" stands for.
func shippedPaths(text string) []string {
	var paths []string
	for _, m := range regexp.MustCompile(`/usr/share/[A-Za-z0-9_./*-]*[A-Za-z0-9_/*-]`).FindAllString(text, -1) {
		if !slices.Contains(paths, m) {
			paths = append(paths, m)
		}
	}
	if strings.Contains(text, "tokpulse-agent(8)") {
		paths = append(paths, "/usr/share/man/man8/tokpulse-agent.8.gz")
	}
	return paths
}

// hasPath reports whether files holds path, a file or directory (with or
// without its trailing "/"), or a glob that matches at least one file.
func hasPath(files []string, path string) bool {
	path = strings.TrimSuffix(path, "/")
	for _, f := range files {
		if ok, _ := filepath.Match(path, f); ok || f == path {
			return true
		}
	}
	return false
}

// checkReasons fails the test for each line of file that counts (entry
// says which do) without a comment of its own right above it.
func checkReasons(t *testing.T, file string, entry func(string) bool) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	commented := false
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "#") && len(trimmed) > 2:
			commented = true
		case !entry(line):
			if trimmed == "" {
				commented = false
			}
		case !commented:
			t.Errorf("%s: %q has no reason written above it", filepath.Base(file), line)
		default:
			commented = false
		}
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for tokpulse-agent\.service: ([0-9.]+)`)

// exposure reads the score from systemd-analyze security's last line.
func exposure(t *testing.T, out string) float64 {
	t.Helper()
	m := exposureRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// host is a booted container with a helper to run commands and fail.
type host struct {
	t *testing.T
	c *nspawn.Container
}

func (h host) sh(script string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := h.c.Exec(ctx, "sh", "-ec", script)
	if err != nil {
		h.t.Fatalf("%v\njournal:\n%s", err, h.journal())
	}
	return string(out)
}

// try runs script and returns its output and whether it succeeded.
func (h host) try(script string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := h.c.Exec(ctx, "sh", "-ec", script)
	return string(out), err == nil
}

func (h host) journal() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := h.c.Exec(ctx, "journalctl", "--no-pager", "-n", "60", "-u", "tokpulse-agent")
	return string(out)
}

// metrics fetches /metrics from the agent inside, with the host's curl in
// the container's network.
func (h host) metrics() (string, error) { return h.get("/metrics") }

// get fetches path from the agent's HTTP server (the container shares the
// host's network).
func (h host) get(path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.c.HostExec(ctx, "curl", "-fsS", "--max-time", "5", "http://127.0.0.1:9847"+path)
	return string(out), err
}

// show returns a property of the unit.
func (h host) show(prop string) string {
	h.t.Helper()
	return strings.TrimSpace(h.sh("systemctl show -P " + prop + " tokpulse-agent.service"))
}

// eventually polls cond every 100 ms until it holds or timeout passes.
func (h host) eventually(what string, timeout time.Duration, cond func() (bool, string)) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within %s; last: %s\njournal:\n%s", what, timeout, detail, h.journal())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricsMatch waits until /metrics matches every expression.
func (h host) metricsMatch(what string, exprs ...string) string {
	h.t.Helper()
	var body string
	h.eventually(what, 30*time.Second, func() (bool, string) {
		m, err := h.metrics()
		if err != nil {
			return false, err.Error()
		}
		body = m
		for _, e := range exprs {
			if !regexp.MustCompile(`(?m)` + e).MatchString(m) {
				return false, "no match for " + e
			}
		}
		return true, ""
	})
	return body
}

// TestServiceInContainer installs the .deb on a booted Debian and runs the
// service through its life: start, sandbox, reload, watchdog, upgrade,
// removal, purge.
func TestServiceInContainer(t *testing.T) {
	v1 := buildPackages(t, "1.0.0")
	v2 := buildPackages(t, "1.0.1")
	// procps is a dependency of the package; minbase lacks it and the
	// container has no network.
	c := nspawn.Start(t, nspawn.Options{Include: []string{"procps"}})
	h := host{t: t, c: c}
	ctx := context.Background()
	for _, b := range []built{v1, v2} {
		if err := c.CopyIn(ctx, b.deb, "/root/"+filepath.Base(b.deb), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	debFiles := packageFiles(t, v1.deb)

	// Install: Debian's convention enables and starts the service, and
	// Type=notify means "active" was reached only after READY=1.
	h.sh("dpkg -i /root/" + filepath.Base(v1.deb))
	if got := h.show("ActiveState"); got != "active" {
		t.Fatalf("after dpkg -i the service is %q, want active\n%s", got, h.journal())
	}
	if got := h.show("UnitFileState"); got != "enabled" {
		t.Errorf("after dpkg -i the service is %q, want enabled", got)
	}
	if got := strings.TrimSpace(h.sh("id -nG tokpulse-agent")); !strings.Contains(got, "adm") || !strings.Contains(got, "systemd-journal") {
		t.Errorf("tokpulse-agent's groups are %q, want adm and systemd-journal among them", got)
	}
	if got := strings.TrimSpace(h.sh("stat -c '%U:%G %a' /var/lib/tokpulse-agent")); got != "tokpulse-agent:tokpulse-agent 750" {
		t.Errorf("state directory: %q, want tokpulse-agent:tokpulse-agent 750", got)
	}
	// The maintainer script is idempotent: running it again (as dpkg does
	// after an interrupted configure) succeeds and leaves the service up.
	h.sh("/var/lib/dpkg/info/tokpulse-agent.postinst configure 1.0.0-1")
	if got := h.show("ActiveState"); got != "active" {
		t.Fatalf("after a second postinst the service is %q\n%s", got, h.journal())
	}
	pid1 := h.show("MainPID")

	t.Run("metrics", func(t *testing.T) {
		h := host{t: t, c: c}
		h.metricsMatch("host collector series on /metrics",
			`^node_load1 [0-9.e+]+$`,
			`^node_memory_MemAvailable_bytes [0-9.e+]+$`,
			`^tokpulse_collector_success\{collector="host"\} 1$`,
			`^tokpulse_agent_build_info\{.*version="1\.0\.0".*\} 1$`,
		)
		if got := strings.TrimSpace(h.sh("ps -o user= -p " + pid1)); got != "tokpulse-agent" {
			t.Errorf("the agent runs as %q, want tokpulse-agent", got)
		}
		if got := strings.TrimSpace(h.sh("stat -c %U /var/lib/tokpulse-agent/state.db")); got != "tokpulse-agent" {
			t.Errorf("state.db owned by %q", got)
		}
	})

	t.Run("security inside", func(t *testing.T) {
		h := host{t: t, c: c}
		// The installed unit verifies against the container's own systemd
		// (no man-db in minbase; the host test renders the page).
		if out, ok := h.try("systemd-analyze verify --man=no /lib/systemd/system/tokpulse-agent.service 2>&1"); !ok || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify of the installed unit: %s", out)
		}
		out, _ := h.try("systemd-analyze security --no-pager tokpulse-agent.service")
		score := exposure(t, out)
		t.Logf("systemd-analyze security of the installed unit: exposure %.1f", score)
		if score > maxExposure {
			t.Errorf("exposure %.1f > %.1f:\n%s", score, maxExposure, out)
		}
	})

	t.Run("collectors under the sandbox", func(t *testing.T) {
		// The installed agent, as its own user under the full hardening,
		// reads a log file of group adm, the journal (as a member of
		// systemd-journal) and unit states over D-Bus; its /metrics shows
		// each. A file of root's alone stays unreadable to it.
		h := host{t: t, c: c}
		// The agent's journalctl sees the kernel's boot ID (the unit
		// mounts a fresh /proc) and follows only that boot's entries.
		if err := c.UseHostBootID(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.sh(`mkdir -p /var/log/tokpulse
printf 'sandbox line 1\nsandbox error line 2\nsandbox line 3\n' > /var/log/tokpulse/app.log
chown root:adm /var/log/tokpulse/app.log && chmod 0640 /var/log/tokpulse/app.log
echo "root's alone" > /var/log/tokpulse/secret.log && chmod 0600 /var/log/tokpulse/secret.log
logger -t sandbox-probe "sandbox-probe journal entry 1"
logger -t sandbox-probe "sandbox-probe journal error 2"
cp /etc/tokpulse-agent/agent.yaml /root/agent.yaml.shipped`)
		h.writeFile("/etc/tokpulse-agent/agent.yaml", sandboxConfig, 0o644)
		// The subtests after this one run on the shipped configuration,
		// whatever happens here.
		defer func() {
			if m, err := h.metrics(); err == nil && t.Failed() {
				t.Logf("/metrics:\n%s", m)
			}
			h.sh("cp /root/agent.yaml.shipped /etc/tokpulse-agent/agent.yaml && systemctl restart tokpulse-agent")
			h.metricsMatch("agent back on the shipped config", `^tokpulse_collector_success\{collector="host"\} 1$`)
		}()
		h.sh("systemctl restart tokpulse-agent")
		h.metricsMatch("series of the log, journal and unit collectors",
			`^tokpulse_log_lines_total\{source="admlog"\} 3$`,
			`^tokpulse_log_matches_total\{pattern="error",source="admlog"\} 1$`,
			`^tokpulse_log_read_errors_total\{source="secret"\} [1-9]`,
			`^tokpulse_log_lines_total\{source="probe"\} 2$`,
			`^tokpulse_log_matches_total\{pattern="error",source="probe"\} 1$`,
			`^tokpulse_journal_up\{source="probe"\} 1$`,
			`^tokpulse_systemd_up 1$`,
			`^tokpulse_systemd_unit_state\{state="active",unit="dbus.service"\} 1$`,
			`^tokpulse_systemd_unit_state\{state="active",unit="tokpulse-agent.service"\} 1$`,
			`^tokpulse_systemd_unit_state\{state="inactive",unit="tp-absent.service"\} 1$`,
			`^tokpulse_collector_success\{collector="systemd"\} 1$`,
			`^tokpulse_check_success\{check="reaper"\} 1$`,
		)
		h.eventually("no process left by the check", 10*time.Second, func() (bool, string) {
			out, _ := h.try("pgrep -a -u tokpulse-agent sleep")
			return strings.TrimSpace(out) == "", out
		})
		// And live: lines written now are counted too.
		h.sh(`echo "sandbox line 4" >> /var/log/tokpulse/app.log
logger -t sandbox-probe "sandbox-probe journal entry 3"`)
		h.metricsMatch("live lines under the sandbox",
			`^tokpulse_log_lines_total\{source="admlog"\} 4$`,
			`^tokpulse_log_lines_total\{source="probe"\} 3$`,
		)
		// The agent's own view of the file system: /etc and /usr read-only
		// (ProtectSystem=strict), even for root in its mount namespace.
		pid := h.show("MainPID")
		for _, dir := range []string{"/etc/tokpulse-agent", "/usr/bin"} {
			if out, ok := h.try("nsenter -t " + pid + " -m touch " + dir + "/probe 2>&1"); ok || !strings.Contains(out, "Read-only file system") {
				t.Errorf("%s is writable in the agent's mount namespace: %s", dir, out)
			}
		}
	})

	t.Run("reload", func(t *testing.T) {
		h := host{t: t, c: c}
		pid := h.show("MainPID")
		h.metricsMatch("network series before reload", `^node_network_receive_bytes_total\{`)
		// A valid change: the network part switched off.
		h.sh(`sed -i '/^  network:/,/^    enabled:/ s/enabled: true/enabled: false/' /etc/tokpulse-agent/agent.yaml
grep -A1 '^  network:' /etc/tokpulse-agent/agent.yaml | grep -q 'enabled: false'
systemctl reload tokpulse-agent`)
		h.eventually("network series gone after reload", 30*time.Second, func() (bool, string) {
			m, err := h.metrics()
			if err != nil {
				return false, err.Error()
			}
			return !strings.Contains(m, "node_network_receive_bytes_total{") &&
				strings.Contains(m, "tokpulse_agent_config_last_reload_successful 1"), "still there"
		})
		if got := h.show("MainPID"); got != pid {
			t.Errorf("reload restarted the agent: MainPID %s → %s", pid, got)
		}

		// A broken file: "systemctl reload" fails with the agent's own
		// verdict (ExecReload= waits for it), the journal says why at error
		// level, the gauge and STATUS= say so, and the agent keeps running
		// with the configuration it has.
		h.sh(`cp /etc/tokpulse-agent/agent.yaml /root/agent.yaml.good
printf 'agent:\n  intervall: 5s\n' >> /etc/tokpulse-agent/agent.yaml`)
		if out, ok := h.try("systemctl reload tokpulse-agent 2>&1"); ok {
			t.Errorf("systemctl reload with a broken config succeeded:\n%s", out)
		}
		h.metricsMatch("failed reload reported", `^tokpulse_agent_config_last_reload_successful 0$`)
		if j := h.sh("journalctl --no-pager -o cat -p err -u tokpulse-agent --since=-2min"); !strings.Contains(j, `unknown key \"intervall\"`) && !strings.Contains(j, `unknown key "intervall"`) {
			t.Errorf("journalctl -p err does not say why the reload was refused:\n%s", j)
		}
		if st := h.show("StatusText"); !strings.Contains(st, "last reload refused") {
			t.Errorf("STATUS= after a refused reload: %q", st)
		}
		if got := h.show("ActiveState"); got != "active" {
			t.Errorf("after a broken reload the service is %q, want active", got)
		}
		if got := h.show("MainPID"); got != pid {
			t.Errorf("a broken reload restarted the agent: MainPID %s → %s", pid, got)
		}

		// A restart with the broken file on disk: the agent runs on the
		// last good configuration and raises its own P2.
		h.sh("systemctl restart tokpulse-agent")
		if got := h.show("ActiveState"); got != "active" {
			t.Fatalf("restart with a broken config: the service is %q, want active on the last good configuration\n%s", got, h.journal())
		}
		h.metricsMatch("last good configuration in use", `^tokpulse_agent_config_last_good_in_use 1$`,
			`^tokpulse_agent_config_problem\{problem=".*intervall.*"\} 1$`)
		h.eventually("the agent's own P2", 30*time.Second, func() (bool, string) {
			out, err := h.get("/api/v1/alerts")
			return err == nil && strings.Contains(out, `"alertname": "TokPulseAgentConfigInvalid"`) && strings.Contains(out, `"severity": "P2"`), out
		})
		if st := h.show("StatusText"); !strings.Contains(st, "LAST GOOD CONFIGURATION") {
			t.Errorf("STATUS= on the last good configuration: %q", st)
		}
		h.sh("cp /root/agent.yaml.good /etc/tokpulse-agent/agent.yaml && systemctl reload tokpulse-agent")
		h.metricsMatch("good reload after the broken one", `^tokpulse_agent_config_last_reload_successful 1$`,
			`^tokpulse_agent_config_last_good_in_use 0$`)
	})

	t.Run("watchdog", func(t *testing.T) {
		// WatchdogSec=90s as shipped; a drop-in shortens it so the test
		// does not wait 90 s for the same mechanism.
		h := host{t: t, c: c}
		h.dropIn("watchdog-test.conf", "[Service]\nWatchdogSec=3s\nRestartSec=1s\n")
		h.sh("systemctl restart tokpulse-agent")
		pid := h.show("MainPID")
		restarts, _ := strconv.Atoi(h.show("NRestarts"))
		h.sh("kill -STOP " + pid)
		h.eventually("restart after the watchdog fired", 60*time.Second, func() (bool, string) {
			out, _ := h.try("systemctl show -P MainPID tokpulse-agent; systemctl show -P ActiveState tokpulse-agent; systemctl show -P NRestarts tokpulse-agent")
			f := strings.Fields(out)
			if len(f) != 3 {
				return false, out
			}
			n, _ := strconv.Atoi(f[2])
			return f[0] != pid && f[0] != "0" && f[1] == "active" && n > restarts, out
		})
		if j := h.sh("journalctl --no-pager -o cat -u tokpulse-agent --since=-2min"); !strings.Contains(j, "Watchdog timeout") {
			t.Errorf("no watchdog timeout in the journal:\n%s", j)
		}
		h.sh("rm -rf /etc/systemd/system/tokpulse-agent.service.d && systemctl daemon-reload && systemctl restart tokpulse-agent")
	})

	t.Run("upgrade", func(t *testing.T) {
		h := host{t: t, c: c}
		h.metricsMatch("agent up before upgrade", `^tokpulse_agent_build_info\{.*version="1\.0\.0".*\} 1$`)
		// The shipped configuration finds no TokPulse here: /health fails
		// (a P1 at once) and psql is missing (the shipped P1 waits 1m; an
		// operator's rule over the same failing check pages at once). Both
		// fire before the upgrade; the upgrade must neither resolve nor
		// re-announce them (the shipped file output is the receiver).
		const alerts = "/var/lib/tokpulse-agent/alerts.jsonl"
		h.writeFile("/etc/tokpulse-agent/rules.d/upgrade.yml", `groups:
  - name: upgrade-test
    rules:
      - alert: UpgradeTestCheckFailing
        expr: tokpulse_check_success{check="postgres"} == 0
        labels: {severity: P1}
`, 0o644)
		h.sh("systemctl reload tokpulse-agent")
		h.eventually("two P1s announced before the upgrade", 60*time.Second, func() (bool, string) {
			out, _ := h.try("cat " + alerts)
			return strings.Contains(out, `"kind":"initial","status":"firing","incident_id"`) &&
				strings.Contains(out, `"alertname":"TokPulseHealthCheckFailed"`) && strings.Contains(out, `"alertname":"UpgradeTestCheckFailing"`), out
		})
		before := strings.Count(h.sh("cat "+alerts), "\n")
		pid := h.show("MainPID")
		h.sh(`sed -i 's/^  interval: 10s$/  interval: 7s/' /etc/tokpulse-agent/agent.yaml
grep -q '^  interval: 7s$' /etc/tokpulse-agent/agent.yaml`)
		h.sh("dpkg -i /root/" + filepath.Base(v2.deb))
		if got := strings.TrimSpace(h.sh("dpkg-query -W -f '${Version}' tokpulse-agent")); got != "1.0.1-1" {
			t.Errorf("installed version %q after upgrade, want 1.0.1-1", got)
		}
		if out, ok := h.try("grep -q '^  interval: 7s$' /etc/tokpulse-agent/agent.yaml"); !ok {
			t.Errorf("the upgrade replaced the changed conffile: %s", out)
		}
		h.metricsMatch("new version serving after upgrade", `^tokpulse_agent_build_info\{.*version="1\.0\.1".*\} 1$`)
		if got := h.show("MainPID"); got == pid {
			t.Errorf("the upgrade did not restart the agent (MainPID %s)", got)
		}
		if got := h.show("ActiveState"); got != "active" {
			t.Errorf("after upgrade the service is %q", got)
		}
		// 25s: the checks run every 15s, the first within 5s of a start,
		// and the old agent resolved at once.
		time.Sleep(25 * time.Second)
		lines := strings.Split(strings.TrimSpace(h.sh("cat "+alerts)), "\n")
		h.sh("rm /etc/tokpulse-agent/rules.d/upgrade.yml && systemctl reload tokpulse-agent")
		for _, l := range lines[before:] {
			if strings.Contains(l, `"kind":"resolved"`) || (strings.Contains(l, `"kind":"initial"`) &&
				(strings.Contains(l, "TokPulseHealthCheckFailed") || strings.Contains(l, "UpgradeTestCheckFailing"))) {
				t.Errorf("the upgrade resolved or re-announced an incident that still fires:\n%s", l)
			}
		}
	})

	t.Run("remove and purge", func(t *testing.T) {
		h := host{t: t, c: c}
		uid := strings.TrimSpace(h.sh("id -u tokpulse-agent"))
		gid := strings.TrimSpace(h.sh("getent group tokpulse-agent | cut -d: -f3"))
		h.sh(`echo s3cret > /etc/tokpulse-agent/webhook.secret
chown root:tokpulse-agent /etc/tokpulse-agent/webhook.secret && chmod 0640 /etc/tokpulse-agent/webhook.secret
echo 'groups: []' > /etc/tokpulse-agent/rules.d/mine.yml
chown tokpulse-agent /etc/tokpulse-agent/rules.d/mine.yml`)
		h.sh("dpkg -r tokpulse-agent")
		if got := h.show("ActiveState"); got != "inactive" {
			t.Errorf("after dpkg -r the service is %q, want inactive", got)
		}
		if _, err := h.metrics(); err == nil {
			t.Errorf("after dpkg -r the agent still serves /metrics")
		}
		if _, ok := h.try("getent passwd tokpulse-agent"); !ok {
			t.Errorf("dpkg -r removed the user; only purge should")
		}
		if _, ok := h.try("test -f /etc/tokpulse-agent/agent.yaml"); !ok {
			t.Errorf("dpkg -r removed the conffile; only purge should")
		}

		// Purge with files of the administrator's own under
		// /etc/tokpulse-agent (a secret the service reads through its
		// group, a rule, both made before "dpkg -r"), then again without
		// them: the first time they stay, handed to root, the second time
		// the directory goes.
		out := h.sh("dpkg --purge tokpulse-agent 2>&1")
		if !strings.Contains(out, "webhook.secret") || !strings.Contains(out, "mine.yml") {
			t.Errorf("purge did not say which of the administrator's files it kept:\n%s", out)
		}
		if got := strings.TrimSpace(h.sh("stat -c '%U:%G %a' /etc/tokpulse-agent/webhook.secret /etc/tokpulse-agent/rules.d/mine.yml")); got != "root:root 640\nroot:root 644" {
			t.Errorf("after purge the administrator's files are %q, want them kept and root's (mode unchanged)", got)
		}
		if out, ok := h.try("find / -xdev \\( -uid " + uid + " -o -gid " + gid + " -o -nouser -o -nogroup \\) -not -path '/proc/*' -not -path '/root/*' 2>/dev/null"); strings.TrimSpace(out) != "" || !ok {
			t.Errorf("after purge, files of the deleted user or group (or of none) remain:\n%s", out)
		}
		// Reinstall and purge with nothing of the administrator's: no trace.
		h.sh("rm -r /etc/tokpulse-agent && dpkg -i /root/" + filepath.Base(v2.deb) + " && dpkg --purge tokpulse-agent")
		var left []string
		for _, f := range append(debFiles,
			"/var/lib/tokpulse-agent", "/etc/tokpulse-agent",
			"/etc/systemd/system/tokpulse-agent.service",
			"/etc/systemd/system/multi-user.target.wants/tokpulse-agent.service",
			"/var/lib/systemd/deb-systemd-helper-enabled/tokpulse-agent.service.dsh-also",
			"/var/lib/systemd/deb-systemd-helper-masked/tokpulse-agent.service",
		) {
			if !strings.Contains(f, "tokpulse") {
				continue // shared directories such as /usr/bin
			}
			if _, ok := h.try("test -e " + f + " || test -L " + f); ok {
				left = append(left, f)
			}
		}
		if len(left) > 0 {
			t.Errorf("after purge these remain: %q", left)
		}
		for _, db := range []string{"passwd", "group"} {
			if out, ok := h.try("getent " + db + " tokpulse-agent"); ok {
				t.Errorf("after purge %s still has tokpulse-agent: %s", db, out)
			}
		}
		// The test's own files (/root, the log under /var/log/tokpulse) are
		// not the package's.
		out, _ = h.try("find / -xdev \\( -nouser -o -nogroup -o -name '*tokpulse-agent*' \\) -not -path '/proc/*' -not -path '/root/*' 2>/dev/null")
		if strings.TrimSpace(out) != "" {
			t.Errorf("after purge, files of the agent remain:\n%s", out)
		}
	})
}

// sandboxConfig is the configuration of the "collectors under the sandbox"
// subtest: a log file of group adm, one of root's alone, the journal and
// units over D-Bus.
const sandboxConfig = `agent:
  interval: 1s
web:
  listen: 127.0.0.1:9847
logs:
# Not "app": the shipped configuration, which ran before, follows the same
# file as "app" and may have saved its position at the file's end.
- name: admlog
  paths: [/var/log/tokpulse/app.log]
  start_at: beginning
- name: secret
  paths: [/var/log/tokpulse/secret.log]
  start_at: beginning
journal:
- name: probe
  matches: [SYSLOG_IDENTIFIER=sandbox-probe]
  start_at: beginning
units: [dbus.service, tokpulse-agent.service, tp-absent.service]
checks:
# The check's reaper calls prctl(PR_SET_CHILD_SUBREAPER), which the unit's
# SystemCallFilter must allow; the child that calls setsid is killed.
- name: reaper
  command: [sh, -c, 'setsid sleep 300 </dev/null >/dev/null 2>&1 & exit 0']
  interval: 1s
  timeout: 1s
`

// dropIn writes a drop-in for the unit and reloads systemd.
func (h host) dropIn(name, content string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.c.WriteFile(ctx, "/etc/systemd/system/tokpulse-agent.service.d/"+name, strings.NewReader(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	h.sh("systemctl daemon-reload")
}

// TestInstallWithoutSystemd installs and purges the .deb where systemd does
// not run (a chroot, an image build): the scripts succeed, create the user,
// enable the unit for the next boot and start nothing.
func TestInstallWithoutSystemd(t *testing.T) {
	b := buildPackages(t, "1.0.0")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := nspawn.Run(ctx, nspawn.Options{Include: []string{"procps"}}, map[string]string{b.deb: "/mnt/tokpulse-agent.deb"}, "sh", "-ec", `
test ! -d /run/systemd/system
dpkg -i /mnt/tokpulse-agent.deb
id tokpulse-agent
test -L /etc/systemd/system/multi-user.target.wants/tokpulse-agent.service && echo enabled-for-boot
if pgrep -x tokpulse-agent; then echo agent-running; exit 1; fi
dpkg --purge tokpulse-agent
if getent passwd tokpulse-agent; then echo user-left; exit 1; fi
test ! -e /var/lib/tokpulse-agent && test ! -e /etc/tokpulse-agent && echo purged
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"groups=", "adm", "systemd-journal", "enabled-for-boot", "purged"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// TestRPMScriptletsOnSystemd runs the .rpm's scriptlets, taken from the
// package, with RPM's arguments on a booted Debian holding the .rpm's
// files: there is no RHEL tree here, but the scriptlets only need systemd
// and shadow-utils' commands, which Debian has too.
func TestRPMScriptletsOnSystemd(t *testing.T) {
	b := buildPackages(t, "1.0.0")
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "root")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	extractRPM(t, b.rpm, tree)
	run(t, "", nil, "tar", "-C", tree, "-cf", filepath.Join(tmp, "payload.tar"), "usr", "etc", "var")

	c := nspawn.Start(t, nspawn.Options{Include: []string{"procps"}})
	h := host{t: t, c: c}
	ctx := context.Background()
	if err := c.CopyIn(ctx, filepath.Join(tmp, "payload.tar"), "/root/payload.tar", 0o644); err != nil {
		t.Fatal(err)
	}
	for tag, name := range map[string]string{"PREIN": "pre", "POSTIN": "post", "PREUN": "preun", "POSTUN": "postun"} {
		script := run(t, "", nil, "rpm", "-qp", "--qf", "%{"+tag+"}", b.rpm)
		if !strings.HasPrefix(script, "#!/bin/sh") {
			t.Fatalf("rpm %%%s scriptlet: %q", name, script)
		}
		if err := c.WriteFile(ctx, "/root/"+name, strings.NewReader(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// Install ($1 = 1): %pre makes the user before the payload lands,
	// which gives the state directory to it as the package says; %post
	// applies the preset policy (Debian has no preset files, so systemd's
	// default "enable" holds); nothing started.
	h.sh("/root/pre 1")
	// The payload as rpm unpacks it, with the owner and mode of %files
	// (cpio keeps numbers, not names).
	h.sh("tar -xf /root/payload.tar -C / && chown tokpulse-agent:tokpulse-agent /var/lib/tokpulse-agent && chmod 0750 /var/lib/tokpulse-agent")
	h.sh("/root/post 1")
	if got := strings.TrimSpace(h.sh("id -nG tokpulse-agent")); !strings.Contains(got, "adm") || !strings.Contains(got, "systemd-journal") {
		t.Errorf("after %%post 1 the user's groups are %q", got)
	}
	if got := h.show("UnitFileState"); got != "enabled" {
		t.Errorf("after %%post 1 with the default preset the unit is %q, want enabled", got)
	}
	if got := h.show("ActiveState"); got != "inactive" {
		t.Errorf("%%post started the service (%q); RHEL leaves that to the operator", got)
	}
	h.sh("systemctl start tokpulse-agent")
	h.metricsMatch("agent from the rpm payload serves /metrics", `^tokpulse_collector_success\{collector="host"\} 1$`)

	// Upgrade: the new package's %post 2, then the old one's %preun 1 and
	// %postun 1, which restarts the running service.
	pid := h.show("MainPID")
	h.sh("/root/pre 2 && /root/post 2 && /root/preun 1 && /root/postun 1")
	if got := h.show("MainPID"); got == pid || got == "0" {
		t.Errorf("%%postun 1 did not restart the service: MainPID %s → %s", pid, got)
	}
	if got := h.show("ActiveState"); got != "active" {
		t.Errorf("after upgrade scriptlets the service is %q", got)
	}

	// Erase ($1 = 0): stopped and disabled; the user stays, as Fedora's
	// guidelines ask.
	h.sh("/root/preun 0 && /root/postun 0")
	if got := h.show("ActiveState"); got != "inactive" {
		t.Errorf("after %%preun 0 the service is %q, want inactive", got)
	}
	if got := h.show("UnitFileState"); got != "disabled" {
		t.Errorf("after %%preun 0 the unit is %q, want disabled", got)
	}
	if _, ok := h.try("getent passwd tokpulse-agent"); !ok {
		t.Errorf("the rpm scriptlets removed the user; RPM convention keeps it")
	}
	// Idempotent: a second install run changes nothing and succeeds.
	h.sh("/root/pre 1 && /root/pre 1 && /root/post 1 && /root/post 1")
}
