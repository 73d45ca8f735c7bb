package agent

import (
	"encoding/binary"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

func TestConfigFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A CA file must hold a certificate: the configuration's validation
	// parses it, as the output would.
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("agent.yaml", []byte(`
probes:
  - {name: p, url: http://127.0.0.1:1/, header_files: {Authorization: `+f+`}}
checks:
  - {name: c, command: [true], env_files: {B: `+f+`, A: `+f+`}}
rule_files: [/etc/tokpulse-agent/rules.d/*.yml]
notify:
  webhooks:
    - {url: http://127.0.0.1:1/, secret_file: `+f+`, tls: {ca_file: `+ca+`}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range ConfigFiles(cfg) {
		got = append(got, r.Key)
	}
	want := []string{
		"probes[0].header_files.Authorization",
		"checks[0].env_files.A", "checks[0].env_files.B",
		"notify.webhooks[0].secret_file", "notify.webhooks[0].tls.ca_file",
	}
	if !slices.Equal(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
}

// TestUnreadableFiles judges real files for the real user nobody, and
// holds each verdict against the kernel's: cat run as nobody (with the
// same groups) must fail exactly when a warning is given.
func TestUnreadableFiles(t *testing.T) {
	testutil.RequireRoot(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	adm, err := user.LookupGroup("adm")
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	// t.TempDir's folders are 0700; open them so that only the case decides.
	for d := base; d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gid := func(g string) int { n, _ := strconv.Atoi(g); return n }
	for _, tc := range []struct {
		name   string
		mode   os.FileMode
		group  int      // the file's group
		groups []string // the account's SupplementaryGroups=
		dir    os.FileMode
		acl    bool // a POSIX ACL gives nobody read access
		hidden bool // under a directory the unit hides
		want   string
	}{
		{name: "world-readable", mode: 0o644, dir: 0o755},
		{name: "root only", mode: 0o600, dir: 0o755, want: "owner root:root, mode -rw-------; run: chown root:nobody " + filepath.Join(base, "root-only", "webhook.key") + " && chmod 0640"},
		{name: "primary group", mode: 0o640, group: gid(nobody.Gid), dir: 0o755},
		{name: "supplementary group", mode: 0o640, group: gid(adm.Gid), groups: []string{"adm"}, dir: 0o755},
		{name: "group it lacks", mode: 0o640, group: gid(adm.Gid), dir: 0o755, want: "owner root:adm, mode -rw-r-----"},
		{name: "closed directory", mode: 0o644, dir: 0o700, want: "it may not enter " + filepath.Join(base, "closed-directory") + " (owner root:root, mode drwx------); run: chgrp nobody"},
		{name: "ACL", mode: 0o600, dir: 0o755, acl: true},
		{name: "hidden by the sandbox", mode: 0o644, dir: 0o755, hidden: true, want: "the unit's PrivateTmp=yes hides"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(base, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.Mkdir(dir, tc.dir); err != nil {
				t.Fatal(err)
			}
			os.Chmod(dir, tc.dir) // past the umask
			secret := filepath.Join(dir, "webhook.key")
			if err := os.WriteFile(secret, []byte("k\n"), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(secret, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(secret, 0, tc.group); err != nil {
				t.Fatal(err)
			}
			if tc.acl {
				setReadACL(t, secret, uint32(gid(nobody.Uid)))
			}
			acct := ServiceAccount{User: "nobody", Groups: tc.groups, Hidden: map[string]string{}}
			if tc.hidden {
				acct.Hidden[dir] = "PrivateTmp=yes"
			}
			cfg, err := Parse("agent.yaml", []byte("notify:\n  webhooks:\n    - {url: 'http://127.0.0.1:1/', secret_file: "+secret+"}\n"))
			if err != nil {
				t.Fatal(err)
			}
			warnings := UnreadableFiles(cfg, acct)
			switch {
			case tc.want == "" && len(warnings) > 0:
				t.Errorf("warnings %q, want none", warnings)
			case tc.want != "" && (len(warnings) != 1 || !strings.HasPrefix(warnings[0], "notify.webhooks[0].secret_file: the service user nobody cannot read "+secret+": ") || !strings.Contains(warnings[0], tc.want)):
				t.Errorf("warnings %q, want one containing %q", warnings, tc.want)
			}
			if tc.hidden {
				return // the kernel cannot see a sandbox that is not there
			}
			groups := []uint32{uint32(gid(nobody.Gid))}
			for _, g := range tc.groups {
				gr, _ := user.LookupGroup(g)
				groups = append(groups, uint32(gid(gr.Gid)))
			}
			cat := exec.Command("cat", secret)
			cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(gid(nobody.Uid)), Gid: groups[0], Groups: groups}}
			out, err := cat.CombinedOutput()
			if kernel := err == nil; kernel != (len(warnings) == 0) {
				t.Errorf("cat as nobody: %v %s; the warnings say the opposite: %q", err, out, warnings)
			}
		})
	}
	if got := UnreadableFiles(&Config{}, ServiceAccount{User: "no-such-user-here"}); got != nil {
		t.Errorf("warnings %q for an account that does not exist", got)
	}
}

// setReadACL gives user uid read access to path through a POSIX access
// ACL (the xattr setfacl writes: version 2, then tag, permissions, id).
func setReadACL(t *testing.T, path string, uid uint32) {
	t.Helper()
	const undefined = 0xffffffff
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{
		{0x01, 6, undefined}, // ACL_USER_OBJ rw
		{0x02, 4, uid},       // ACL_USER uid r
		{0x04, 0, undefined}, // ACL_GROUP_OBJ
		{0x10, 4, undefined}, // ACL_MASK r
		{0x20, 0, undefined}, // ACL_OTHER
	} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	if err := unix.Setxattr(path, "system.posix_acl_access", b, 0); err != nil {
		t.Fatalf("setting a POSIX ACL on %s: %v", path, err)
	}
}
