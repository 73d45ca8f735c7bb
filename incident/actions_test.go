package incident_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// The tracker's side of automated actions, over the rule engine and a
// scripted executor, with the injected clock of the lifecycle tests (one
// evaluation per minute, HighMemory firing 5 minutes after the value
// crosses 80). What really runs (D-Bus restarts, commands) is tested with
// the real executor in actions/ and e2e/, and in the booted container in
// packaging/.

// scriptExec is an Executor whose result the test chooses; block, when
// set, holds every run until it is closed (or the run's context ends).
type scriptExec struct {
	mu     sync.Mutex
	calls  []string
	result func(a incident.Action) incident.Result
	block  chan struct{}
}

func (x *scriptExec) Execute(ctx context.Context, a incident.Action) incident.Result {
	x.mu.Lock()
	x.calls = append(x.calls, a.Name)
	block := x.block
	x.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return incident.Result{Err: ctx.Err()}
		}
	}
	if x.result != nil {
		return x.result(a)
	}
	return incident.Result{}
}

func (x *scriptExec) called() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return strings.Join(x.calls, " ")
}

// restartAction restarts app.service when HighMemory fires.
func restartAction(name string, mod func(*incident.Action)) incident.Action {
	a := incident.Action{
		Name: name, Match: map[string]string{"alertname": "HighMemory"},
		Type: alert.ActionRestartUnit, Unit: "app.service",
		MaxRuns: 2, Per: time.Hour, VerifyWithin: 3 * time.Minute, Timeout: time.Minute,
	}
	if mod != nil {
		mod(&a)
	}
	return a
}

func newActionHarness(t *testing.T, exec *scriptExec, actions ...incident.Action) *harness {
	t.Helper()
	h := newHarness(t, "0s")
	h.actions, h.exec = actions, exec
	h.tr.SetActions(actions, exec)
	return h
}

// fire evaluates 90 % six times: pending at t0, firing at t0+5m.
func (h *harness) fire() {
	h.t.Helper()
	for range 6 {
		h.eval(f(90))
	}
	if s := h.state(); s != alert.StateFiring {
		h.t.Fatalf("state %q after 5m over the threshold, want firing", s)
	}
}

// events returns the delivered events from index from.
func (d *recDelivery) from(i int) []alert.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]alert.Event(nil), d.events[i:]...)
}

func TestActionSucceeded(t *testing.T) {
	exec := &scriptExec{}
	h := newActionHarness(t, exec, restartAction("restart-app", nil))
	h.fire() // t0+5m: the initial event and the run, together
	if got := exec.called(); got != "restart-app" {
		t.Fatalf("runs %q, want one restart when the alert fires", got)
	}
	evs := h.del.from(0)
	if len(evs) != 1 || evs[0].Kind != alert.KindInitial || evs[0].Action == nil ||
		evs[0].Action.Outcome != alert.OutcomeRunning || evs[0].Action.Description != "restart of app.service" {
		t.Fatalf("want the initial event saying a restart of app.service is under way, got %+v", evs)
	}
	// Still firing for two evaluations: the action ran once, not per
	// evaluation; nothing is announced while it is verified.
	h.eval(f(90))
	h.eval(f(90))
	if got := exec.called(); got != "restart-app" {
		t.Errorf("runs %q while the alert still fired, want one", got)
	}
	if k := h.del.kinds(1); k != "" {
		t.Errorf("events while verifying %q, want none", k)
	}
	h.eval(f(50)) // t0+8m: resolved, 3m after the run ended (verify_within 3m)
	if k := h.del.kinds(1); k != "action resolved" {
		t.Fatalf("events %q, want the action's success, then the resolution", k)
	}
	evs = h.del.from(1)
	act, res := evs[0], evs[1]
	if act.Action.Outcome != alert.OutcomeSucceeded || act.Status != "resolved" || act.IncidentID != res.IncidentID ||
		!act.Action.StartedAt.Equal(t0.Add(5*time.Minute)) || !act.Action.VerifiedAt.Equal(t0.Add(8*time.Minute)) {
		t.Errorf("action event %+v %+v, want succeeded, started at t0+5m, verified at the resolution t0+8m", act, act.Action)
	}
	if act.ID != alert.EventID("web-1", act.Fingerprint, t0, alert.KindAction, 1) {
		t.Errorf("action event id %s is not the stable id of the incident's first action", act.ID)
	}
	if res.Action == nil || res.Action.Outcome != alert.OutcomeSucceeded || res.Action.Took() != 3*time.Minute {
		t.Errorf("resolved event's action %+v, want the restart that succeeded, 3m before", res.Action)
	}
	if res.Escalation != "" {
		t.Errorf("a success escalated: %q", res.Escalation)
	}
	if got := promtestutil.ToFloat64(mustCollector(t, h.reg, "tokpulse_action_runs_total", "restart-app", "succeeded")); got != 1 {
		t.Errorf("tokpulse_action_runs_total{succeeded} = %g, want 1", got)
	}
	a, _ := h.only()
	if len(a.Actions) != 1 || a.Actions[0].Outcome != alert.OutcomeSucceeded {
		t.Errorf("/api/v1/alerts shows actions %+v, want the one that succeeded", a.Actions)
	}
}

