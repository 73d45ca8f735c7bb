package agent

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The benchmarks measure the daemon's work as cmd/tokpulse-agent sets it
// up.
func init() { SetLibraryDefaults() }

// benchAgent builds an agent on the embedded default configuration (its
// state in a temporary directory) with a clock that the caller advances.
func benchAgent(b *testing.B) (*Agent, *time.Time) {
	b.Helper()
	dir := b.TempDir()
	cfg := strings.Replace(string(DefaultConfigYAML()), "agent:\n", "agent:\n  state_dir: "+filepath.Join(dir, "state")+"\n", 1)
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a, err := New(Options{ConfigFile: file, Notifier: nopNotifier{}, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.closeState() })
	return a, &now
}

// BenchmarkInterval is the agent's own work of one agent.interval with the
// default configuration: gather the registry, ingest it into the rule
// store, evaluate the rule pack, commit the tracker. The store's window is
// filled first, so that trimming is part of the steady state measured.
func BenchmarkInterval(b *testing.B) {
	a, now := benchAgent(b)
	step := a.Config().Agent.Interval.D()
	for range int(a.engine.Store().Window()/step) + 1 {
		*now = now.Add(step)
		a.gather()
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		*now = now.Add(step)
		a.gather()
	}
}

// BenchmarkScrape is one GET /metrics of the default configuration, as
// Prometheus (or bench/idle.sh) makes it.
func BenchmarkScrape(b *testing.B) { benchScrape(b, "") }

// BenchmarkScrapeGzip is BenchmarkScrape as Prometheus makes it by default
// (scrape_configs' enable_compression: true): it asks for gzip.
func BenchmarkScrapeGzip(b *testing.B) { benchScrape(b, "gzip") }

// benchScrape scrapes with Accept-Encoding encoding ("" for none) and
// checks that the answer is whole and so encoded.
func benchScrape(b *testing.B, encoding string) {
	a, _ := benchAgent(b)
	h := newServer(a).Handler
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9847/metrics", nil)
		if encoding != "" {
			req.Header.Set("Accept-Encoding", encoding)
		}
		w := &discardWriter{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK || w.n == 0 || w.header.Get("Content-Encoding") != encoding {
			b.Fatalf("status %d, %d bytes, encoding %q", w.code, w.n, w.header.Get("Content-Encoding"))
		}
	}
}

// discardWriter is the response side of a connection as the benchmarks
// see it: it counts the body and keeps none of it, so that what a scrape
// allocates is the agent's, not a recorder's buffer.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (d *discardWriter) Header() http.Header { return d.header }
func (d *discardWriter) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}
func (d *discardWriter) Write(p []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	d.n += len(p)
	return len(p), nil
}

// reportCPU reports the process's CPU time (user and system, garbage
// collection included) per iteration as cpu-ms/op when the returned
// function runs: on a loaded machine, wall time per iteration mostly
// measures the wait for a core, and the CPU is what bench/idle.sh charges.
func reportCPU(b *testing.B) func() {
	var r0 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &r0)
	return func() {
		var r1 unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &r1)
		cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
		b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/op")
	}
}
