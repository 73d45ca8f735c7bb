package incident_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/state"
	"github.com/tokpulse/tokpulse-agent/rules"
)

// recDelivery records the events the tracker hands on; fail makes it
// refuse.
type recDelivery struct {
	mu     sync.Mutex
	events []alert.Event
	fail   bool
}

func (d *recDelivery) Enqueue(_ context.Context, evs []alert.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return errors.New("outbox full")
	}
	d.events = append(d.events, evs...)
	return nil
}

// kinds returns the kinds of the events delivered since index from.
func (d *recDelivery) kinds(from int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, e := range d.events[from:] {
		out = append(out, string(e.Kind))
	}
	return strings.Join(out, " ")
}

func (d *recDelivery) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.events)
}

func (d *recDelivery) last() alert.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.events[len(d.events)-1]
}

// fixedEvidence is an EvidenceSource that counts its snapshots.
type fixedEvidence struct{ n int }

func (f *fixedEvidence) Snapshot(_ context.Context, as []evidence.Subject) [][]evidence.Section {
	f.n++
	out := make([][]evidence.Section, len(as))
	for i := range as {
		out[i] = []evidence.Section{{Source: "test", Kind: "host", Title: "snapshot", Entries: []evidence.Entry{{Text: "taken"}}}}
	}
	return out
}

const step = time.Minute

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// harness runs the rule engine and a Tracker over one gauge,
// memory_used_percent, with an injected clock that advances one step per
// evaluation, as the agent's gather loop does.
type harness struct {
	t        *testing.T
	dir      string
	rules    string
	st       *state.Store
	tr       *incident.Tracker
	m        *rules.Manager
	del      *recDelivery
	evidence *fixedEvidence
	now      time.Time
	// cold, when set, reports memory_used_percent as not yet collected
	// afresh (a collector that has not run since the start).
	cold bool
	// actions and exec, when set, are given to every tracker started;
	// eval waits for the runs it started unless noWait is set.
	actions []incident.Action
	exec    incident.Executor
	noWait  bool
	// reg holds the metrics of the tracker started last.
	reg *prometheus.Registry
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
	h := &harness{t: t, dir: dir, now: t0, del: &recDelivery{}}
	h.rules = writeRules(t, dir, strings.ReplaceAll(memRule, "%KEEP%", keep))
	h.start()
	t.Cleanup(func() { _ = h.st.Close() })
	return h
}