// mustCollector returns the sample of the metric with the given label
// values, as a collector promtestutil.ToFloat64 can read.
func mustCollector(t *testing.T, reg *prometheus.Registry, name string, values ...string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := len(m.GetLabel()) == len(values)
			for i, l := range m.GetLabel() {
				ok = ok && l.GetValue() == values[i]
			}
			if ok {
				v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, func() float64 { return v })
			}
		}
	}
	t.Fatalf("no %s%q in the registry", name, values)
	return nil
}

// TestActionNoEffectEscalates: the alert still fires verify_within after
// the run: no_effect, and the incident escalates one step at once (P1:
// engineering-manager, which its age would reach only at 15m), then
// follows its own clock (cto at 1h).
func TestActionNoEffectEscalates(t *testing.T) {
	exec := &scriptExec{}
	h := newActionHarness(t, exec, restartAction("restart-app", func(a *incident.Action) { a.VerifyWithin = 2 * time.Minute }))
	h.fire()
	h.eval(f(90)) // 6m
	if k := h.del.kinds(1); k != "" {
		t.Fatalf("events before verify_within passed: %q", k)
	}
	h.eval(f(90)) // 7m: the run ended at 5m, verify_within 2m
	if k := h.del.kinds(1); k != "action update" {
		t.Fatalf("events %q, want the action's no_effect, then the escalation's update", k)
	}
	evs := h.del.from(1)
	if evs[0].Action.Outcome != alert.OutcomeNoEffect || evs[0].Escalation != "engineering-manager" || evs[0].Status != "firing" {
		t.Errorf("action event: outcome %q escalation %q status %q, want no_effect, engineering-manager, firing", evs[0].Action.Outcome, evs[0].Escalation, evs[0].Status)
	}
	if evs[1].Escalation != "engineering-manager" || evs[1].Update != 1 {
		t.Errorf("update: escalation %q number %d, want engineering-manager, 1", evs[1].Escalation, evs[1].Update)
	}
	if a, _ := h.only(); a.Escalation != "engineering-manager" {
		t.Errorf("/api/v1/alerts escalation %q", a.Escalation)
	}
	n := h.del.len()
	for h.now.Before(t0.Add(61 * time.Minute)) {
		h.eval(f(90))
	}
	var steps []string
	for _, e := range h.del.from(n) {
		steps = append(steps, string(e.Kind)+":"+e.Escalation)
	}
	// 15m brings nothing new (the step was reached early); the cadence
	// (30m after the last update, at 37m) and cto (1h) do.
	if got := strings.Join(steps, " "); got != "update:engineering-manager update:cto" {
		t.Errorf("later events %q, want the 30m cadence's update, then cto at 1h", got)
	}
	if got := exec.called(); got != "restart-app" {
		t.Errorf("runs %q, want one", got)
	}
}

