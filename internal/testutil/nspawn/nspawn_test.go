package nspawn

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMirrorFromSources(t *testing.T) {
	tests := []struct {
		name, file, suite, want string
	}{
		{"first stanza", "debian.sources", "bookworm", "http://deb.debian.org/debian"},
		{"security stanza", "debian.sources", "bookworm-security", "http://deb.debian.org/debian-security"},
		{"missing suite", "debian.sources", "trixie", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MirrorFromSources(filepath.Join("testdata", tt.file), tt.suite)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("MirrorFromSources = %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("MirrorFromSources = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMirror(t *testing.T) {
	tests := []struct {
		name, osRelease, suite, want string
	}{
		{"listed suite", "os-release", "bookworm", "http://deb.debian.org/debian"},
		{"other release from the host's mirror", "os-release", "trixie", "http://deb.debian.org/debian"},
		{"no os-release", "absent", "trixie", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Mirror(filepath.Join("testdata", "debian.sources"), filepath.Join("testdata", tt.osRelease), tt.suite)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("Mirror = %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Mirror = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBoot boots the cached tree, asks systemd inside for its state, writes
// a file in, reaches the container's loopback from the host's tools, and
// stops the container by the PID it started.
func TestBoot(t *testing.T) {
	c := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	out, err := c.Exec(ctx, "systemctl", "is-system-running")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "running" {
		t.Errorf("systemctl is-system-running = %q, want running", got)
	}
	out, err = c.Exec(ctx, "cat", "/proc/1/comm")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "systemd" {
		t.Errorf("PID 1 inside is %q, want systemd", got)
	}

	src := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(src, []byte("hello from the host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.CopyIn(ctx, src, "/srv/deep/hello", 0o640); err != nil {
		t.Fatal(err)
	}
	out, err = c.Exec(ctx, "stat", "-c", "%a %U %s", "/srv/deep/hello")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "640 root 20" {
		t.Errorf("copied file: stat = %q, want \"640 root 20\"", got)
	}

	// The container has a network of its own: a port on its loopback is
	// not the host's.
	out, err = c.HostExec(ctx, "readlink", "/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got == hostNet || !strings.HasPrefix(got, "net:") {
		t.Errorf("HostExec ran in network namespace %q; the host's is %q, want a different one", got, hostNet)
	}
	// A listener of the test's, in the container's network: reached on
	// the container's loopback, and not on the host's.
	ln, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if conn, err := ln.Accept(); err == nil {
			_, _ = conn.Write([]byte("from the test\n"))
			conn.Close()
		}
	}()
	out, err = c.HostExec(ctx, "curl", "-sS", "--max-time", "5", "telnet://"+ln.Addr().String())
	if err != nil || strings.TrimSpace(string(out)) != "from the test" {
		t.Errorf("reading the test's listener %s from inside: %q, %v", ln.Addr(), out, err)
	}
	if conn, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		conn.Close()
		t.Errorf("the listener in the container's network answers on the host's loopback too")
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(c.PID())); err == nil {
		// The PID could be reused by now, but not within this instant on
		// an idle test machine; if it is, the comm will differ.
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(c.PID()) + "/comm")
		if strings.TrimSpace(string(comm)) == "systemd" {
			t.Errorf("container init %d still runs after Stop", c.PID())
		}
	}
	// The cached tree stays pristine: the file went to the overlay.
	root, err := Tree(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "srv", "deep", "hello")); err == nil {
		t.Errorf("CopyIn wrote into the cached tree %s", root)
	}
}

// TestRun runs a command in an unbooted container: no systemd inside, a
// bound file visible, and the tree untouched afterwards.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(src, []byte("bound\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Run(ctx, Options{}, map[string]string{src: "/mnt/hello"},
		"sh", "-c", "cat /mnt/hello; test -d /run/systemd/system && echo systemd-running; touch /srv/run-marker; echo done")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); !strings.Contains(got, "bound\n") || strings.Contains(got, "systemd-running") || !strings.Contains(got, "done") {
		t.Errorf("Run output %q, want the bound file, no running systemd, done", got)
	}
	if _, err := Run(ctx, Options{}, nil, "false"); err == nil {
		t.Errorf("Run of false succeeded")
	}
	root, err := Tree(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "srv", "run-marker")); err == nil {
		t.Errorf("Run wrote into the cached tree %s", root)
	}
}

// TestUseHostBootID: after it, the container and a fresh /proc (as a
// sandboxed unit sees it) agree on the boot ID, and journald stamps new
// entries with it.
func TestUseHostBootID(t *testing.T) {
	c := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Exec(ctx, "cat", "/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	if string(before) == string(host) {
		t.Fatalf("the container starts with the host's boot ID %s; nspawn should have given it its own", host)
	}
	if err := c.UseHostBootID(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := c.Exec(ctx, "sh", "-ec", `cat /proc/sys/kernel/random/boot_id
logger -t boot-id-probe hello
# journald stores the entry a moment after logger returns.
for i in $(seq 100); do
	journalctl --no-pager -q -o export -t boot-id-probe | grep -a '^_BOOT_ID=' && exit 0
	sleep 0.1
done`)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(host))
	lines := strings.Fields(string(out))
	if len(lines) != 2 || lines[0] != want || lines[1] != "_BOOT_ID="+strings.ReplaceAll(want, "-", "") {
		t.Errorf("after UseHostBootID: %q, want the host's boot ID %s in /proc and in the journal", lines, want)
	}
}
