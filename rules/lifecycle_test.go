package rules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// recSink records what the rules hand on; fail makes it refuse.
type recSink struct {
	mu    sync.Mutex
	calls [][]alert.Alert
	fail  bool
}

func (s *recSink) Alerts(_ context.Context, _ time.Time, as []alert.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("outbox full")
	}
	s.calls = append(s.calls, append([]alert.Alert(nil), as...))
	return nil
}

// last returns the alerts of the last hand-over, or nil.
func (s *recSink) last() []alert.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) == 0 {
		return nil
	}
	return s.calls[len(s.calls)-1]
}

// fixedEvidence is an EvidenceSource that counts its snapshots.
type fixedEvidence struct{ n int }

func (f *fixedEvidence) Snapshot(_ context.Context, as []map[string]string) [][]evidence.Section {
	f.n++
	out := make([][]evidence.Section, len(as))
	for i := range as {
		out[i] = []evidence.Section{{Source: "test", Kind: "host", Title: "snapshot", Entries: []evidence.Entry{{Text: "taken"}}}}
	}
	return out
}

const step = time.Minute

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// harness runs a Manager over one gauge, memory_used_percent, with an
// injected clock that advances one step per evaluation.
type harness struct {
	t        *testing.T
	dir      string
	rules    string
	st       *state.Store
	m        *Manager
	sink     *recSink
	evidence *fixedEvidence
	now      time.Time
}

func writeRules(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const memRule = `groups:
  - name: test
    rules:
      - alert: HighMemory
        expr: memory_used_percent > 80
        for: 5m
        keep_firing_for: %KEEP%
        labels:
          severity: P1
        annotations:
          summary: "memory at {{ $value }}%"
          runbook: High Memory Usage
`

func newHarness(t *testing.T, keep string) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, now: t0}
	h.rules = writeRules(t, dir, strings.ReplaceAll(memRule, "%KEEP%", keep))
	h.start()
	t.Cleanup(func() { _ = h.st.Close() })
	return h
}

// start opens the state file and a fresh Manager, as an agent start does.
func (h *harness) start() {
	h.t.Helper()
	st, err := state.Open(filepath.Join(h.dir, "state"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.st, h.sink, h.evidence = st, &recSink{}, &fixedEvidence{}
	h.m = NewManager(Options{State: st, Sink: h.sink, Policies: alert.DefaultPolicies(), Evidence: h.evidence, Interval: step})
	if err := h.m.Load([]string{h.rules}); err != nil {
		h.t.Fatal(err)
	}
}

// restart stops the agent for downtime and starts it again.
func (h *harness) restart(downtime time.Duration) {
	h.t.Helper()
	if err := h.st.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.now = h.now.Add(downtime)
	h.start()
}

func gauge(name string, v float64) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(v)}}}}
}

// eval gathers v (absent when nil) at now, evaluates and advances the clock.
func (h *harness) eval(v *float64) {
	h.t.Helper()
	var mfs []*dto.MetricFamily
	if v != nil {
		mfs = append(mfs, gauge("memory_used_percent", *v))
	}
	h.m.Ingest(h.now, mfs)
	if err := h.m.Evaluate(context.Background(), h.now); err != nil && !h.sink.fail {
		h.t.Fatalf("evaluate at %s: %v", h.now.Sub(t0), err)
	}
	h.now = h.now.Add(step)
}

func f(v float64) *float64 { return &v }

// state returns the state of the only alert, or "" with none.
func (h *harness) state() alert.State {
	h.t.Helper()
	as := h.m.Alerts(h.now)
	switch len(as) {
	case 0:
		return ""
	case 1:
		return as[0].State
	}
	h.t.Fatalf("want at most one alert, have %d", len(as))
	return ""
}

