package incident

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// Action is one guarded automated response (an entry of agent.yaml's
// "actions:"), as the tracker decides it: which alerts it answers, when,
// how often, and how its success is judged. What it runs is the
// Executor's business; Type, Unit and Command only describe it in events.
type Action struct {
	Name string
	// Match holds label values an alert must have; MatchRE regular
	// expressions its label values must match whole. Both must hold.
	Match   map[string]string
	MatchRE map[string]*regexp.Regexp
	// Type is alert.ActionRestartUnit (Unit) or alert.ActionCommand
	// (Command).
	Type    string
	Unit    string
	Command []string
	// After is how long the alert must have fired before the action runs.
	After time.Duration
	// MaxRuns runs at most per window Per, per action and alert
	// (fingerprint); a run beyond is refused as rate_limited.
	MaxRuns int
	Per     time.Duration
	// VerifyWithin: the action succeeded when the alert resolves within
	// this time after the run ended.
	VerifyWithin time.Duration
	// Timeout bounds the run (the restart job, the command).
	Timeout time.Duration
	// DryRun records what would run and runs nothing.
	DryRun bool
}

// Matches reports whether an alert with labels l is one the action
// answers.
func (a *Action) Matches(l map[string]string) bool {
	return matchAll(a.matchers(), func(k string) string { return l[k] })
}

// labelMatcher is one condition of an action on one label.
type labelMatcher struct {
	name, value string
	re          *regexp.Regexp
}

