package host

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
)

// TestOwnFixtureGoldenCached gathers the fixture host three times and
// checks each exposition against the golden file: from the second gather
// on, the label pairs come from the cache.
func TestOwnFixtureGoldenCached(t *testing.T) {
	c, _ := ownCollector(t, ownConfig())
	for i := range 3 {
		mfs := gather(t, c)
		delete(mfs, "node_scrape_collector_duration_seconds")
		golden.Compare(t, "testdata/own/metrics.golden", exposition(t, mfs), "go test ./collectors/host -run OwnFixture")
		if i == 0 && c.labels.Len() == 0 {
			t.Fatal("the first gather cached no label pairs")
		}
	}
}

// TestMountTableMemo: the mount table is parsed again exactly when its
// text changes, PID 1's table and the agent's own (hidepid) alike.
func TestMountTableMemo(t *testing.T) {
	proc := t.TempDir()
	c := New(ownConfig(), Options{Paths: Paths{Proc: proc, Sys: "/nonexistent", Rootfs: "/"}})
	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const root = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	const data = "30 22 8:2 / /data rw,relatime shared:2 - xfs /dev/sda2 rw\n"
	const dataRO = "30 22 8:2 / /data ro,relatime shared:2 - xfs /dev/sda2 rw\n"
	read := func() []mount {
		t.Helper()
		ms, err := c.readMounts()
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	pid1 := filepath.Join(proc, "1", "mountinfo")
	write(pid1, root+data)
	first := read()
	if len(first) != 2 || first[1].mountPoint != "/data" || first[1].readOnly {
		t.Fatalf("first read: %+v", first)
	}
	if again := read(); &again[0] != &first[0] {
		t.Fatal("the same text was parsed again")
	}
	tests := []struct {
		name, path, text string
		want             []string // mount points, "(ro)" when read-only
	}{
		{"an option changes", pid1, root + dataRO, []string{"/", "/data(ro)"}},
		{"a mount goes", pid1, root, []string{"/"}},
		{"a mount comes", pid1, root + data, []string{"/", "/data"}},
		{"PID 1 hidden: the agent's own table", filepath.Join(proc, "self", "mountinfo"), data, []string{"/data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path != pid1 {
				if err := os.RemoveAll(filepath.Join(proc, "1")); err != nil {
					t.Fatal(err)
				}
			}
			write(tt.path, tt.text)
			var got []string
			for _, m := range read() {
				if m.readOnly {
					m.mountPoint += "(ro)"
				}
				got = append(got, m.mountPoint)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