func TestLifecycleFor(t *testing.T) {
	h := newHarness(t, "0s")
	for i := range 5 {
		h.eval(f(90))
		if s := h.state(); s != alert.StatePending {
			t.Fatalf("after %d evaluations over the threshold: state %q, want pending", i+1, s)
		}
		if got := h.sink.last(); len(got) != 0 {
			t.Fatalf("a pending alert was handed on: %+v", got)
		}
	}
	h.eval(f(90)) // t0+5m: `for` has elapsed
	if s := h.state(); s != alert.StateFiring {
		t.Fatalf("after for: state %q, want firing", s)
	}
	got := h.sink.last()
	if len(got) != 1 || got[0].State != alert.StateFiring {
		t.Fatalf("hand-over %+v, want one firing alert", got)
	}
	a := got[0]
	if a.Severity != alert.P1 || a.Runbook() != "High Memory Usage" || a.Value != 90 || a.Annotations["summary"] != "memory at 90%" {
		t.Errorf("classification: %+v", a)
	}
	if !a.ActiveAt.Equal(t0) || !a.FiredAt.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("active at %s, fired at %s; want t0 and t0+5m", a.ActiveAt, a.FiredAt)
	}
	if want := t0.Add(15 * time.Minute); !a.ResponseDeadline.Equal(want) {
		t.Errorf("response deadline %s, want %s (P1: 15m after active)", a.ResponseDeadline, want)
	}
	if a.Escalation != "" || len(a.Evidence) != 1 {
		t.Errorf("escalation %q, evidence %d sections; want none and one", a.Escalation, len(a.Evidence))
	}
	for range 10 { // to t0+16m: past P1's first escalation step (15m)
		h.eval(f(91))
	}
	if a := h.sink.last()[0]; a.Escalation != "engineering-manager" || a.Value != 91 || a.Annotations["summary"] != "memory at 91%" {
		t.Errorf("after 16m: escalation %q value %v summary %q, want engineering-manager, 91 and the summary expanded again", a.Escalation, a.Value, a.Annotations["summary"])
	}
	if h.evidence.n != 1 {
		t.Errorf("evidence taken %d times, want once (when the alert started firing)", h.evidence.n)
	}
	h.eval(f(50))
	got = h.sink.last()
	if len(got) != 1 || got[0].State != alert.StateResolved || got[0].ResolvedAt.IsZero() {
		t.Fatalf("after recovery: %+v, want one resolved alert", got)
	}
	h.eval(f(50))
	// 11 evaluations firing (5m..15m), one resolution, then nothing.
	if n := len(h.sink.calls); n != 12 {
		t.Errorf("%d hand-overs, want 12: 11 while firing and the resolution once", n)
	}
}

func TestLifecycleKeepFiringFor(t *testing.T) {
	h := newHarness(t, "3m")
	for range 6 {
		h.eval(f(90))
	}
	if s := h.state(); s != alert.StateFiring {
		t.Fatalf("state %q, want firing", s)
	}
	for i := range 3 {
		h.eval(f(10))
		if s := h.state(); s != alert.StateFiring {
			t.Fatalf("%d evaluations after recovery: %q, want firing (keep_firing_for 3m)", i+1, s)
		}
	}
	h.eval(f(10))
	if s := h.state(); s != alert.StateResolved {
		t.Fatalf("after keep_firing_for: %q, want resolved", s)
	}
	// Back over the threshold while held: the hold is cancelled.
	h2 := newHarness(t, "3m")
	for range 6 {
		h2.eval(f(90))
	}
	h2.eval(f(10))
	h2.eval(f(90))
	for range 4 {
		h2.eval(f(90))
	}
	if s := h2.state(); s != alert.StateFiring {
		t.Fatalf("re-crossed while held: %q, want firing", s)
	}
}

func TestLifecycleFlapping(t *testing.T) {
	h := newHarness(t, "0s")
	// Over the threshold for 4 of every 5 minutes: `for: 5m` never
	// elapses, so nothing is ever handed on.
	for range 4 {
		for range 4 {
			h.eval(f(95))
		}
		h.eval(f(60))
		if s := h.state(); s != "" {
			t.Fatalf("a pending alert that ended should vanish, state %q", s)
		}
	}
	for _, c := range h.sink.calls {
		if len(c) > 0 {
			t.Fatalf("a flapping alert was handed on: %+v", c)
		}
	}
	// A series that disappears (a collector removed by a reload) ends the
	// alert through its staleness marker, not 5m later; a whole family
	// missing from one gather (a collector that timed out) gets one more
	// round first.
	for range 6 {
		h.eval(f(95))
	}
	h.eval(nil)
	if s := h.state(); s != alert.StateFiring {
		t.Fatalf("after one gather without the series: %q, want still firing", s)
	}
	h.eval(nil)
	if s := h.state(); s != alert.StateResolved {
		t.Fatalf("after two gathers without the series: %q, want resolved", s)
	}
}

