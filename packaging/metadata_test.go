package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readMetadata parses packaging/metadata (make syntax: NAME = value).
func readMetadata(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "packaging", "metadata"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// spdxExpression is the shape of an SPDX license expression: identifiers
// (or LicenseRef-…) joined by AND, OR and WITH, in parentheses or not.
var spdxExpression = regexp.MustCompile(`^\(*[A-Za-z0-9][A-Za-z0-9.+-]*\)*( (AND|OR|WITH) \(*[A-Za-z0-9][A-Za-z0-9.+-]*\)*)*$`)

// TestMetadataInOnePlace checks that maintainer, vendor, homepage and
// license come from packaging/metadata into both packages, and that no
// other file of the repository repeats them, so that an adopting team
// edits one file.
func TestMetadataInOnePlace(t *testing.T) {
	md := readMetadata(t)
	for _, k := range []string{"PKG_MAINTAINER", "PKG_VENDOR", "PKG_HOMEPAGE", "PKG_COPYRIGHT", "PKG_LICENSE", "PKG_LICENSE_FILE", "PKG_REPO_URL"} {
		if md[k] == "" {
			t.Fatalf("packaging/metadata has no %s", k)
		}
	}
	if !spdxExpression.MatchString(md["PKG_LICENSE"]) {
		t.Errorf("PKG_LICENSE %q is not an SPDX license expression", md["PKG_LICENSE"])
	}
	b := buildPackages(t, "1.0.0")

	control := run(t, "", nil, "dpkg-deb", "--field", b.deb, "Maintainer", "Homepage")
	for _, want := range []string{"Maintainer: " + md["PKG_MAINTAINER"] + "\n", "Homepage: " + md["PKG_HOMEPAGE"] + "\n"} {
		if !strings.Contains(control, want) {
			t.Errorf(".deb control lacks %q:\n%s", want, control)
		}
	}
	header := run(t, "", nil, "rpm", "-qp", "--qf", "Packager: %{PACKAGER}\nVendor: %{VENDOR}\nURL: %{URL}\nLicense: %{LICENSE}\n", b.rpm)
	for _, want := range []string{
		"Packager: " + md["PKG_MAINTAINER"] + "\n", "Vendor: " + md["PKG_VENDOR"] + "\n",
		"URL: " + md["PKG_HOMEPAGE"] + "\n", "License: " + md["PKG_LICENSE"] + "\n",
	} {
		if !strings.Contains(header, want) {
			t.Errorf(".rpm header lacks %q:\n%s", want, header)
		}
	}

	// The copyright file, the same in both: /usr/share/doc of the .deb,
	// %license of the .rpm.
	licenseText, err := os.ReadFile(filepath.Join(repoRoot(t), md["PKG_LICENSE_FILE"]))
	if err != nil {
		t.Fatal(err)
	}
	debDir, rpmDir := t.TempDir(), t.TempDir()
	run(t, "", nil, "dpkg-deb", "-x", b.deb, debDir)
	extractRPM(t, b.rpm, rpmDir)
	debCopyright, err := os.ReadFile(filepath.Join(debDir, "usr/share/doc/tokpulse-agent/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	rpmCopyright, err := os.ReadFile(filepath.Join(rpmDir, "usr/share/licenses/tokpulse-agent/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	if string(debCopyright) != string(rpmCopyright) {
		t.Errorf("the copyright files of the .deb and the .rpm differ:\n%s\n---\n%s", debCopyright, rpmCopyright)
	}
	for _, want := range []string{
		"Upstream-Contact: " + md["PKG_MAINTAINER"] + "\n", "Source: " + md["PKG_HOMEPAGE"] + "\n",
		"Copyright: " + md["PKG_COPYRIGHT"] + "\n", "License: " + md["PKG_LICENSE"] + "\n",
		" " + strings.SplitN(string(licenseText), "\n", 2)[0] + "\n",
	} {
		if !strings.Contains(string(debCopyright), want) {
			t.Errorf("copyright lacks %q:\n%s", want, debCopyright)
		}
	}
	if cl := run(t, "", nil, "rpm", "-qp", "--changelog", b.rpm); !strings.Contains(cl, md["PKG_MAINTAINER"]+" - 1.0.0-1") {
		t.Errorf("rpm %%changelog's snapshot entry is not by %s:\n%s", md["PKG_MAINTAINER"], cl)
	}
	if cl := run(t, "", nil, "sh", "-c", `zcat "$1"`, "sh", filepath.Join(debDir, "usr/share/doc/tokpulse-agent/changelog.Debian.gz")); !strings.Contains(cl, "-- "+md["PKG_MAINTAINER"]) {
		t.Errorf("changelog.Debian's snapshot entry is not by %s:\n%s", md["PKG_MAINTAINER"], cl)
	}

	// Nowhere else: the maintainer and the license are not repeated in any
	// other file git tracks (the release notes, which record who released
	// what, and tests aside). The repository URL is: docs/install.md shows
	// the placeholder as the example it is.
	files, err := exec.Command("git", "-C", repoRoot(t), "ls-files").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(files)) {
		if f == "packaging/metadata" || f == "packaging/changelog.yml" || strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if err != nil {
			continue // deleted in the work tree
		}
		for _, k := range []string{"PKG_MAINTAINER", "PKG_LICENSE"} {
			if strings.Contains(string(data), md[k]) {
				t.Errorf("%s repeats %s (%q) of packaging/metadata; take it from there", f, k, md[k])
			}
		}
	}
}
