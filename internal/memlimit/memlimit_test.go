package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// tree writes a /proc/self/cgroup naming cg and, under a cgroup2 mount,
// the given files (path relative to the mount → content).
func tree(t *testing.T, cg string, files map[string]string) Paths {
	t.Helper()
	root := t.TempDir()
	p := Paths{Proc: filepath.Join(root, "proc"), Cgroup: filepath.Join(root, "cgroup")}
	write := func(path, body string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if cg != "" {
		write(filepath.Join(p.Proc, "self", "cgroup"), cg)
	}
	for f, body := range files {
		write(filepath.Join(p.Cgroup, f), body)
	}
	return p
}

func TestCgroupLimit(t *testing.T) {
	const unit = "system.slice/tokpulse-agent.service"
	for _, tc := range []struct {
		name   string
		cg     string
		files  map[string]string
		want   int64
		source string
	}{
		{"the unit's MemoryHigh= below its MemoryMax=", "0::/" + unit + "\n",
			map[string]string{unit + "/memory.high": "201326592\n", unit + "/memory.max": "268435456\n"}, 201326592, unit + "/memory.high"},
		{"MemoryMax= only", "0::/" + unit + "\n",
			map[string]string{unit + "/memory.high": "max\n", unit + "/memory.max": "268435456\n"}, 268435456, unit + "/memory.max"},
		{"a lower limit on the slice", "0::/" + unit + "\n",
			map[string]string{unit + "/memory.max": "268435456\n", "system.slice/memory.max": "104857600\n"}, 104857600, "system.slice/memory.max"},
		{"no limit anywhere", "0::/" + unit + "\n",
			map[string]string{unit + "/memory.max": "max\n", unit + "/memory.high": "max\n"}, 0, ""},
		{"cgroup v1 without its memory controller mounted", "12:memory:/user.slice\n1:name=systemd:/user.slice\n", nil, 0, ""},
		{"cgroup v1: memory.limit_in_bytes", "12:memory:/" + unit + "\n1:name=systemd:/" + unit + "\n0::/" + unit + "\n",
			map[string]string{"memory/" + unit + "/memory.limit_in_bytes": "268435456\n", "memory/system.slice/memory.limit_in_bytes": "9223372036854771712\n"},
			268435456, "memory/" + unit + "/memory.limit_in_bytes"},
		{"cgroup v1 without a limit", "4:cpu,memory:/" + unit + "\n",
			map[string]string{"memory/" + unit + "/memory.limit_in_bytes": "9223372036854771712\n"}, 0, ""},
		{"no /proc/self/cgroup", "", nil, 0, ""},
		{"a container's root", "0::/\n", map[string]string{"memory.max": "67108864\n"}, 67108864, "memory.max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tree(t, tc.cg, tc.files)
			got, src, err := CgroupLimit(p)
			if err != nil {
				t.Fatal(err)
			}
			wantSrc := ""
			if tc.source != "" {
				wantSrc = filepath.Join(p.Cgroup, tc.source)
			}
			if got != tc.want || src != wantSrc {
				t.Errorf("CgroupLimit = %d from %q, want %d from %q", got, src, tc.want, wantSrc)
			}
		})
	}
	p := tree(t, "0::/"+unit+"\n", map[string]string{unit + "/memory.max": "lots\n"})
	if _, _, err := CgroupLimit(p); err == nil {
		t.Error("a memory.max that is not a number was accepted")
	}
}

// TestApply: the Go limit becomes three quarters of the cgroup's lowest
// limit, unless GOMEMLIMIT is set or nothing limits the cgroup.
func TestApply(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	const unit = "system.slice/tokpulse-agent.service"
	p := tree(t, "0::/"+unit+"\n", map[string]string{unit + "/memory.high": "201326592\n", unit + "/memory.max": "268435456\n"})

	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(math.MaxInt64)
	r, err := Apply(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Limit != 150994944 || debug.SetMemoryLimit(-1) != 150994944 || r.CgroupLimit != 201326592 {
		t.Errorf("Apply = %+v, runtime limit %d; want 144 MiB (3/4 of 192 MiB)", r, debug.SetMemoryLimit(-1))
	}

	t.Setenv("GOMEMLIMIT", "100MiB")
	debug.SetMemoryLimit(100 << 20) // what the runtime parsed at start
	if r, _ := Apply(p); r.Source != "GOMEMLIMIT" || r.Limit != 100<<20 {
		t.Errorf("with GOMEMLIMIT set: %+v, want it left alone", r)
	}

	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(math.MaxInt64)
	if r, _ := Apply(tree(t, "0::/x\n", nil)); r.Limit != math.MaxInt64 || r.Source != "" {
		t.Errorf("without a cgroup limit: %+v, want no Go limit", r)
	}
}
