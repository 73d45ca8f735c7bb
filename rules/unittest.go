package rules

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/rules/memstore"
)

// TestHarness evaluates rule files over the series a rule unit test
// gives, with the daemon's own parts: the loader (severity requirement
// included), the series store, the promql engine and the alert
// lifecycle. It is the seam between package promtest, which owns
// promtool's test file format, flags and output, and the evaluation,
// which this package owns; it is kept narrow so that the lifecycle can
// change underneath it. One harness serves one test group.
type TestHarness struct {
	groups  []*Group
	store   *memstore.Store
	engine  *promql.Engine
	query   template.QueryFunc
	env     templateEnv
	logger  *slog.Logger
	tracker *incident.Tracker
	eval    *evaluator
	now     time.Time
}

// TestHarnessOptions configure a TestHarness.
type TestHarnessOptions struct {
	// RuleFiles are read as they are (globs are the caller's to expand).
	RuleFiles []string
	Load      LoadOptions
	// EvalInterval is the step of subqueries that give none, as
	// promtool's evaluation_interval.
	EvalInterval time.Duration
	// ExternalLabels and ExternalURL are $externalLabels and
	// $externalURL in templates.
	ExternalLabels map[string]string
	ExternalURL    string
}

// NewTestHarness loads the rule files. The problems of a file come back
// as promtool's loader words them: "file: line:column: ...".
func NewTestHarness(opts TestHarnessOptions) (*TestHarness, []error) {
	logger := slog.New(slog.DiscardHandler)
	h := &TestHarness{
		// A window of 0 keeps every sample: a test reads all it wrote.
		store:  memstore.New(0, 1<<30),
		engine: newEngine(logger, opts.EvalInterval),
		env:    templateEnv{labels: opts.ExternalLabels, url: opts.ExternalURL},
		logger: logger,
	}
	if h.env.labels == nil {
		h.env.labels = map[string]string{}
	}
	h.query = queryFunc(h.engine, h.store)
	var errs []error
	for _, f := range opts.RuleFiles {
		gs, probs := ParseFile(f, opts.Load, logger)
		for _, p := range probs {
			errs = append(errs, fmt.Errorf("%s: %w", f, p))
		}
		h.groups = append(h.groups, gs...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	// The daemon's own incident tracker, in memory: the same `for` and
	// keep_firing_for semantics the running agent applies.
	tr, err := incident.New(incident.Options{Logger: logger, Policies: alert.DefaultPolicies(), Now: func() time.Time { return h.now }})
	if err != nil {
		return nil, []error{err}
	}
	var infos []alert.Rule
	for _, g := range h.groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				infos = append(infos, r.info())
			}
		}
	}
	tr.SetRules(infos)
	h.tracker = tr
	h.eval = &evaluator{query: h.query, store: h.store, env: h.env, tracker: tr, logger: logger}
	return h, nil
}

// OrderGroups puts the groups named in order first, in that order, and
// the others after them as they were loaded (promtool's group_eval_order).
func (h *TestHarness) OrderGroups(order []string) {
	rank := map[string]int{}
	for i, g := range order {
		rank[g] = i
	}
	sort.SliceStable(h.groups, func(i, j int) bool {
		oi, iok := rank[h.groups[i].Name]
		oj, jok := rank[h.groups[j].Name]
		switch {
		case iok && jok:
			return oi < oj
		case iok != jok:
			return iok
		}
		return false
	})
}

// Append adds one input sample; a staleness marker is a value like any.
func (h *TestHarness) Append(lset labels.Labels, t time.Time, v float64) {
	h.store.Append(lset, t, v)
}

// RuleError is the failure of one rule in one evaluation.
type RuleError struct {
	Rule string
	Err  error
}

// Eval evaluates every group at ts, in order, as the daemon does once per
// interval, and returns the rules that failed.
func (h *TestHarness) Eval(ctx context.Context, ts time.Time) []RuleError {
	h.now = ts
	var errs []RuleError
	for _, g := range h.groups {
		for _, r := range g.Rules {
			if err := h.eval.evalRule(ctx, g, r, ts); err != nil {
				errs = append(errs, RuleError{Rule: r.Name(), Err: err})
			}
		}
	}
	if err := h.tracker.Commit(ctx, ts); err != nil {
		errs = append(errs, RuleError{Err: err})
	}
	return errs
}

// TestAlert is a firing alert as a unit test compares it.
type TestAlert struct {
	Labels, Annotations labels.Labels
}

// Firing returns the firing alerts of every rule named alertname, in
// every group.
func (h *TestHarness) Firing(alertname string) []TestAlert {
	var out []TestAlert
	for _, a := range h.tracker.Alerts() {
		if a.Name == alertname && a.State == alert.StateFiring {
			out = append(out, TestAlert{labels.FromMap(a.Labels), labels.FromMap(a.Annotations)})
		}
	}
	return out
}

// Query evaluates an instant query at ts over the series and everything
// the rules recorded.
func (h *TestHarness) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	return h.query(ctx, expr, ts)
}

// QueryRange evaluates expr as an instant query that returns a matrix
// (promtool's --debug dump of every series).
func (h *TestHarness) QueryRange(ctx context.Context, expr string, ts time.Time) (promql.Matrix, error) {
	q, err := h.engine.NewInstantQuery(ctx, h.store, nil, expr, ts)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	m, ok := res.Value.(promql.Matrix)
	if !ok {
		return nil, fmt.Errorf("got a %s, not a matrix", res.Value.Type())
	}
	return m, nil
}