// TestActionFailed: the run itself fails (here: a command exiting 3):
// failed with the error, the exit status and the output, and an
// escalation.
func TestActionFailed(t *testing.T) {
	three := 3
	exec := &scriptExec{result: func(incident.Action) incident.Result {
		return incident.Result{Err: errors.New("flush-queue exited with status 3: queue locked"), ExitStatus: &three, Output: "stderr: queue locked"}
	}}
	h := newActionHarness(t, exec, incident.Action{
		Name: "flush", Match: map[string]string{"alertname": "HighMemory"}, Type: alert.ActionCommand,
		Command: []string{"/usr/local/bin/flush-queue", "--safe"}, MaxRuns: 1, Per: time.Hour, VerifyWithin: time.Minute, Timeout: time.Minute,
	})
	h.fire()
	h.eval(f(90))
	if k := h.del.kinds(0); k != "initial action update" {
		t.Fatalf("events %q, want initial, the failure, the escalation", k)
	}
	a := h.del.from(1)[0].Action
	if a.Outcome != alert.OutcomeFailed || !strings.Contains(a.Error, "status 3") || a.ExitStatus == nil || *a.ExitStatus != 3 ||
		a.Output != "stderr: queue locked" || a.Description != "run of /usr/local/bin/flush-queue --safe" {
		t.Errorf("failed action %+v", a)
	}
	if e := h.del.last(); e.Escalation != "engineering-manager" {
		t.Errorf("escalation %q after a failed action", e.Escalation)
	}
}

// TestActionBudget: max_runs 1 per 1h per alert. The second incident of
// the same alert within the hour, after a restart of the agent, is
// refused (rate_limited) and escalates; nothing runs. After the hour it
// runs again.
func TestActionBudget(t *testing.T) {
	exec := &scriptExec{}
	h := newActionHarness(t, exec, restartAction("restart-app", func(a *incident.Action) { a.MaxRuns = 1 }))
	h.fire()      // run at 5m
	h.eval(f(50)) // 6m: succeeded, resolved
	h.restart(time.Minute)
	n := h.del.len()
	h.fire() // second incident: pending at 8m, firing at 13m
	if k := h.del.kinds(n); k != "initial action update" {
		t.Fatalf("second incident within the hour: events %q, want initial, the refusal, the escalation", k)
	}
	evs := h.del.from(n)
	if a := evs[1].Action; a.Outcome != alert.OutcomeRateLimited || !strings.Contains(a.Reason, "max_runs 1 per 1h") || evs[1].Escalation != "engineering-manager" {
		t.Errorf("refusal %+v (escalation %q)", a, evs[1].Escalation)
	}
	if evs[0].Action != nil {
		t.Errorf("the initial event says an action is under way: %+v", evs[0].Action)
	}
	if got := exec.called(); got != "restart-app" {
		t.Errorf("runs %q, want only the first incident's", got)
	}
	if got := promtestutil.ToFloat64(mustCollector(t, h.reg, "tokpulse_action_runs_total", "restart-app", "rate_limited")); got != 1 {
		t.Errorf("tokpulse_action_runs_total{rate_limited} = %g", got)
	}
	st := h.tr.Actions()
	if len(st) != 1 || len(st[0].Budgets) != 1 || st[0].Budgets[0].Left != 0 || !st[0].Budgets[0].NextAt.Equal(t0.Add(65*time.Minute)) {
		t.Errorf("status %+v, want no run left for HighMemory until 1h after the run at 5m", st)
	}
	h.eval(f(50)) // resolves
	for h.now.Before(t0.Add(66 * time.Minute)) {
		h.eval(f(50))
	}
	h.fire() // a third incident, more than an hour after the run
	if got := exec.called(); got != "restart-app restart-app" {
		t.Errorf("runs %q, want a second once the hour has passed", got)
	}
	if st := h.tr.Actions(); len(st[0].Budgets) != 1 || st[0].Budgets[0].Left != 0 || st[0].Budgets[0].Used != 1 {
		t.Errorf("status %+v, want one run in the window", st)
	}
}

func TestActionDryRun(t *testing.T) {
	exec := &scriptExec{}
	h := newActionHarness(t, exec, restartAction("restart-app", func(a *incident.Action) { a.DryRun = true }))
	h.fire()
	if k := h.del.kinds(0); k != "initial action" {
		t.Fatalf("events %q, want initial and the dry run", k)
	}
	a := h.del.last().Action
	if a.Outcome != alert.OutcomeDryRun || !a.DryRun || !strings.Contains(a.Reason, "restart of app.service") || h.del.last().Escalation != "" {
		t.Errorf("dry run %+v", a)
	}
	if got := exec.called(); got != "" {
		t.Errorf("a dry run ran %q", got)
	}
	for range 5 {
		h.eval(f(90))
	}
	if k := h.del.kinds(2); k != "" {
		t.Errorf("events after the dry run %q, want none: it is reported once per incident", k)
	}
}

