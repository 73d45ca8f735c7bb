package agent

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

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
	for b.Loop() {
		*now = now.Add(step)
		a.gather()
	}
}

// BenchmarkScrape is one GET /metrics of the default configuration, as
// Prometheus (or bench/idle.sh) makes it.
func BenchmarkScrape(b *testing.B) {
	a, _ := benchAgent(b)
	h := newServer(a).Handler
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9847/metrics", nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