// matchers returns a's conditions as a list, equality first, so that the
// tracker tests them without iterating maps at every evaluation.
func (a *Action) matchers() []labelMatcher {
	out := make([]labelMatcher, 0, len(a.Match)+len(a.MatchRE))
	for _, k := range slices.Sorted(maps.Keys(a.Match)) {
		out = append(out, labelMatcher{name: k, value: a.Match[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(a.MatchRE)) {
		out = append(out, labelMatcher{name: k, re: a.MatchRE[k]})
	}
	return out
}

func matchAll(ms []labelMatcher, get func(string) string) bool {
	for _, m := range ms {
		v := get(m.name)
		if m.re != nil && !m.re.MatchString(v) || m.re == nil && v != m.value {
			return false
		}
	}
	return true
}

// Description says what the action runs: "restart of tokpulse.service".
func (a *Action) Description() string { return alert.DescribeAction(a.Type, a.Unit, a.Command) }

// Executor runs actions. The tracker decides whether and when; the
// executor only runs, within ctx (whose deadline is the action's
// timeout), and says how it went. It is called from its own goroutine,
// never under the tracker's lock.
type Executor interface {
	Execute(ctx context.Context, a Action) Result
}

// Result is what running an action gave.
type Result struct {
	// Err is nil when the action ran and succeeded: the restart job
	// finished "done", the command exited 0. Otherwise it says what
	// happened in words an operator can act on.
	Err error
	// ExitStatus is the command's exit status, when it exited.
	ExitStatus *int
	// Output is an excerpt of what the command printed, redacted.
	Output string
}

// ActionsBucket is the state file bucket of the actions' budgets (the
// runs per action and alert within the window) and of each action's last
// run. Incident records keep the runs of each incident.
const ActionsBucket = "incident_actions"

// The states of one run of an action on an incident.
const (
	runRunning   = "running"   // started, result not in yet
	runVerifying = "verifying" // ran fine; waiting for the alert to resolve
	runDone      = "done"      // outcome known
)

// actionRun is one action on one incident, kept in the incident's record:
// a restart of the agent never runs it again for that incident.
type actionRun struct {
	alert.Action
	// Seq numbers the incident's runs from 1; it makes the id of the
	// run's event.
	Seq   int    `json:"seq"`
	State string `json:"state"`
	// VerifyWithin is the action's, kept with the run so that a reload
	// changing the action does not change a verification under way.
	VerifyWithin time.Duration `json:"verify_within"`
	// Reported: the run's action event was produced.
	Reported bool `json:"reported,omitempty"`
}

// budget is one action's runs for one alert within its window.
type budget struct {
	Action      string            `json:"action"`
	Fingerprint string            `json:"fingerprint"`
	AlertName   string            `json:"alertname"`
	Labels      map[string]string `json:"labels"`
	Runs        []time.Time       `json:"runs"`
}

func budgetKey(action, fp string) string { return "budget/" + action + "/" + fp }
func lastRunKey(action string) string    { return "last/" + action }

// actionState is the tracker's part that concerns actions.
type actionState struct {
	actions []Action
	// matchers are each action's conditions (Action.matchers).
	matchers [][]labelMatcher
	exec     Executor
	// ctx bounds every run; cancelled when the agent stops.
	ctx context.Context

	budgets map[string]*budget   // by budgetKey
	lastRun map[string]time.Time // by action name; real runs only
	// dirtyKeys are the keys of ActionsBucket to write (or delete).
	dirtyKeys map[string]bool
	// launches are runs decided and recorded but not started: they start
	// once the record saying so is in the state file, so that a crash
	// never leaves a run the next start does not know about.
	launches []launch
	// counts are tokpulse_action_runs_total by action and outcome.
	counts map[[2]string]float64

	active  sync.WaitGroup
	resMu   sync.Mutex
	results []runResult
}

// launch is a run to start.
type launch struct {
	key    string // the incident's key
	seq    int
	action Action
}

// runResult is a finished run, handed from its goroutine to Commit.
type runResult struct {
	key string
	seq int
	res Result
	// took is how long the run took, by the wall clock.
	took time.Duration
}

// SetActions replaces the configured actions and the executor that runs
// them (at start and on reload). Runs under way go on: their incidents
// keep them, and their verification does not depend on the configuration.
func (t *Tracker) SetActions(actions []Action, exec Executor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.act.actions, t.act.exec = slices.Clone(actions), exec
	t.act.matchers = make([][]labelMatcher, len(actions))
	for i := range actions {
		t.act.matchers[i] = actions[i].matchers()
	}
}

// Start gives the tracker the context its actions run in; cancelling it
// (the agent stopping) kills commands under way. Without Start, actions
// run under context.Background.
func (t *Tracker) Start(ctx context.Context) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.act.ctx = ctx
}

// WaitActions waits until no action runs, or ctx ends. Their results are
// taken in at the next Commit.
func (t *Tracker) WaitActions(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		t.act.active.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// advanceActions takes in the runs that finished, judges the runs being
// verified (the alert resolved in time: succeeded; verify_within passed:
// no_effect) and decides the runs now due on firing incidents.
func (t *Tracker) advanceActions(ts time.Time) {
	t.takeResults()
	t.pruneBudgets(ts)
	t.each(func(inc *incident) {
		for i := range inc.Actions {
			run := &inc.Actions[i]
			if run.State != runVerifying {
				continue
			}
			deadline := run.EndedAt.Add(run.VerifyWithin)
			switch {
			case inc.State == alert.StateResolved && !inc.ResolvedAt.After(deadline):
				run.VerifiedAt = inc.ResolvedAt
				t.finish(inc, run, alert.OutcomeSucceeded, fmt.Sprintf("the alert resolved %s after the %s started", run.Took(), run.Description))
			case inc.State == alert.StateResolved || !ts.Before(deadline):
				run.VerifiedAt = deadline
				t.finish(inc, run, alert.OutcomeNoEffect, fmt.Sprintf("the alert still fired %s after the %s ended (verify_within)", model.Duration(run.VerifyWithin), run.Description))
			}
		}
		if inc.State == alert.StateFiring && !inc.held && len(t.act.actions) > 0 {
			t.decide(inc, ts)
		}
	})
}

// takeResults applies the results of finished runs to their incidents.
func (t *Tracker) takeResults() {
	t.act.resMu.Lock()
	results := t.act.results
	t.act.results = nil
	t.act.resMu.Unlock()
	for _, r := range results {
		inc := t.byKey(r.key)
		if inc == nil {
			continue
		}
		run := inc.run(r.seq)
		if run == nil || run.State != runRunning {
			continue
		}
		// To the second, as events show it: the verdict's deadline then
		// does not hang on the microseconds a run took.
		run.EndedAt = run.StartedAt.Add(r.took.Round(time.Second))
		run.Output, run.ExitStatus = r.res.Output, r.res.ExitStatus
		inc.dirty = true
		if r.res.Err != nil {
			run.Error = r.res.Err.Error()
			run.VerifiedAt = run.EndedAt
			t.finish(inc, run, alert.OutcomeFailed, "the "+run.Description+" failed")
			continue
		}
		run.State = runVerifying
		t.logger.Info("Automated action ran; verifying that the alert resolves", "action", run.Name, "what", run.Description,
			"alertname", inc.AlertName, "incident_id", inc.IncidentID, "took", r.took.Round(time.Millisecond), "verify_within", run.VerifyWithin)
	}
}

// decide starts the first due action that has not run on inc yet, unless
// one is under way: the actions of one incident run one at a time, each
// once, so that "restart the database, then the application" happens in
// that order (by their after:) and the second waits for the first's
// verdict.
func (t *Tracker) decide(inc *incident, ts time.Time) {
	for _, run := range inc.Actions {
		if run.State != runDone {
			return
		}
	}
	fired := inc.FiredAt
	if fired.IsZero() {
		fired = inc.ActiveAt
	}
	// The labels events carry: the alert's, then agent.labels.
	get := func(k string) string {
		if v, ok := inc.Labels[k]; ok {
			return v
		}
		return t.opts.Labels[k]
	}
	for i := range t.act.actions {
		// Cheapest first: this runs for every firing alert at every
		// evaluation.
		a := &t.act.actions[i]
		if ts.Sub(fired) < a.After || inc.ran(a.Name) || !matchAll(t.act.matchers[i], get) {
			continue
		}
		t.begin(inc, a, ts)
		return
	}
}

// begin records the run of a on inc at ts: refused when the budget is
// spent, a dry run, or a real run to launch after the next save.
func (t *Tracker) begin(inc *incident, a *Action, ts time.Time) {
	run := actionRun{
		Action: alert.Action{
			Name: a.Name, Type: a.Type, Unit: a.Unit, Command: slices.Clone(a.Command),
			Description: a.Description(), DryRun: a.DryRun, StartedAt: ts, Outcome: alert.OutcomeRunning,
		},
		Seq: len(inc.Actions) + 1, State: runRunning, VerifyWithin: a.VerifyWithin,
	}
	inc.Actions = append(inc.Actions, run)
	inc.dirty = true
	r := &inc.Actions[len(inc.Actions)-1]
	key := budgetKey(a.Name, inc.Fingerprint)
	b := t.act.budgets[key]
	if b == nil {
		b = &budget{Action: a.Name, Fingerprint: inc.Fingerprint, AlertName: inc.AlertName, Labels: inc.Labels}
		t.act.budgets[key] = b
	}
	if len(b.Runs) >= a.MaxRuns {
		r.EndedAt, r.VerifiedAt = ts, ts
		next := b.Runs[len(b.Runs)-a.MaxRuns].Add(a.Per)
		t.finish(inc, r, alert.OutcomeRateLimited, fmt.Sprintf("max_runs %d per %s already ran for this alert (last at %s); the next is allowed at %s",
			a.MaxRuns, model.Duration(a.Per), b.Runs[len(b.Runs)-1].UTC().Format(time.RFC3339), next.UTC().Format(time.RFC3339)))
		return
	}
	b.Runs = append(b.Runs, ts)
	t.act.dirtyKeys[key] = true
	if a.DryRun {
		r.EndedAt, r.VerifiedAt = ts, ts
		t.finish(inc, r, alert.OutcomeDryRun, "would have started the "+r.Description+"; nothing ran")
		return
	}
	t.act.lastRun[a.Name] = ts
	t.act.dirtyKeys[lastRunKey(a.Name)] = true
	t.act.launches = append(t.act.launches, launch{key: inc.key(), seq: r.Seq, action: *a})
	t.logger.Info("Starting an automated action", "action", a.Name, "what", r.Description,
		"alertname", inc.AlertName, "incident_id", inc.IncidentID, "fingerprint", inc.Fingerprint)
}

// finish gives run its outcome.
func (t *Tracker) finish(inc *incident, run *actionRun, o alert.Outcome, reason string) {
	run.State, run.Outcome, run.Reason = runDone, o, reason
	inc.dirty = true
	t.act.counts[[2]string{run.Name, string(o)}]++
	level := slog.LevelInfo
	if o.Escalates() {
		level = slog.LevelWarn
	}
	t.logger.Log(context.Background(), level, "Automated action "+string(o), "action", run.Name, "what", run.Description,
		"alertname", inc.AlertName, "incident_id", inc.IncidentID, "reason", reason, "err", run.Error)
}

// launchDecided starts the runs recorded by the last save.
func (t *Tracker) launchDecided() {
	ctx := t.act.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	for _, l := range t.act.launches {
		if t.act.exec == nil {
			t.act.resMu.Lock()
			t.act.results = append(t.act.results, runResult{key: l.key, seq: l.seq,
				res: Result{Err: fmt.Errorf("this agent has no executor for actions")}})
			t.act.resMu.Unlock()
			continue
		}
		exec := t.act.exec
		t.act.active.Add(1)
		go func() {
			defer t.act.active.Done()
			rctx, cancel := context.WithTimeout(ctx, l.action.Timeout)
			start := time.Now()
			res := exec.Execute(rctx, l.action)
			took := time.Since(start)
			cancel()
			if ctx.Err() != nil {
				// The agent is stopping and cut the run short: its result
				// says nothing about the action. The record still says
				// "running"; the next start verifies it from then on.
				return
			}
			t.act.resMu.Lock()
			t.act.results = append(t.act.results, runResult{key: l.key, seq: l.seq, res: res, took: took})
			t.act.resMu.Unlock()
		}()
	}
	t.act.launches = nil
}

// pruneBudgets forgets runs that left their action's window, and the
// budgets of actions no longer configured once their last run is a day
// old.
func (t *Tracker) pruneBudgets(ts time.Time) {
	per := map[string]time.Duration{}
	for _, a := range t.act.actions {
		per[a.Name] = a.Per
	}
	for key, b := range t.act.budgets {
		w, ok := per[b.Action]
		if !ok {
			w = 24 * time.Hour
		}
		i := 0
		for i < len(b.Runs) && !b.Runs[i].After(ts.Add(-w)) {
			i++
		}
		if i > 0 {
			b.Runs = b.Runs[i:]
			t.act.dirtyKeys[key] = true
		}
		if len(b.Runs) == 0 {
			delete(t.act.budgets, key)
			t.act.dirtyKeys[key] = true
		}
	}
}

// actionEvents appends the events of inc's runs whose outcome is known
// and not yet reported, escalating a firing incident one step for each
// run that failed, had no effect or was refused.
func (t *Tracker) actionEvents(inc *incident, ts time.Time) {
	pol := t.opts.Policies.For(inc.Severity)
	for i := range inc.Actions {
		run := &inc.Actions[i]
		if run.State != runDone || run.Reported {
			continue
		}
		if run.Outcome.Escalates() && inc.State == alert.StateFiring {
			level, _ := pol.EscalationLevel(inc.ActiveAt, ts, inc.EscalationFloor)
			inc.EscalationFloor = level + 1
		}
		ev := t.event(alert.KindAction, inc, ts, run.Seq)
		_, ev.Escalation = pol.EscalationLevel(inc.ActiveAt, ts, inc.EscalationFloor)
		if inc.State == alert.StateResolved {
			ev.Status = "resolved"
			ev.Escalation = inc.Escalation
		}
		a := run.Action
		ev.Action = &a
		run.Reported, inc.dirty = true, true
		t.outgoing = append(t.outgoing, ev)
	}
}

// running returns the run under way on inc, if any.
func (inc *incident) running() *alert.Action {
	for i := range inc.Actions {
		if inc.Actions[i].State == runRunning {
			a := inc.Actions[i].Action
			return &a
		}
	}
	return nil
}

// succeeded returns the last run that succeeded on inc, if any.
func (inc *incident) succeeded() *alert.Action {
	for i := len(inc.Actions) - 1; i >= 0; i-- {
		if inc.Actions[i].Outcome == alert.OutcomeSucceeded {
			a := inc.Actions[i].Action
			return &a
		}
	}
	return nil
}

// inFlight reports whether a run on inc has not returned yet: the
// incident's resolution waits for it, so that its events come in order
// (action, then resolved).
func (inc *incident) inFlight() bool {
	for _, r := range inc.Actions {
		if r.State == runRunning {
			return true
		}
	}
	return false
}

func (inc *incident) ran(action string) bool {
	for _, r := range inc.Actions {
		if r.Name == action {
			return true
		}
	}
	return false
}

func (inc *incident) run(seq int) *actionRun {
	for i := range inc.Actions {
		if inc.Actions[i].Seq == seq {
			return &inc.Actions[i]
		}
	}
	return nil
}

func (t *Tracker) byKey(key string) *incident {
	var found *incident
	t.each(func(inc *incident) {
		if inc.key() == key {
			found = inc
		}
	})
	return found
}

// ActionStatus is one configured action as `tokpulse-agent status` and
// /api/v1/status show it: what it does and how much of its budget is
// left.
type ActionStatus struct {
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Description string            `json:"description"`
	Match       map[string]string `json:"match,omitempty"`
	MatchRE     map[string]string `json:"match_re,omitempty"`
	After       string            `json:"after"`
	MaxRuns     int               `json:"max_runs"`
	Per         string            `json:"per"`
	// VerifyWithin and DryRun as configured.
	VerifyWithin string `json:"verify_within"`
	DryRun       bool   `json:"dry_run,omitempty"`
	// LastRun is when it last really ran, on any alert.
	LastRun time.Time `json:"last_run,omitzero"`
	// Budgets lists the alerts for which it ran within the window; every
	// other alert has all max_runs left.
	Budgets []ActionBudget `json:"budgets,omitempty"`
}

// ActionBudget is an action's budget for one alert.
type ActionBudget struct {
	Fingerprint string            `json:"fingerprint"`
	AlertName   string            `json:"alertname"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Used runs are within the window, Left may still run.
	Used int `json:"runs_in_window"`
	Left int `json:"runs_left"`
	// NextAt is when a run leaves the window (and one more is allowed),
	// when none is left.
	NextAt time.Time `json:"next_run_allowed_at,omitzero"`
}

// Actions returns the configured actions with their budgets, in the
// configuration's order.
func (t *Tracker) Actions() []ActionStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.opts.Now()
	out := []ActionStatus{}
	for _, a := range t.act.actions {
		st := ActionStatus{
			Name: a.Name, Type: a.Type, Description: a.Description(), Match: maps.Clone(a.Match),
			After: model.Duration(a.After).String(), MaxRuns: a.MaxRuns, Per: model.Duration(a.Per).String(),
			VerifyWithin: model.Duration(a.VerifyWithin).String(), DryRun: a.DryRun, LastRun: t.act.lastRun[a.Name],
		}
		if len(a.MatchRE) > 0 {
			st.MatchRE = map[string]string{}
			for k, re := range a.MatchRE {
				st.MatchRE[k] = strings.TrimSuffix(strings.TrimPrefix(re.String(), "^(?:"), ")$")
			}
		}
		for _, b := range t.act.budgets {
			if b.Action != a.Name {
				continue
			}
			used := 0
			var oldest time.Time
			for _, r := range b.Runs {
				if r.After(now.Add(-a.Per)) {
					if used == 0 {
						oldest = r
					}
					used++
				}
			}
			if used == 0 {
				continue
			}
			ab := ActionBudget{Fingerprint: b.Fingerprint, AlertName: b.AlertName, Labels: b.Labels, Used: used, Left: max(a.MaxRuns-used, 0)}
			if ab.Left == 0 {
				ab.NextAt = oldest.Add(a.Per)
			}
			st.Budgets = append(st.Budgets, ab)
		}
		sort.Slice(st.Budgets, func(i, j int) bool {
			x, y := st.Budgets[i], st.Budgets[j]
			if x.AlertName != y.AlertName {
				return x.AlertName < y.AlertName
			}
			return x.Fingerprint < y.Fingerprint
		})
		out = append(out, st)
	}
	return out
}
