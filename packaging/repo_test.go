package packaging

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/nspawn"
)

// repoURL is where the tests' containers find the repository that "make
// repo" wrote: a directory copied in, reached by apt as file://.
const repoURL = "file:///srv/tokpulse-agent"

// signedRepo is one "make repo" run with a throwaway key.
type signedRepo struct {
	pkgs    built
	gnupg   string // GNUPGHOME holding the key
	key     string // its fingerprint
	dir     string // what "make repo" wrote (REPO)
	keyring string // the public key, dearmored, for gpgv
}

var (
	repoOnce  signedRepo
	gpgHomes  []string // GNUPGHOMEs whose gpg-agent TestMain stops
	repoBuilt bool
)

// buildRepo signs the 1.0.0 packages with a key made for this test binary
// and builds both repositories from them with "make repo", once per test
// binary. The repository's URL is repoURL.
func buildRepo(t *testing.T) signedRepo {
	t.Helper()
	for _, tool := range []string{"gpg", "gpgv", "gpgconf", "reprepro", "createrepo_c", "rpmsign"} {
		testutil.Require(t, tool)
	}
	b := buildPackages(t, "1.0.0")
	buildsMu.Lock()
	defer buildsMu.Unlock()
	if repoBuilt {
		return repoOnce
	}
	tmp, err := os.MkdirTemp(buildDir, "repo-")
	if err != nil {
		t.Fatal(err)
	}
	r := signedRepo{pkgs: b, gnupg: filepath.Join(tmp, "gnupg"), dir: filepath.Join(tmp, "repo"), keyring: filepath.Join(tmp, "key.gpg")}
	if err := os.Mkdir(r.gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	gpgHomes = append(gpgHomes, r.gnupg)
	env := []string{"GNUPGHOME=" + r.gnupg}
	// RSA 3072 with SHA-512 signatures: what RHEL 8's rpm and Debian 13's
	// apt (sqv) accept.
	run(t, "", env, "gpg", "--batch", "--passphrase", "", "--quick-gen-key", "tokpulse-agent test <test@example.invalid>", "rsa3072", "sign", "1d")
	out := run(t, "", env, "gpg", "--batch", "--with-colons", "--list-secret-keys")
	m := regexp.MustCompile(`(?m)^fpr:+([0-9A-F]{40}):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no fingerprint in:\n%s", out)
	}
	r.key = m[1]
	run(t, "", env, "sh", "-c", `gpg --batch --export "$1" > "$2"`, "sh", r.key, r.keyring)

	// make sign signs in place: sign copies, not the packages other tests
	// install.
	dist := filepath.Join(tmp, "dist")
	if err := os.Mkdir(dist, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "", nil, "cp", b.deb, b.rpm, dist)
	r.pkgs.deb, r.pkgs.rpm = filepath.Join(dist, filepath.Base(b.deb)), filepath.Join(dist, filepath.Base(b.rpm))
	run(t, repoRoot(t), env, "make", "-s", "repo", "SIGN_KEY="+r.key, "DIST="+dist, "REPO="+r.dir,
		"BUILD="+filepath.Join(tmp, "build"), "PKG_REPO_URL="+repoURL)
	repoOnce, repoBuilt = r, true
	return r
}

// stopGPGAgents ends the gpg-agent each throwaway GNUPGHOME started (gpg
// starts one per home); called by TestMain.
func stopGPGAgents() {
	for _, home := range gpgHomes {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		_ = cmd.Run()
	}
}

// tamper returns a copy of file with one byte changed in its middle.
func tamper(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	out := filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRepositories signs the packages with a throwaway key, builds the apt
// and yum repositories with "make repo", checks their signatures with the
// tools the clients use, and installs from the apt repository on a booted
// Debian as an operator would (signed-by= the repository's key); a
// tampered package or Release file is refused.
func TestRepositories(t *testing.T) {
	r := buildRepo(t)

	t.Run("layout", func(t *testing.T) {
		for _, f := range []string{
			"tokpulse-agent.asc", "tokpulse-agent.sources", "tokpulse-agent.repo",
			"apt/dists/stable/InRelease", "apt/dists/stable/Release", "apt/dists/stable/Release.gpg",
			"apt/dists/stable/main/binary-amd64/Packages",
			"apt/pool/main/t/tokpulse-agent/" + filepath.Base(r.pkgs.deb),
			"rpm/" + filepath.Base(r.pkgs.rpm), "rpm/repodata/repomd.xml", "rpm/repodata/repomd.xml.asc",
		} {
			if _, err := os.Stat(filepath.Join(r.dir, f)); err != nil {
				t.Errorf("make repo did not write %s: %v", f, err)
			}
		}
		for _, f := range []string{"conf", "db"} {
			if _, err := os.Stat(filepath.Join(r.dir, "apt", f)); err == nil {
				t.Errorf("the published apt repository holds reprepro's %s/", f)
			}
		}
		repo, _ := os.ReadFile(filepath.Join(r.dir, "tokpulse-agent.repo"))
		for _, want := range []string{"baseurl=" + repoURL + "/rpm\n", "gpgcheck=1\n", "repo_gpgcheck=1\n", "gpgkey=" + repoURL + "/tokpulse-agent.asc\n"} {
			if !strings.Contains(string(repo), want) {
				t.Errorf("tokpulse-agent.repo lacks %q:\n%s", want, repo)
			}
		}
	})

	t.Run("rpm signature", func(t *testing.T) {
		// rpm -K against a database holding only the repository's key, as
		// on a host that imported it (dnf does on first use).
		db := t.TempDir()
		run(t, "", nil, "rpm", "--dbpath", db, "--initdb")
		run(t, "", nil, "rpm", "--dbpath", db, "--import", filepath.Join(r.dir, "tokpulse-agent.asc"))
		if out := run(t, "", nil, "rpm", "--dbpath", db, "-K", r.pkgs.rpm); !strings.Contains(out, "digests signatures OK") {
			t.Errorf("rpm -K of the signed package: %s", out)
		}
		out, err := exec.Command("rpm", "--dbpath", db, "-K", tamper(t, r.pkgs.rpm)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "NOT OK") {
			t.Errorf("rpm -K accepted a tampered package: %v\n%s", err, out)
		}
	})

	t.Run("rpmlint", func(t *testing.T) {
		// rpmlint unpacks the package with rpm2cpio | cpio -id: as an
		// unprivileged user in a throwaway directory, so that nothing of it
		// can land outside. Its rpm database holds the repository's key,
		// so that the signature is checked too. Anything it reports fails,
		// except what packaging/rpmlint.toml filters, each with its reason.
		// Not t.TempDir(): its parent is 0700, closed to nobody.
		dir, err := os.MkdirTemp("", "tokpulse-agent-rpmlint-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, "", nil, "cp", r.pkgs.rpm, filepath.Join(repoRoot(t), "packaging", "rpmlint.toml"), dir)
		run(t, "", nil, "rpm", "--dbpath", filepath.Join(dir, "rpmdb"), "--initdb")
		run(t, "", nil, "rpm", "--dbpath", filepath.Join(dir, "rpmdb"), "--import", filepath.Join(r.dir, "tokpulse-agent.asc"))
		if err := os.WriteFile(filepath.Join(dir, ".rpmmacros"), []byte("%_dbpath "+filepath.Join(dir, "rpmdb")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "", nil, "chown", "-R", "nobody:nogroup", dir)
		cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
			"env", "HOME="+dir, "TMPDIR="+dir, "rpmlint", "-c", filepath.Join(dir, "rpmlint.toml"), filepath.Join(dir, filepath.Base(r.pkgs.rpm)))
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		t.Logf("rpmlint:\n%s", out)
		if err != nil || !strings.Contains(string(out), "0 errors, 0 warnings") {
			t.Errorf("rpmlint: %v", err)
		}
	})
	t.Run("rpmlint filters have reasons", func(t *testing.T) {
		checkReasons(t, filepath.Join(repoRoot(t), "packaging", "rpmlint.toml"), func(line string) bool {
			l := strings.TrimSpace(line)
			return l != "" && !strings.HasPrefix(l, "#") && l != "Filters = [" && l != "]"
		})
	})

	t.Run("yum metadata signature", func(t *testing.T) {
		repomd := filepath.Join(r.dir, "rpm", "repodata", "repomd.xml")
		run(t, "", nil, "gpgv", "--keyring", r.keyring, repomd+".asc", repomd)
		bad := tamper(t, repomd)
		if out, err := exec.Command("gpgv", "--keyring", r.keyring, repomd+".asc", bad).CombinedOutput(); err == nil {
			t.Errorf("gpgv accepted a tampered repomd.xml:\n%s", out)
		}
	})

	t.Run("yum repository with dnf", func(t *testing.T) {
		// dnf (Debian's, into an empty install root) with the repository's
		// own .repo file: it imports the key named by gpgkey=, checks
		// repomd.xml against repomd.xml.asc (repo_gpgcheck=1) and sees the
		// package; a tampered repomd.xml fails the repository.
		testutil.Require(t, "dnf")
		dnf := func(repoDir string, args ...string) (string, error) {
			tmp := t.TempDir()
			conf := filepath.Join(tmp, "repos")
			if err := os.Mkdir(conf, 0o755); err != nil {
				t.Fatal(err)
			}
			repoFile, err := os.ReadFile(filepath.Join(r.dir, "tokpulse-agent.repo"))
			if err != nil {
				t.Fatal(err)
			}
			repoFile = []byte(strings.ReplaceAll(string(repoFile), repoURL, "file://"+repoDir))
			if err := os.WriteFile(filepath.Join(conf, "tokpulse-agent.repo"), repoFile, 0o644); err != nil {
				t.Fatal(err)
			}
			// librepo imports keys into a GnuPG home of its own under the
			// cache and may leave that home's gpg-agent running: stop it.
			defer func() {
				_ = filepath.WalkDir(tmp, func(path string, d os.DirEntry, err error) error {
					if err == nil && d.IsDir() && d.Name() == "pubring" {
						_ = exec.Command("gpgconf", "--homedir", path, "--kill", "gpg-agent").Run()
					}
					return nil
				})
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "dnf", append([]string{"-y", "--installroot=" + filepath.Join(tmp, "root"), "--releasever=9",
				"--setopt=reposdir=" + conf, "--setopt=cachedir=" + filepath.Join(tmp, "cache"), "--setopt=logdir=" + tmp,
				"--setopt=skip_if_unavailable=False"}, args...)...)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		out, err := dnf(r.dir, "repoquery", "--qf", "%{name}-%{version}-%{release}.%{arch}", "tokpulse-agent")
		if want := strings.TrimSuffix(filepath.Base(r.pkgs.rpm), ".rpm"); err != nil || !strings.Contains(out, want) || !strings.Contains(out, "Importing GPG key") {
			t.Errorf("dnf repoquery: %v, want %s from a repository whose key it imported:\n%s", err, want, out)
		}
		bad := filepath.Join(t.TempDir(), "repo")
		run(t, "", nil, "cp", "-a", r.dir, bad)
		run(t, "", nil, "sed", "-i", "s|<revision>|<revision>1|", filepath.Join(bad, "rpm", "repodata", "repomd.xml"))
		out, err = dnf(bad, "makecache")
		if err == nil || !strings.Contains(out, "GPG signature verification error") {
			t.Errorf("dnf accepted a tampered repomd.xml: %v\n%s", err, out)
		}
	})

	c := nspawn.Start(t, nspawn.Options{Include: []string{"procps"}})
	h := host{t: t, c: c}
	copyRepoIn(t, h, r)

	t.Run("tampered Release refused", func(t *testing.T) {
		h := host{t: t, c: c}
		h.sh(`cp -a /srv/tokpulse-agent /srv/bad-release
sed -i 's/^Label: .*/Label: mallory/' /srv/bad-release/apt/dists/stable/InRelease /srv/bad-release/apt/dists/stable/Release`)
		out, ok := h.try(aptWith("bad-release", "update") + " 2>&1")
		if ok || !strings.Contains(out, "BADSIG") {
			t.Errorf("apt-get update of a repository with a tampered InRelease: ok=%v\n%s", ok, out)
		}
		if out, ok := h.try(aptWith("bad-release", "install -y tokpulse-agent") + " 2>&1"); ok {
			t.Errorf("installed from a repository with a tampered InRelease:\n%s", out)
		}
	})

	t.Run("tampered package refused", func(t *testing.T) {
		h := host{t: t, c: c}
		h.sh(`cp -a /srv/tokpulse-agent /srv/bad-deb
deb=$(ls /srv/bad-deb/apt/pool/main/t/tokpulse-agent/*.deb)
size=$(stat -c %s "$deb")
printf 'X' | dd of="$deb" bs=1 seek=$((size / 2)) conv=notrunc status=none`)
		h.sh(aptWith("bad-deb", "update"))
		out, ok := h.try(aptWith("bad-deb", "install -y tokpulse-agent") + " 2>&1")
		if ok || !strings.Contains(out, "Hash Sum mismatch") {
			t.Errorf("apt-get install of a tampered package: ok=%v\n%s", ok, out)
		}
		if out, ok := h.try("dpkg -s tokpulse-agent 2>&1"); ok {
			t.Errorf("the tampered package is installed:\n%s", out)
		}
	})

	t.Run("install from the repository", func(t *testing.T) {
		h := host{t: t, c: c}
		installFromRepo(t, h)
		checkInstalled(t, h, r.pkgs.version)
	})
}

// copyRepoIn puts the repository into the container at /srv/tokpulse-agent
// (repoURL), as a static web server would serve it.
func copyRepoIn(t *testing.T, h host, r signedRepo) {
	t.Helper()
	tarball := filepath.Join(t.TempDir(), "repo.tar")
	run(t, "", nil, "tar", "-C", r.dir, "-cf", tarball, ".")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.c.CopyIn(ctx, tarball, "/root/repo.tar", 0o644); err != nil {
		t.Fatal(err)
	}
	h.sh("mkdir -p /srv/tokpulse-agent && tar -xf /root/repo.tar -C /srv/tokpulse-agent && chmod -R a+rX /srv")
}

// aptWith runs apt-get with only the repository under /srv/NAME as its
// source (the operator's .sources file pointed there) and lists of its own.
func aptWith(name, args string) string {
	return `mkdir -p /root/` + name + `.d /root/` + name + `.lists/partial
sed 's|` + repoURL + `|file:///srv/` + name + `|' /srv/tokpulse-agent/tokpulse-agent.sources > /root/` + name + `.d/` + name + `.sources
mkdir -p /etc/apt/keyrings && cp /srv/tokpulse-agent/tokpulse-agent.asc /etc/apt/keyrings/
apt-get -q -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/root/` + name + `.d -o Dir::State::Lists=/root/` + name + `.lists ` + args
}

// installFromRepo does what docs/install.md tells an operator: the
// repository's key and .sources file in place, then apt update and apt
// install. (The operator fetches both with curl; here they are copied from
// the repository, and the container's own Debian sources, which it has no
// network to reach, are put aside.)
func installFromRepo(t *testing.T, h host) {
	t.Helper()
	h.sh(`mv /etc/apt/sources.list /root/sources.list.offline 2>/dev/null || true
rm -f /etc/apt/sources.list.d/*
mkdir -p /etc/apt/keyrings
cp /srv/tokpulse-agent/tokpulse-agent.asc /etc/apt/keyrings/tokpulse-agent.asc
cp /srv/tokpulse-agent/tokpulse-agent.sources /etc/apt/sources.list.d/tokpulse-agent.sources`)
	out := h.sh("apt-get -q update 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get -q install -y tokpulse-agent 2>&1")
	if strings.Contains(out, "W: ") || strings.Contains(out, "E: ") {
		t.Errorf("apt warned or failed:\n%s", out)
	}
	// apt writes file:///srv as file:/srv.
	if pol := h.sh("apt-cache policy tokpulse-agent"); !strings.Contains(pol, strings.Replace(repoURL, "file://", "file:", 1)+"/apt stable/main") {
		t.Errorf("tokpulse-agent is not from %s:\n%s", repoURL, pol)
	}
}

// unitWarning is how systemd reports a line of the unit or of a drop-in
// that it does not accept: "tokpulse-agent.service:42: Unknown key name
// 'X' in section 'Service', ignoring." (systemd 239 says "Unknown
// lvalue").
var unitWarning = regexp.MustCompile(`tokpulse-agent\.service(\.d/[^:]+)?:\d+: .*`)

// checkInstalled checks the service a package installed on a booted Debian:
// active under systemd, serving /metrics from the version installed, no
// warning of systemd about the unit, and the exposure the docs state.
func checkInstalled(t *testing.T, h host, version string) {
	t.Helper()
	if got := h.show("ActiveState"); got != "active" {
		t.Fatalf("after install the service is %q, want active\n%s", got, h.journal())
	}
	h.metricsMatch("the installed agent's /metrics",
		`^tokpulse_collector_success\{collector="host"\} 1$`,
		`^tokpulse_agent_build_info\{.*version="`+regexp.QuoteMeta(version)+`".*\} 1$`,
	)
	h.sh("systemctl reload tokpulse-agent")
	h.metricsMatch("reloaded", `^tokpulse_agent_config_last_reload_successful 1$`)
	if out := h.sh("journalctl -b --no-pager -o cat"); unitWarning.MatchString(out) {
		t.Errorf("systemd warns about the unit:\n%s", strings.Join(unitWarning.FindAllString(out, -1), "\n"))
	}
	// The check above sees what this systemd says of a setting it does not
	// know: a drop-in with one makes it say so.
	h.dropIn("unknown.conf", "[Service]\nProtectNothingAtAll=yes\n")
	h.eventually("systemd's warning about an unknown setting", 10*time.Second, func() (bool, string) {
		out, _ := h.try("journalctl -b --no-pager -o cat")
		return unitWarning.MatchString(out), "no warning in the journal"
	})
	h.sh("rm -r /etc/systemd/system/tokpulse-agent.service.d && systemctl daemon-reload")
	out, _ := h.try("systemd-analyze security --no-pager tokpulse-agent.service")
	score := exposure(t, out)
	t.Logf("%s: systemd-analyze security of the installed unit: exposure %.1f", strings.TrimSpace(h.sh("systemctl --version | head -1")), score)
	if score > maxExposure {
		t.Errorf("exposure %.1f > %.1f:\n%s", score, maxExposure, out)
	}
}

// TestDebianReleases installs the package from the apt repository on
// booted Debian 11 (systemd 247) and 13 (systemd 257), beside 12 (252) in
// TestRepositories: one install, start, reload and /metrics each, with no
// warning of systemd about the unit.
func TestDebianReleases(t *testing.T) {
	r := buildRepo(t)
	for _, tc := range []struct{ suite, systemd string }{
		{"bullseye", "247"},
		{"trixie", "257"},
	} {
		t.Run(tc.suite, func(t *testing.T) {
			c := nspawn.Start(t, nspawn.Options{Suite: tc.suite, Include: []string{"procps"}})
			h := host{t: t, c: c}
			if got := h.sh("systemctl --version | head -1"); !strings.Contains(got, "systemd "+tc.systemd) {
				t.Errorf("%s runs %q, want systemd %s", tc.suite, strings.TrimSpace(got), tc.systemd)
			}
			copyRepoIn(t, h, r)
			installFromRepo(t, h)
			checkInstalled(t, h, r.pkgs.version)
		})
	}
}