// TestActionAcrossRestart: the agent stops while a restart runs (its
// context cancelled, as at shutdown). The next start never runs it again
// for that incident; it verifies it from then on, and the resolution that
// follows makes it a success.
func TestActionAcrossRestart(t *testing.T) {
	exec := &scriptExec{block: make(chan struct{})}
	h := newActionHarness(t, exec, restartAction("restart-app", nil))
	ctx, cancel := context.WithCancel(context.Background())
	h.tr.Start(ctx)
	h.noWait = true
	h.fire()
	testutil.Eventually(t, 10*time.Second, "the restart to start", func() bool { return exec.called() != "" })
	if got := exec.called(); got != "restart-app" {
		t.Fatalf("runs %q", got)
	}
	cancel() // the agent stops; the run is cut short
	h.noWait = false
	h.restart(30 * time.Second)
	exec.block = nil
	h.eval(f(90))
	h.eval(f(50))
	if got := exec.called(); got != "restart-app" {
		t.Errorf("runs %q: the restart ran again after the agent's restart", got)
	}
	if k := h.del.kinds(1); k != "action resolved" {
		t.Fatalf("events after the restart %q, want the action's verdict and the resolution, no second initial", k)
	}
	if a := h.del.from(1)[0].Action; a.Outcome != alert.OutcomeSucceeded || !strings.Contains(a.Reason, "resolved") {
		t.Errorf("verdict %+v", a)
	}
}

// TestActionResolvedWaitsForRun: the alert resolves while the restart
// still runs; the resolution waits for the run, so that the receiver reads
// the action, then the resolution.
func TestActionResolvedWaitsForRun(t *testing.T) {
	block := make(chan struct{})
	exec := &scriptExec{block: block}
	h := newActionHarness(t, exec, restartAction("restart-app", nil))
	h.noWait = true
	h.fire()
	h.eval(f(50))
	if k := h.del.kinds(1); k != "" {
		t.Fatalf("events while the run is under way %q, want none", k)
	}
	close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.tr.WaitActions(ctx); err != nil {
		t.Fatal(err)
	}
	h.eval(f(50))
	if k := h.del.kinds(1); k != "action resolved" {
		t.Fatalf("events %q, want action then resolved", k)
	}
}

// TestActionsOneAtATime: two actions on one alert run one after the
// other, each once, in the order they are due; the second waits for the
// first's verdict. A match_re on another label narrows them.
func TestActionsOneAtATime(t *testing.T) {
	exec := &scriptExec{}
	other := restartAction("never", func(a *incident.Action) {
		a.MatchRE = map[string]*regexp.Regexp{"severity": regexp.MustCompile("^(?:P2|P3)$")}
	})
	first := restartAction("restart-db", func(a *incident.Action) { a.VerifyWithin = 2 * time.Minute })
	second := restartAction("restart-app", func(a *incident.Action) { a.After = time.Minute; a.VerifyWithin = 2 * time.Minute })
	h := newActionHarness(t, exec, other, second, first)
	h.fire()      // 5m: restart-db is due (after 0), restart-app not yet
	h.eval(f(90)) // 6m: restart-app is due, but restart-db is being verified
	h.eval(f(90)) // 7m: restart-db had no effect; restart-app starts
	if got := exec.called(); got != "restart-db restart-app" {
		t.Fatalf("runs %q, want restart-db, then restart-app after its verdict", got)
	}
	h.eval(f(50)) // 8m: resolved
	var outcomes []string
	for _, e := range h.del.from(1) {
		if e.Action != nil {
			outcomes = append(outcomes, string(e.Kind)+":"+e.Action.Name+":"+string(e.Action.Outcome))
		} else {
			outcomes = append(outcomes, string(e.Kind))
		}
	}
	if got := strings.Join(outcomes, " "); got != "action:restart-db:no_effect update action:restart-app:succeeded resolved:restart-app:succeeded" {
		t.Errorf("events %q", got)
	}
}
