package host

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/prometheus/procfs"
)

// TestParseProcStatMatchesProcfs holds parseProcStat to procfs' own parse
// of the same files, except for the per-interrupt counts, which it leaves
// out on purpose.
func TestParseProcStatMatchesProcfs(t *testing.T) {
	for _, root := range []string{"testdata/node_exporter/proc", "testdata/own/proc", "/proc"} {
		t.Run(root, func(t *testing.T) {
			path := filepath.Join(root, "stat")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fs, err := procfs.NewFS(root)
			if err != nil {
				t.Fatal(err)
			}
			want, err := fs.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if root == "/proc" {
				// The live file changed between the two reads: compare
				// against procfs' parse of the very bytes read here.
				want, err = procfsStatOf(t, data)
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := parseProcStat(data, path)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.CPU) == 0 {
				t.Fatal("no per-CPU lines parsed")
			}
			want.IRQ = nil
			if !reflect.DeepEqual(want, got) {
				t.Errorf("parseProcStat differs from procfs:\nprocfs %+v\nours   %+v", want, got)
			}
		})
	}
}

// procfsStatOf parses data with procfs, through a copy in a temporary
// procfs root.
func procfsStatOf(t *testing.T, data []byte) (procfs.Stat, error) {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "stat"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		return procfs.Stat{}, err
	}
	return fs.Stat()
}

func TestParseProcStatErrors(t *testing.T) {
	for _, tc := range []struct{ name, data string }{
		{"cpu line without numbers", "cpu  \n"},
		{"cpu time not a number", "cpu  1 2 x 4\n"},
		{"bad cpu id", "cpuX 1 2 3 4\n"},
		{"btime not a number", "btime abc\n"},
		{"ctxt without value", "ctxt\n"},
		{"softirq not a number", "softirq 1 2 z\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseProcStat([]byte(tc.data), "/proc/stat"); err == nil {
				t.Errorf("parseProcStat(%q): no error", tc.data)
			}
		})
	}
}

func BenchmarkProcStat(b *testing.B) {
	data, err := os.ReadFile("testdata/node_exporter/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("agent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseProcStat(data, "stat"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("procfs", func(b *testing.B) {
		fs, err := procfs.NewFS("testdata/node_exporter/proc")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fs.Stat(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