// start opens the state file, a fresh Tracker and engine, as an agent
// start does; the delivery (the outbox) survives.
func (h *harness) start() {
	h.t.Helper()
	st, err := state.Open(filepath.Join(h.dir, "state"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.st, h.evidence, h.reg = st, &fixedEvidence{}, prometheus.NewRegistry()
	h.tr, err = incident.New(incident.Options{State: st, Delivery: h.del, Policies: alert.DefaultPolicies(),
		Evidence: h.evidence, Host: "web-1", Version: "t", Now: func() time.Time { return h.now }, Registerer: h.reg})
	if err != nil {
		h.t.Fatal(err)
	}
	if h.actions != nil {
		h.tr.SetActions(h.actions, h.exec)
	}
	h.m = rules.NewManager(rules.Options{Tracker: h.tr, Interval: step, Freshness: func() map[string]bool {
		if h.cold {
			return map[string]bool{"memory_used_percent": true}
		}
		return nil
	}})
	rs, err := rules.Load([]string{h.rules}, rules.LoadOptions{}, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.m.Swap(rs, step)
}

// restart stops the agent for downtime and starts it again.
func (h *harness) restart(downtime time.Duration) {
	h.t.Helper()
	if err := h.tr.Close(); err != nil {
		h.t.Fatal(err)
	}
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

// eval gathers v (absent when nil) at now, evaluates, commits and advances
// the clock.
func (h *harness) eval(v *float64) {
	h.t.Helper()
	var mfs []*dto.MetricFamily
	if v != nil {
		mfs = append(mfs, gauge("memory_used_percent", *v))
	}
	ctx := context.Background()
	h.m.Ingest(h.now, mfs)
	if err := h.m.Evaluate(ctx, h.now); err != nil {
		h.t.Fatalf("evaluate at %s: %v", h.now.Sub(t0), err)
	}
	if err := h.tr.Commit(ctx, h.now); err != nil && !h.del.fail {
		h.t.Fatalf("commit at %s: %v", h.now.Sub(t0), err)
	}
	if !h.noWait {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := h.tr.WaitActions(wctx); err != nil {
			h.t.Fatalf("actions still running after the commit at %s: %v", h.now.Sub(t0), err)
		}
	}
	h.now = h.now.Add(step)
}

func f(v float64) *float64 { return &v }

// only returns the only alert, failing when there is more than one.
func (h *harness) only() (alert.Alert, bool) {
	h.t.Helper()
	as := h.tr.Alerts()
	switch len(as) {
	case 0:
		return alert.Alert{}, false
	case 1:
		return as[0], true
	}
	h.t.Fatalf("want at most one alert, have %d", len(as))
	return alert.Alert{}, false
}

// state returns the state of the only alert, or "" with none.
func (h *harness) state() alert.State {
	h.t.Helper()
	a, _ := h.only()
	return a.State
}

func TestLifecycleFor(t *testing.T) {
	h := newHarness(t, "0s")
	for i := range 5 {
		h.eval(f(90))
		if s := h.state(); s != alert.StatePending {
			t.Fatalf("after %d evaluations over the threshold: state %q, want pending", i+1, s)
		}
		if n := h.del.len(); n != 0 {
			t.Fatalf("a pending alert produced %d events", n)
		}
	}
	h.eval(f(90)) // t0+5m: `for` has elapsed
	if s := h.state(); s != alert.StateFiring {
		t.Fatalf("after for: state %q, want firing", s)
	}
	if k := h.del.kinds(0); k != "initial" {
		t.Fatalf("events %q, want one initial", k)
	}
	e := h.del.last()
	if e.Severity != "P1" || e.Runbook != "High Memory Usage" || *e.Value != 90 || e.Summary != "memory at 90%" {
		t.Errorf("classification: %+v", e)
	}
	if !e.StartedAt.Equal(t0.Add(5*time.Minute)) || e.IncidentID != alert.IncidentID("web-1", e.Fingerprint, t0) {
		t.Errorf("started at %s, incident %s; want t0+5m and the id of the incident active since t0", e.StartedAt, e.IncidentID)
	}
	if want := t0.Add(15 * time.Minute); !e.ResponseDeadline.Equal(want) {
		t.Errorf("response deadline %s, want %s (P1: 15m after active)", e.ResponseDeadline, want)
	}
	if e.Escalation != "" || len(e.Evidence) != 1 {
		t.Errorf("escalation %q, evidence %d sections; want none and one", e.Escalation, len(e.Evidence))
	}
	for range 10 { // to t0+16m: past P1's first escalation step (15m)
		h.eval(f(91))
	}
	if k := h.del.kinds(1); k != "update" {
		t.Fatalf("events while firing %q, want one update: at the escalation step, P1's cadence is 30m", k)
	}
	if e := h.del.last(); e.Escalation != "engineering-manager" || *e.Value != 91 || e.Summary != "memory at 91%" || e.Update != 1 {
		t.Errorf("after 16m: escalation %q value %v summary %q update %d, want engineering-manager, 91, the summary expanded again, update 1", e.Escalation, *e.Value, e.Summary, e.Update)
	}
	if h.evidence.n != 1 {
		t.Errorf("evidence taken %d times, want once (when the alert started firing)", h.evidence.n)
	}
	h.eval(f(50))
	if k := h.del.kinds(2); k != "resolved" {
		t.Fatalf("after recovery: %q, want one resolved", k)
	}
	if e := h.del.last(); e.EndedAt == nil || !e.EndedAt.Equal(t0.Add(16*time.Minute)) || e.IncidentID != h.del.events[0].IncidentID {
		t.Errorf("resolution %+v: want it ended at t0+16m under the same incident", e)
	}
	h.eval(f(50))
	if n := h.del.len(); n != 3 {
		t.Errorf("%d events, want 3: initial, the escalation update and the resolution", n)
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
	if k := h2.del.kinds(0); k != "initial" {
		t.Fatalf("events %q, want the one initial", k)
	}
}

func TestLifecycleFlapping(t *testing.T) {
	h := newHarness(t, "0s")
	// Over the threshold for 4 of every 5 minutes: `for: 5m` never
	// elapses, so nothing is ever announced.
	for range 4 {
		for range 4 {
			h.eval(f(95))
		}
		h.eval(f(60))
		if s := h.state(); s != "" {
			t.Fatalf("a pending alert that ended should vanish, state %q", s)
		}
	}
	if n := h.del.len(); n != 0 {
		t.Fatalf("a flapping alert produced %d events", n)
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

// TestLifecycleRestartDuringFor: a pending alert keeps the progress of its
// `for` across a restart; the time the agent was down does not count
// (nobody watched), as Prometheus restores ALERTS_FOR_STATE.
func TestLifecycleRestartDuringFor(t *testing.T) {
	h := newHarness(t, "0s")
	for range 3 { // pending since t0, evaluated at 0, 1m, 2m; stopped at 3m
		h.eval(f(90))
	}
	h.restart(30 * time.Second)
	h.eval(f(90)) // t0+3m30s
	a, _ := h.only()
	if a.State != alert.StatePending {
		t.Fatalf("after restart: %q, want pending", a.State)
	}
	if want := t0.Add(30 * time.Second); !a.ActiveAt.Equal(want) {
		t.Fatalf("after restart active at %s, want %s: 3m of progress kept, the 30s down not counted", a.ActiveAt, want)
	}
	h.eval(f(90)) // t0+4m30s
	if s := h.state(); s != alert.StatePending {
		t.Fatalf("4m30s: %q, want still pending", s)
	}
	h.eval(f(90)) // t0+5m30s: 5m of watched time since t0
	if s := h.state(); s != alert.StateFiring {
		t.Fatalf("5m30s after the alert became pending, 30s of it down: %q, want firing", s)
	}
	// After an outage longer than the tolerance, `for` starts again.
	h2 := newHarness(t, "0s")
	for range 3 {
		h2.eval(f(90))
	}
	h2.restart(2 * time.Hour)
	if as := h2.tr.Alerts(); len(as) != 0 {
		t.Fatalf("a pending alert survived a 2h outage: %+v", as)
	}
}

// TestLifecycleRestartWhileFiring: a firing incident survives a restart
// with its id, evidence and cadence: no second initial.
func TestLifecycleRestartWhileFiring(t *testing.T) {
	h := newHarness(t, "0s")
	for range 6 {
		h.eval(f(90))
	}
	before := h.del.last()
	h.restart(2 * time.Minute)
	h.eval(f(90))
	a, _ := h.only()
	if a.State != alert.StateFiring || a.IncidentID != before.IncidentID || !a.FiredAt.Equal(*before.StartedAt) || a.Held {
		t.Fatalf("after restart the incident looks new or held: %+v, before %+v", a, before)
	}
	if h.evidence.n != 0 || len(a.Evidence) != 1 {
		t.Fatalf("evidence re-taken (%d) or lost (%d sections) across the restart", h.evidence.n, len(a.Evidence))
	}
	if n := h.del.len(); n != 1 {
		t.Fatalf("%d events, want only the first initial: %s", n, h.del.kinds(0))
	}
}

// TestLifecycleHeldUntilFresh: after a restart, a rule whose input has not
// been collected afresh is held: an absent series then is no evidence of
// recovery, neither for a firing nor for a pending alert.
func TestLifecycleHeldUntilFresh(t *testing.T) {
	for _, tc := range []struct {
		name  string
		evals int // before the restart
		want  alert.State
	}{
		{"firing", 6, alert.StateFiring},
		{"pending", 3, alert.StatePending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "0s")
			for range tc.evals {
				h.eval(f(90))
			}
			before, _ := h.only()
			h.restart(10 * time.Second)
			h.cold = true
			for i := range 4 { // the source has not run yet: no series
				h.eval(nil)
				a, ok := h.only()
				if !ok || a.State != tc.want || !a.Held || a.IncidentID != before.IncidentID && tc.want == alert.StateFiring {
					t.Fatalf("evaluation %d while the input is cold: %+v, want %s and held", i+1, a, tc.want)
				}
			}
			h.cold = false
			h.eval(f(90)) // fresh, and still over the threshold
			a, _ := h.only()
			if a.State == alert.StateResolved || a.Held {
				t.Fatalf("fresh data over the threshold: %+v", a)
			}
			if k := h.del.kinds(0); tc.want == alert.StateFiring && k != "initial" {
				t.Fatalf("events %q, want only the initial from before the restart", k)
			}
		})
	}
}

// TestLifecycleResolvedWhileStopped: an incident that recovered while the
// agent was down resolves exactly once, at the first fresh evaluation.
func TestLifecycleResolvedWhileStopped(t *testing.T) {
	h := newHarness(t, "0s")
	for range 6 {
		h.eval(f(90))
	}
	h.restart(5 * time.Minute) // to t0+11m, short of P1's 15m escalation
	h.cold = true
	h.eval(nil)
	if k := h.del.kinds(1); k != "" {
		t.Fatalf("while cold: %q, want nothing", k)
	}
	h.cold = false
	h.eval(f(40))
	if k := h.del.kinds(1); k != "resolved" {
		t.Fatalf("first fresh evaluation after restart: %q, want one resolution", k)
	}
	// Resolved incidents leave the state file after the retention.
	for range 17 {
		h.eval(f(40))
	}
	if as := h.tr.Alerts(); len(as) != 0 {
		t.Fatalf("resolved alert kept past the retention: %+v", as)
	}
	n := 0
	_ = h.st.Bucket(incident.Bucket).ForEach(func(_, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d incident records left in the state file", n)
	}
	if k := h.del.kinds(1); k != "resolved" {
		t.Fatalf("events after restart %q, want the one resolution", k)
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
	if k := h.del.kinds(1); k != "resolved" {
		t.Fatalf("alert of a removed rule: %q, want it resolved once", k)
	}
	if e := h.del.last(); e.Severity != "P1" {
		t.Fatalf("resolution %+v lost its severity", e)
	}
	h.eval(f(90))
	if k := h.del.kinds(1); k != "resolved" {
		t.Fatalf("events after the restart %q, want the resolution once", k)
	}
}

// TestLifecycleDeliveryFailureRetries: events delivery refused are offered
// again, with the same ids, at the next commit, and after a restart.
func TestLifecycleDeliveryFailureRetries(t *testing.T) {
	h := newHarness(t, "0s")
	for range 5 {
		h.eval(f(90))
	}
	h.del.fail = true
	h.eval(f(90)) // fires, but delivery refuses the initial event
	h.del.fail = false
	h.eval(f(90))
	if k := h.del.kinds(0); k != "initial" {
		t.Fatalf("after a refused hand-over: %q, want the initial event offered again", k)
	}
	h.del.fail = true
	h.eval(f(40)) // resolved, but delivery refuses
	h.del.fail = false
	h.restart(time.Minute) // the state file still says firing
	h.eval(f(40))
	if k := h.del.kinds(0); k != "initial resolved" {
		t.Fatalf("after a refused resolution and a restart: %q, want it handed on", k)
	}
}

// TestEventLabels: agent.labels reach every event, a rule's own label
// wins, and the incident (its id) does not change when they do.
func TestEventLabels(t *testing.T) {
	h := newHarness(t, "0s")
	for range 6 {
		h.eval(f(90))
	}
	before := h.del.last()
	h.tr.SetPolicies(alert.DefaultPolicies(), map[string]string{"role": "api", "severity": "P4"})
	a, _ := h.only()
	if a.Labels["role"] != "api" || a.Labels["severity"] != "P1" || a.Severity != alert.P1 {
		t.Errorf("labels %v severity %s; want role=api added and the rule's severity P1 kept", a.Labels, a.Severity)
	}
	if a.IncidentID != before.IncidentID || a.Fingerprint != before.Fingerprint {
		t.Errorf("incident changed when labels were added: %+v, before %+v", a, before)
	}
	if _, ok := before.Labels["role"]; ok {
		t.Errorf("label present before it was configured: %v", before.Labels)
	}
}

// TestNonFiniteValue: a NaN sample (an error ratio over zero requests)
// neither fails the hand-over nor the state file.
func TestNonFiniteValue(t *testing.T) {
	h := newHarness(t, "0s")
	h.rules = writeRules(t, h.dir, strings.ReplaceAll(strings.ReplaceAll(memRule, "%KEEP%", "0s"), "memory_used_percent > 80", "memory_used_percent / 0 * 0 != 1"))
	h.restart(0)
	for range 6 {
		h.eval(f(90))
	}
	if e := h.del.last(); e.Kind != alert.KindInitial || e.Value != nil {
		t.Fatalf("event %+v: want an initial without a value", e)
	}
	h.restart(time.Second)
	if a, _ := h.only(); a.State != alert.StateFiring || !math.IsNaN(a.Value) {
		t.Fatalf("after restart: %+v, want the firing incident with its NaN value", a)
	}
}
