package agent

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// value returns the value of the series of name whose labels include want,
// or -1.
func value(t *testing.T, a *Agent, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := a.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, want) {
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// TestReloadKeepsCollectors: a reload keeps running the collectors whose
// configuration did not change (a log source keeps its counters and does
// not read again) and hands the history of unchanged probes to the new
// probe collector; a refused reload changes nothing at all.
func TestReloadKeepsCollectors(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "app.log")
	if err := os.WriteFile(logFile, []byte("one\ntwo error\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "agent.yaml")
	listen := testutil.FreeAddr(t)
	write := func(probes string) {
		t.Helper()
		body := fmt.Sprintf(`agent: {interval: 1s, state_dir: %s/state}
web: {listen: %q}
host: {cpu: false, load: false, memory: false, boot_time: false, filesystem: {enabled: false}, disk: {enabled: false}, network: {enabled: false}}
logs:
  - {name: app, paths: [%s], start_at: beginning}
probes:
%s`, dir, listen, logFile, probes)
		if err := os.WriteFile(cfgFile, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	probeA := fmt.Sprintf("  - {name: a, url: %q, interval: 1s, timeout: 500ms}\n", down.URL)
	write(probeA)
	a := runAgent(t, Options{ConfigFile: cfgFile, Notifier: nopNotifier{}})
	lines := map[string]string{"source": "app"}
	failA := map[string]string{"probe": "a", "reason": "status"}
	testutil.Eventually(t, 20*time.Second, "three lines and two failures of probe a", func() bool {
		return value(t, a, "tokpulse_log_lines_total", lines) == 3 && value(t, a, "tokpulse_probe_failures_total", failA) >= 2
	})
	logBefore := a.currentPipeline().set.Members()

	write(probeA + fmt.Sprintf("  - {name: b, url: %q, interval: 1s, timeout: 500ms}\n", down.URL))
	if !a.Reload() {
		t.Fatal("reload refused")
	}
	before := value(t, a, "tokpulse_probe_failures_total", failA)
	if before < 2 {
		t.Fatalf("probe a's failures after the reload: %v, want its history kept (≥ 2)", before)
	}
	if n := value(t, a, "tokpulse_log_lines_total", lines); n != 3 {
		t.Fatalf("log lines after the reload: %v, want 3 (the source kept running, nothing read twice or lost)", n)
	}
	var kept bool
	for _, m := range a.currentPipeline().set.Members() {
		for _, o := range logBefore {
			if m.Name == "logs/app" && o.Name == m.Name && m.Collector == o.Collector {
				kept = true
			}
		}
	}
	if !kept {
		t.Fatal("the unchanged log source was rebuilt by the reload")
	}
	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("four\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	testutil.Eventually(t, 10*time.Second, "the fourth line, read once", func() bool {
		return value(t, a, "tokpulse_log_lines_total", lines) == 4
	})
	testutil.Eventually(t, 10*time.Second, "the new probe", func() bool {
		return value(t, a, "tokpulse_probe_failures_total", map[string]string{"probe": "b", "reason": "status"}) >= 1
	})

	// A refused reload: nothing changes, not even the log level.
	members := a.currentPipeline()
	if err := os.WriteFile(cfgFile, []byte("agent: {interval: banana}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if a.Reload() {
		t.Fatal("a broken configuration was accepted")
	}
	if a.currentPipeline() != members {
		t.Fatal("a refused reload replaced the collectors")
	}
	st := a.StatusSnapshot()
	if st.Agent.LastReloadSuccessful || !strings.Contains(st.Agent.LastReloadError, "banana") {
		t.Fatalf("status after a refused reload: %+v", st.Agent)
	}
}
