package host

import (
	"math"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	cgcollectors "github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// TestSelfProcessMatchesClientGolang gathers SelfProcess and client_golang's
// process collector one after the other in this process: the same names,
// help texts and types, and the same values (those that move between the
// two reads within what they can move).
func TestSelfProcessMatchesClientGolang(t *testing.T) {
	gather := func(c prometheus.Collector) map[string]*dto.MetricFamily {
		t.Helper()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*dto.MetricFamily{}
		for _, mf := range mfs {
			out[mf.GetName()] = mf
		}
		return out
	}
	// The first gather of each opens files for good (the runtime's
	// poller, the registry's): compare second gathers.
	self, cg := NewSelfProcess(), cgcollectors.NewProcessCollector(cgcollectors.ProcessCollectorOpts{})
	gather(self)
	gather(cg)
	ours := gather(self)
	theirs := gather(cg)
	if len(ours) != len(theirs) || len(ours) != 9 {
		t.Fatalf("%d families, client_golang %d, want 9 each", len(ours), len(theirs))
	}
	page := float64(os.Getpagesize())
	for name, want := range theirs {
		got, ok := ours[name]
		if !ok {
			t.Errorf("%s: missing", name)
			continue
		}
		if got.GetHelp() != want.GetHelp() || got.GetType() != want.GetType() || len(got.Metric) != 1 {
			t.Errorf("%s: help %q type %v (%d series), client_golang %q %v", name, got.GetHelp(), got.GetType(), len(got.Metric), want.GetHelp(), want.GetType())
			continue
		}
		g, w := value(got.Metric[0]), value(want.Metric[0])
		tolerance := 0.0
		switch name {
		case "process_cpu_seconds_total":
			tolerance = 0.05
		case "process_resident_memory_bytes", "process_virtual_memory_bytes":
			tolerance = 64 << 20 // the heap may grow between the reads
		case "process_start_time_seconds":
			tolerance = 0.011 // client_golang reads btime anew
		case "process_network_receive_bytes_total", "process_network_transmit_bytes_total":
			tolerance = 1 << 20 // the host's traffic between the reads
		}
		if math.Abs(g-w) > tolerance {
			t.Errorf("%s = %g, client_golang %g", name, g, w)
		}
		if name == "process_resident_memory_bytes" && math.Mod(g, page) != 0 {
			t.Errorf("%s = %g, not whole pages", name, g)
		}
	}
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return math.NaN()
}

// TestSelfProcessStatFields: a process directory that cannot be read
// leaves those metrics out rather than failing the gather, as
// client_golang's collector does; a command name with spaces and
// parentheses does not shift the fields.
func TestSelfProcessStatFields(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(dir+"/42/fd", 0o755); err != nil {
		t.Fatal(err)
	}
	stat := "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 8 0 12345 1000000 300 18446744073709551615\n"
	if err := os.WriteFile(dir+"/42/stat", []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/stat", []byte("cpu  1 2 3 4\nbtime 1700000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := newSelfProcess(dir, 42)
	st, err := p.stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.cpu != 4 || st.startTicks != 12345 || st.vsize != 1000000 || st.rss != 300*float64(os.Getpagesize()) {
		t.Errorf("stat = %+v", st)
	}
	if b := p.bootTime(); b != 1700000000 {
		t.Errorf("boot time = %g", b)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	// No net/netstat in the fake directory: the network pair is left out.
	if names["process_network_receive_bytes_total"] || !names["process_start_time_seconds"] || !names["process_open_fds"] {
		t.Errorf("families %v", names)
	}
	if _, err := newSelfProcess(dir, 7).stat(); err == nil {
		t.Error("stat of a missing process: no error")
	}
}

func BenchmarkSelfProcess(b *testing.B) {
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
	}{
		{"agent", NewSelfProcess()},
		{"client_golang", cgcollectors.NewProcessCollector(cgcollectors.ProcessCollectorOpts{})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(tc.c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
