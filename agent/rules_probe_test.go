package agent

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// find returns the alert name in state st, if the tracker has it.
func find(a *Agent, name string, st alert.State) (alert.Alert, bool) {
	for _, x := range a.tracker.Alerts() {
		if x.Name == name && x.State == st {
			return x, true
		}
	}
	return alert.Alert{}, false
}

// TestShippedPackHealthProbe runs the agent with the shipped rule pack and a
// health probe against a real HTTP server: a failing /health is a P1 at
// once, with the probe's own failure as the first evidence, and resolves
// when the endpoint recovers.
func TestShippedPackHealthProbe(t *testing.T) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if healthy.Load() {
			fmt.Fprintln(w, `{"status":"ok"}`)
			return
		}
		http.Error(w, `{"status":"database unreachable"}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	pack, err := filepath.Abs("../packaging/rules/runbook.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`agent:
  interval: 1s
  state_dir: %s
web:
  listen: 127.0.0.1:0
host:
  cpu: false
  filesystem: {enabled: false}
  disk: {enabled: false}
  network: {enabled: false}
probes:
  - name: health
    url: %s/health
    interval: 1s
    timeout: 900ms
rule_files: [%s]
`, filepath.Join(dir, "state"), srv.URL, pack)), 0o600); err != nil {
		t.Fatal(err)
	}
	a := runAgent(t, Options{ConfigFile: cfgFile, Notifier: nopNotifier{}})

	wait := func(st alert.State) alert.Alert {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if x, ok := find(a, "TokPulseHealthCheckFailed", st); ok {
				return x
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("TokPulseHealthCheckFailed never %s; alerts: %+v", st, a.tracker.Alerts())
		return alert.Alert{}
	}
	f := wait(alert.StateFiring)
	// The round that makes an alert fire attaches its evidence when it
	// commits, a moment after the alert reads as firing.
	testutil.Eventually(t, 10*time.Second, "the firing alert's evidence", func() bool {
		f, _ = find(a, "TokPulseHealthCheckFailed", alert.StateFiring)
		return len(f.Evidence) > 0
	})
	if f.Severity != alert.P1 || f.Labels["probe"] != "health" || f.Runbook() != "Complete Service Outage" || f.Value != 0 {
		t.Errorf("firing alert %+v", f)
	}
	if !f.ResponseDeadline.Equal(f.ActiveAt.Add(15 * time.Minute)) {
		t.Errorf("response deadline %s, want active_at + 15m", f.ResponseDeadline)
	}
	if len(f.Evidence) == 0 || f.Evidence[0].Labels["probe"] != "health" {
		t.Fatalf("the probe's own evidence is not first: %+v", f.Evidence)
	}
	titles := map[string]bool{}
	for _, s := range f.Evidence {
		titles[s.Title] = true
	}
	if !titles["Memory and swap (free -h)"] || !titles["Top processes by CPU (ps aux --sort=-%cpu)"] {
		t.Errorf("host evidence missing: %v", titles)
	}
	healthy.Store(true)
	r := wait(alert.StateResolved)
	if r.Fingerprint != f.Fingerprint || r.ResolvedAt.Before(f.FiredAt) {
		t.Errorf("resolution %+v does not match %+v", r, f)
	}
}