func TestLifecycleRestartDuringFor(t *testing.T) {
	h := newHarness(t, "0s")
	for range 3 { // pending since t0, evaluated at 0, 1m, 2m
		h.eval(f(90))
	}
	h.restart(30 * time.Second)
	h.eval(f(90)) // t0+3m30s
	if s := h.state(); s != alert.StatePending {
		t.Fatalf("after restart: %q, want pending", s)
	}
	if a := h.m.Alerts(h.now)[0]; !a.ActiveAt.Equal(t0) {
		t.Fatalf("after restart the for clock restarted: active at %s, want %s", a.ActiveAt, t0)
	}
	h.eval(f(90)) // t0+4m30s
	h.eval(f(90)) // t0+5m30s: for elapsed counting from t0, not from the restart
	if s := h.state(); s != alert.StateFiring {
		t.Fatalf("5m30s after the alert became pending: %q, want firing", s)
	}
}

func TestLifecycleRestartWhileFiring(t *testing.T) {
	h := newHarness(t, "0s")
	for range 6 {
		h.eval(f(90))
	}
	before := h.sink.last()[0]
	h.restart(2 * time.Minute)
	h.eval(f(90))
	got := h.sink.last()
	if len(got) != 1 {
		t.Fatalf("after restart: %+v", got)
	}
	a := got[0]
	if a.State != alert.StateFiring || a.Fingerprint != before.Fingerprint || !a.ActiveAt.Equal(before.ActiveAt) || !a.FiredAt.Equal(before.FiredAt) {
		t.Fatalf("after restart the alert looks new: %+v, before %+v", a, before)
	}
	if h.evidence.n != 0 || len(a.Evidence) != 1 {
		t.Fatalf("evidence re-taken (%d) or lost (%d sections) across the restart", h.evidence.n, len(a.Evidence))
	}
}

func TestLifecycleResolvedWhileStopped(t *testing.T) {
	h := newHarness(t, "0s")
	for range 6 {
		h.eval(f(90))
	}
	h.restart(10 * time.Minute)
	h.eval(f(40))
	got := h.sink.last()
	if len(got) != 1 || got[0].State != alert.StateResolved {
		t.Fatalf("first evaluation after restart: %+v, want the alert resolved", got)
	}
	// Resolved alerts leave the state file after the retention.
	for range 17 {
		h.eval(f(40))
	}
	if as := h.m.Alerts(h.now); len(as) != 0 {
		t.Fatalf("resolved alert kept past the retention: %+v", as)
	}
	n := 0
	_ = h.st.Bucket(Bucket).ForEach(func(_, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d alert records left in the state file", n)
	}
}

func TestLifecycleRuleRemovedWhileStopped(t *testing.T) {
	h := newHarness(t, "0s")
	for range 6 {
		h.eval(f(90))
	}
	h.rules = writeRules(t, h.dir, "groups: []\n")
	h.restart(time.Minute)
	h.eval(f(90))
	got := h.sink.last()
	if len(got) != 1 || got[0].State != alert.StateResolved || got[0].Severity != alert.P1 {
		t.Fatalf("alert of a removed rule: %+v, want it resolved once", got)
	}
	h.eval(f(90))
	if n := len(h.sink.calls); n != 1 {
		t.Fatalf("%d hand-overs after the restart, want the resolution once: %+v", n, h.sink.calls)
	}
}

func TestLifecycleSinkFailureRetries(t *testing.T) {
	h := newHarness(t, "0s")
	for range 6 {
		h.eval(f(90))
	}
	h.sink.fail = true
	h.eval(f(40)) // resolved, but delivery refuses
	h.sink.fail = false
	h.restart(time.Minute) // the state file still says firing
	h.eval(f(40))
	got := h.sink.last()
	if len(got) != 1 || got[0].State != alert.StateResolved {
		t.Fatalf("after a refused hand-over and a restart: %+v, want the resolution handed on", got)
	}
}

// TestAlertLabelsAddedAtHandOver: agent.labels reach every alert handed on,
// a rule's own label wins, and the fingerprint (the alert's identity) does
// not change when they do.
func TestAlertLabelsAddedAtHandOver(t *testing.T) {
	h := newHarness(t, "0s")
	for range 6 {
		h.eval(f(90))
	}
	before := h.sink.last()[0]
	h.m.SetAlertLabels(map[string]string{"role": "api", "severity": "P4"})
	h.eval(f(90))
	a := h.sink.last()[0]
	if a.Labels["role"] != "api" || a.Labels["severity"] != "P1" || a.Severity != alert.P1 {
		t.Errorf("labels %v severity %s; want role=api added and the rule's severity P1 kept", a.Labels, a.Severity)
	}
	if a.Fingerprint != before.Fingerprint {
		t.Errorf("fingerprint changed from %s to %s when labels were added", before.Fingerprint, a.Fingerprint)
	}
	if _, ok := before.Labels["role"]; ok {
		t.Errorf("label present before it was configured: %v", before.Labels)
	}
}
