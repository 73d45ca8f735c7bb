package collectors

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/shirou/gopsutil/v4/disk"
)

// updateCollector adapts one Collector to prometheus.Collector for tests.
type updateCollector struct {
	t *testing.T
	c Collector
}

func (u updateCollector) Describe(chan<- *prometheus.Desc) {}
func (u updateCollector) Collect(ch chan<- prometheus.Metric) {
	if err := u.c.Update(context.Background(), ch); err != nil {
		u.t.Errorf("Update: %v", err)
	}
}

// gatherText returns the text exposition of c, sorted as the registry sorts.
func gatherText(t *testing.T, c Collector) []byte {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(updateCollector{t, c})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// fixtureUsage stands in for statfs, which cannot be pointed at a fixture.
func fixtureUsage(root string) func(context.Context, string) (*disk.UsageStat, error) {
	sizes := map[string]*disk.UsageStat{
		"/":    {Total: 100 << 30, Used: 60 << 30, Free: 35 << 30, InodesTotal: 6553600, InodesFree: 6000000},
		"/srv": {Total: 500 << 30, Used: 450 << 30, Free: 50 << 30, InodesTotal: 1000, InodesFree: 10},
	}
	return func(_ context.Context, path string) (*disk.UsageStat, error) {
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return nil, err
		}
		u, ok := sizes[filepath.Join("/", rel)]
		if !ok {
			return nil, os.ErrNotExist
		}
		return u, nil
	}
}

func TestHostOnFixtures(t *testing.T) {
	root, err := filepath.Abs("testdata/host")
	if err != nil {
		t.Fatal(err)
	}
	paths := Paths{Proc: filepath.Join(root, "proc"), Sys: filepath.Join(root, "sys"), Rootfs: "/fixture-root"}
	h := NewHost(DefaultHostConfig(), Options{Paths: paths})
	h.usage = fixtureUsage(paths.Rootfs)
	compareGolden(t, "testdata/host/metrics.golden", string(gatherText(t, h)))
}

func TestHostFilters(t *testing.T) {
	root, _ := filepath.Abs("testdata/host")
	paths := Paths{Proc: filepath.Join(root, "proc"), Sys: filepath.Join(root, "sys"), Rootfs: "/fixture-root"}
	for _, tc := range []struct {
		name   string
		mutate func(*HostConfig)
		want   []string // substrings that must appear
		absent []string // substrings that must not
	}{
		{
			name:   "defaults skip pseudo filesystems, partitions and loop devices",
			want:   []string{`mountpoint="/srv"`, `node_disk_reads_completed_total{device="vda"} 1000`},
			absent: []string{`mountpoint="/proc"`, `mountpoint="/run"`, `device="vda1"`, `device="loop0"`},
		},
		{
			name: "include narrows filesystems",
			mutate: func(c *HostConfig) {
				c.Filesystem.MountPointsInclude = mustRE("^/srv$")
			},
			want:   []string{`mountpoint="/srv"`},
			absent: []string{`mountpoint="/"}`},
		},
		{
			name:   "network exclude",
			mutate: func(c *HostConfig) { c.Network.DevicesExclude = mustRE("^lo$") },
			want:   []string{`device="eth0"`},
			absent: []string{`device="lo"`},
		},
		{
			name: "parts switched off",
			mutate: func(c *HostConfig) {
				c.CPU, c.Memory = false, false
			},
			want:   []string{"node_load1 0.25"},
			absent: []string{"node_cpu_seconds_total", "node_memory_MemTotal_bytes"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultHostConfig()
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			h := NewHost(cfg, Options{Paths: paths})
			h.usage = fixtureUsage(paths.Rootfs)
			out := string(gatherText(t, h))
			for _, w := range tc.want {
				if !bytes.Contains([]byte(out), []byte(w)) {
					t.Errorf("missing %q in:\n%s", w, out)
				}
			}
			for _, a := range tc.absent {
				if bytes.Contains([]byte(out), []byte(a)) {
					t.Errorf("unexpected %q in output", a)
				}
			}
		})
	}
}

func TestHostUnreadableFilesystemIsFlagged(t *testing.T) {
	root, _ := filepath.Abs("testdata/host")
	paths := Paths{Proc: filepath.Join(root, "proc"), Sys: filepath.Join(root, "sys"), Rootfs: "/fixture-root"}
	h := NewHost(DefaultHostConfig(), Options{Paths: paths})
	h.usage = func(context.Context, string) (*disk.UsageStat, error) { return nil, os.ErrPermission }
	out := gatherText(t, h)
	if !bytes.Contains(out, []byte(`node_filesystem_device_error{device="/dev/vdb",fstype="xfs",mountpoint="/srv"} 1`)) {
		t.Errorf("unreadable filesystem not flagged:\n%s", out)
	}
}

func TestHostMissingProcFails(t *testing.T) {
	h := NewHost(DefaultHostConfig(), Options{Paths: Paths{Proc: "/nonexistent/proc", Sys: "/nonexistent/sys", Rootfs: "/"}})
	ch := make(chan prometheus.Metric, 1000)
	err := h.Update(context.Background(), ch)
	if err == nil {
		t.Fatal("Update on a missing proc tree succeeded; want an error naming the file")
	}
	if !bytes.Contains([]byte(err.Error()), []byte("/nonexistent/proc")) {
		t.Errorf("error %q does not name the path", err)
	}
}
