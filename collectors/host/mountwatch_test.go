package host

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMountsWatch runs in a mount namespace of its own (unshare(1), as
// root): a tmpfs mounted and unmounted there is seen by the watch, once
// each, and by the collector's mount table, which is not read again while
// nothing changes.
func TestMountsWatch(t *testing.T) {
	if os.Getenv("TOKPULSE_MOUNTS_WATCH_CHILD") == "1" {
		mountsWatchChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs in a mount namespace of its own: run it as root")
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0], "-test.run", "^TestMountsWatch$", "-test.v")
	cmd.Env = append(os.Environ(), "TOKPULSE_MOUNTS_WATCH_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestMountsWatch") {
		t.Fatalf("in a new mount namespace: %v\n%s", err, out)
	}
}

func mountsWatchChild(t *testing.T) {
	w := openMountsWatch("/proc/self/mountinfo")
	if w == nil {
		t.Fatal("/proc/self/mountinfo: no watch")
	}
	if w.changed() {
		t.Fatal("changed before anything was mounted")
	}
	// The collector reads PID 1's table, the host's; this namespace's
	// is that of the test: a proc root whose 1 is this process.
	proc := t.TempDir()
	for _, name := range []string{"1", "self"} {
		if err := os.Symlink("/proc/self", proc+"/"+name); err != nil {
			t.Fatal(err)
		}
	}
	c := New(DefaultConfig(), Options{Paths: Paths{Proc: proc, Sys: "/sys", Rootfs: "/"}})
	has := func(dir string) bool {
		t.Helper()
		mounts, err := c.readMounts()
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(mounts, func(m mount) bool { return m.mountPoint == dir })
	}
	dir := t.TempDir()
	if has(dir) {
		t.Fatalf("%s mounted before the test mounted it", dir)
	}
	if c.mountMemo.watch == nil {
		t.Fatal("the collector does not watch the real mount table")
	}
	if err := unix.Mount("tokpulse-test", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if !w.changed() {
		t.Fatal("a tmpfs was mounted: no change seen")
	}
	if w.changed() {
		t.Fatal("the same change seen twice")
	}
	if !has(dir) {
		t.Fatalf("%s mounted, not in the collector's table", dir)
	}
	before := c.mountMemo.mounts
	if !has(dir) || &c.mountMemo.mounts[0] != &before[0] {
		t.Fatal("nothing changed, yet the table was parsed again")
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	if !w.changed() {
		t.Fatal("the tmpfs was unmounted: no change seen")
	}
	if has(dir) {
		t.Fatalf("%s unmounted, still in the collector's table", dir)
	}
	if openMountsWatch("testdata/node_exporter/proc/1/mountinfo") != nil {
		t.Fatal("a fixture file (not procfs) is watched: it would never change")
	}
}

// BenchmarkMountsUnchanged: what a gather pays to learn that the mount
// table did not change, by reading it (as before the watch) or by
// polling the watch.
func BenchmarkMountsUnchanged(b *testing.B) {
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			_, release, err := readFile("/proc/1/mountinfo")
			if err != nil {
				b.Fatal(err)
			}
			release()
		}
	})
	b.Run("poll", func(b *testing.B) {
		w := openMountsWatch("/proc/1/mountinfo")
		if w == nil {
			b.Fatal("no watch")
		}
		for b.Loop() {
			w.changed()
		}
	})
}
