package notify

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// mustBuild builds cfg's outputs for Apply.
func mustBuild(t *testing.T, cfg Config) *Outputs {
	t.Helper()
	outs, err := BuildOutputs(cfg, Options{Host: "web-1", Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

// TestApplyWhileDelivering reloads repeatedly while heartbeats and
// deliveries run (a reload must not deadlock with them), then renames the
// output: the queue of the old name is dropped, and the new name, being a
// new output, first learns of every incident that fires.
func TestApplyWhileDelivering(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t, "")
	cfg := testConfig()
	cfg.Heartbeat = 20 * 1e6
	cfg.Webhooks = []WebhookConfig{webhookConfig(rc.srv.URL, "")}
	m := startManager(t, filepath.Join(dir, "state"), cfg, testPolicies(), Options{})
	now := time.Now()
	for i := range 20 {
		if err := m.Alerts(context.Background(), now, []alert.Alert{firing("A"+string(rune('a'+i)), alert.P2, now)}); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { m.Apply(mustBuild(t, cfg)); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Apply deadlocked")
		}
	}
	initials := func() map[string]int {
		n := map[string]int{}
		for _, e := range rc.events(nil) {
			if e.Kind == alert.KindInitial {
				n[e.AlertName]++
			}
		}
		return n
	}
	testutil.Eventually(t, 5*time.Second, "20 alerts", func() bool { return len(initials()) == 20 })
	for name, n := range initials() {
		if n != 1 {
			t.Errorf("%s announced %d times to the same output across 20 reloads", name, n)
		}
	}

	// Rename: whatever "central" had pending is dropped with the name.
	down := testConfig()
	down.Webhooks = []WebhookConfig{webhookConfig("http://"+testutil.FreeAddr(t), "")}
	m.Apply(mustBuild(t, down))
	if err := m.Alerts(context.Background(), now, []alert.Alert{firing("Queued", alert.P1, now)}); err != nil {
		t.Fatal(err)
	}
	renamed := testConfig()
	renamed.Webhooks = []WebhookConfig{webhookConfig(rc.srv.URL, "")}
	renamed.Webhooks[0].Name = "central-v2"
	m.Apply(mustBuild(t, renamed))
	st, err := m.Status()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Outputs["central"]; ok {
		t.Fatalf("old output's queue kept: %+v", st)
	}
	// The new output learns of all 21 incidents, "Queued" included,
	// though the output that was down never delivered it.
	testutil.Eventually(t, 5*time.Second, "the new output caught up", func() bool {
		st, err := m.Status()
		return err == nil && st.Events == 0 && initials()["Queued"] == 1
	})
	if n := initials()["Aa"]; n != 2 {
		t.Errorf("Aa announced %d times in all, want twice: once to central, once to central-v2", n)
	}

	// A failing build changes nothing: Apply is never reached.
	bad := renamed
	bad.Webhooks = []WebhookConfig{webhookConfig(rc.srv.URL, filepath.Join(dir, "missing-secret"))}
	if _, err := BuildOutputs(bad, Options{}); err == nil || !strings.Contains(err.Error(), "missing-secret") {
		t.Fatalf("building with a missing secret file: %v", err)
	}
	if got := m.outputNames(); len(got) != 1 || got[0] != "central-v2" {
		t.Fatalf("outputs after a failed build: %v", got)
	}
}

// TestTemplateOverride: a per-output template file wins over the
// notify-wide one, which wins over the runbook default.
func TestTemplateOverride(t *testing.T) {
	dir := t.TempDir()
	global := writeFile(t, dir, "global.tmpl", "GLOBAL {{ .AlertName }}")
	own := writeFile(t, dir, "own.tmpl", `[{{ .Severity }}] {{ .AlertName }} on {{ .Host }} since {{ time .StartedAt }}`)
	out := filepath.Join(dir, "alerts.jsonl")
	cfg := testConfig()
	cfg.Templates = TemplateFiles{Initial: global, Resolved: global}
	cfg.Files = []FileConfig{{Name: "own", Path: out, Templates: TemplateFiles{Initial: own}}}
	m := startManager(t, filepath.Join(dir, "state"), cfg, testPolicies(), Options{})
	t0 := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	a := firing("Disk", alert.P3, t0)
	if err := m.Alerts(context.Background(), t0, []alert.Alert{a}); err != nil {
		t.Fatal(err)
	}
	if err := m.Alerts(context.Background(), t0.Add(time.Minute), []alert.Alert{resolved(a, t0.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "two lines", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Count(string(b), "\n") == 2
	})
	b, _ := os.ReadFile(out)
	for _, want := range []string{`"text":"[P3] Disk on web-1 since 2026-11-27 05:00:00 UTC"`, `"text":"GLOBAL Disk"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("file lacks %s:\n%s", want, b)
		}
	}
}

// TestWebhookTLS: a receiver with its own CA is trusted through tls.ca_file
// and refused without it (a retryable failure, not a dead letter).
func TestWebhookTLS(t *testing.T) {
	dir := t.TempDir()
	rc := newUnstartedReceiver(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(rc.Serve))
	defer srv.Close()
	ca := writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	for _, trusted := range []bool{false, true} {
		cfg := testConfig()
		wh := webhookConfig(srv.URL, "")
		if trusted {
			wh.TLS = TLSConfig{CAFile: ca}
		}
		cfg.Webhooks = []WebhookConfig{wh}
		m := startManager(t, filepath.Join(dir, "state", map[bool]string{true: "t", false: "f"}[trusted]), cfg, testPolicies(), Options{})
		now := time.Now()
		if err := m.Alerts(context.Background(), now, []alert.Alert{firing("TLS", alert.P1, now)}); err != nil {
			t.Fatal(err)
		}
		if trusted {
			testutil.Eventually(t, 5*time.Second, "delivery over TLS", func() bool { return len(rc.events(nil)) == 1 })
			continue
		}
		testutil.Eventually(t, 5*time.Second, "retries", func() bool {
			return len(rc.requests()) == 0 && retried(m.Manager) >= 2
		})
		if st, _ := m.Status(); len(st.Outputs["central"].DeadLetters) != 0 {
			t.Fatal("a TLS failure was dead-lettered")
		}
		m.Stop(context.Background())
	}
}

func retried(m *Manager) float64 {
	return promtestutil.ToFloat64(m.opts.Metrics.notifications.WithLabelValues("central", ResultRetry))
}

// TestStopDrainsWithinItsBudget: at shutdown a P3 still in its group_wait
// is delivered to a healthy output, a hanging output does not hold the
// shutdown past its budget, and what it did not get stays queued.
func TestStopDrainsWithinItsBudget(t *testing.T) {
	dir := t.TempDir()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a gone client only after the body
		<-r.Context().Done()
	}))
	defer hang.Close()
	out := filepath.Join(dir, "alerts.jsonl")
	cfg := testConfig()
	wh := webhookConfig(hang.URL, "")
	wh.Timeout = yamlx.Duration(time.Minute)
	cfg.Webhooks = []WebhookConfig{wh}
	cfg.Files = []FileConfig{{Path: out}}
	pol := testPolicies()
	pol.P3.GroupWait = yamlx.Duration(time.Hour)
	st := openStore(t, filepath.Join(dir, "state"))
	defer st.Close()
	m, err := newFeed(cfg, pol, Options{Store: st, Host: "h", Version: "v"})
	if err != nil {
		t.Fatal(err)
	}
	m.Start(context.Background())
	now := time.Now()
	if err := m.Alerts(context.Background(), now, []alert.Alert{firing("Slow", alert.P3, now)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	m.Stop(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Stop took %s with a 500ms budget", d)
	}
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), `"alertname":"Slow"`) {
		t.Errorf("the file output did not get the P3 at shutdown: %q", b)
	}
	p, err := m.box.pending("central", 10)
	if err != nil || len(p) != 1 {
		t.Fatalf("the hanging output's event should stay queued: %v %v", p, err)
	}
}
