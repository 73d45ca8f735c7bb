// Package rules evaluates Prometheus alerting and recording rules on the
// host. The agent gathers its own registry every interval into a bounded
// in-memory Store; the Manager evaluates the loaded rule files over it with
// Prometheus' promql engine. Recording rules write back into the store;
// each alerting rule's result (its alerts' label sets, annotations and
// values) goes to a Tracker — the incident tracker, which owns what happens
// to every alert over time — and the pending and firing alerts it returns
// are written back as the ALERTS and ALERTS_FOR_STATE series, as
// Prometheus does, so that rules can read them.
//
// A rule whose input has not been collected afresh since the agent started
// or reloaded (a probe or check that has not run yet) is evaluated as
// unknown: the tracker holds its alerts where they are, because an absent
// series is then no evidence of recovery.
package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/rules/memstore"
)

// LookbackDelta is how long a series' last sample stays current, as in
// Prometheus; the engine and the store must agree on it.
const LookbackDelta = memstore.LookbackDelta

// The series Prometheus writes for alerts: ALERTS{alertstate, …} 1 for every
// pending or firing alert, and ALERTS_FOR_STATE{…} with the unixtime at
// which it became active.
const (
	AlertsMetric         = "ALERTS"
	AlertsForStateMetric = "ALERTS_FOR_STATE"
	alertStateLabel      = "alertstate"
)

// Tracker receives every alerting rule's evaluation and owns its alerts'
// life (incident.Tracker). Observe returns the rule's pending and firing
// alerts, which the engine writes as ALERTS series.
type Tracker interface {
	SetRules(rules []alert.Rule)
	Observe(ts time.Time, r alert.Rule, samples []alert.Sample, known bool) []alert.Active
}

// Freshness returns the metric names whose source has not completed a run
// since the agent started or reloaded. A rule that reads one is unknown.
type Freshness func() map[string]bool

// Options configure a Manager.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the engine's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Tracker receives the alerting rules' results; required.
	Tracker Tracker
	// Freshness tells which metric names are not yet fresh; nil means
	// every name is.
	Freshness Freshness
	// Interval is the evaluation interval (agent.interval); it sizes the
	// store's margin.
	Interval time.Duration
	// MaxSeries caps the store (DefaultMaxSeries when 0).
	MaxSeries int
	// ExternalLabels and ExternalURL are $externalLabels and $externalURL
	// in templates.
	ExternalLabels map[string]string
	ExternalURL    string
}

// RuleSet is a parsed and validated set of rule files, ready to be swapped
// in; building one has no effect on the running rules.
type RuleSet struct {
	Groups []*Group
	Files  []string
	// data holds each file's content as loaded.
	data map[string][]byte
	// retention is what the rules read from the store, and for how long.
	retention Retention
}

// Retention returns what the rules of the set read from the series store.
func (rs *RuleSet) Retention() Retention { return rs.retention }

// Sources returns each rule file's content as it was loaded (to keep a
// copy of a configuration that worked).
func (rs *RuleSet) Sources() map[string][]byte { return rs.data }

// Rules counts the rules of the set.
func (rs *RuleSet) Rules() int {
	n := 0
	for _, g := range rs.Groups {
		n += len(g.Rules)
	}
	return n
}

// Load parses and validates every rule file the globs match into a
// RuleSet; opts.Pack serves the "builtin:" ones. The error lists every
// problem of every file, each as "file:line: ...".
func Load(globs []string, opts LoadOptions, logger *slog.Logger) (*RuleSet, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	groups, files, data, err := loadFiles(globs, opts, logger)
	if err != nil {
		return nil, err
	}
	for _, g := range UnmatchedGlobs(globs, opts.Pack) {
		// An empty drop-in directory is normal; a missing one is a typo.
		if GlobDirMissing(g) {
			logger.Warn("A rule_files glob names a directory that does not exist; no rules are loaded from it", "glob", g)
		} else {
			logger.Debug("A rule_files glob matches no file", "glob", g)
		}
	}
	rs := &RuleSet{Groups: groups, Files: files, data: data}
	// A rule reading a recorded series reads what its recording rule
	// reads. The tracker, not the store, keeps time for `for` and
	// keep_firing_for: they add nothing to the store's retention.
	recorded := map[string]*Rule{}
	for _, g := range groups {
		for _, r := range g.Rules {
			rs.retention.merge(r.retention)
			if r.Record != "" {
				recorded[r.Record] = r
			}
		}
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			r.deps, r.anyDep, r.hasRange = resolveDeps(r, recorded)
		}
	}
	return rs, nil
}

// resolveDeps replaces recorded names among r's dependencies by what
// their recording rules read, transitively.
func resolveDeps(r *Rule, recorded map[string]*Rule) ([]string, bool, bool) {
	var out []string
	anyDep, hasRange := r.anyDep, r.hasRange
	seen := map[string]bool{}
	var walk func(names []string)
	walk = func(names []string) {
		for _, n := range names {
			if seen[n] {
				continue
			}
			seen[n] = true
			if rec, ok := recorded[n]; ok && rec != r {
				anyDep = anyDep || rec.anyDep
				hasRange = hasRange || rec.hasRange
				walk(rec.deps)
				continue
			}
			if n == AlertsMetric || n == AlertsForStateMetric {
				continue // the tracker's own state: always known
			}
			out = append(out, n)
		}
	}
	walk(r.deps)
	slices.Sort(out)
	return out, anyDep, hasRange
}

// Manager evaluates the loaded rules over the series store. Ingest and
// Evaluate are called from one goroutine (the agent's gather loop); Files,
// Swap and the metrics may be called concurrently.
type Manager struct {
	opts   Options
	logger *slog.Logger
	engine *promql.Engine
	store  *memstore.Store
	env    templateEnv

	mu    sync.Mutex
	rules *RuleSet
	// readsMemo holds Reads' answers for the rules in force (Swap resets
	// it): every gather asks about every family's name, and each answer
	// walks all of the rules' selectors.
	readsMemo map[string]bool
	lastEval  map[*Group]time.Time
	// gone are the series of rules removed by the last Swap, marked stale
	// at the next evaluation.
	gone []labels.Labels

	// Freshness bookkeeping: firstEval is the first evaluation; cold the
	// names unknown at the last one; warmAt when each name that was
	// unknown became known.
	firstEval time.Time
	cold      map[string]bool
	warmAt    map[string]time.Time

	m *metrics
}

// NewManager returns a Manager with no rules; call Swap.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	m := &Manager{
		opts:      opts,
		logger:    opts.Logger,
		engine:    newEngine(opts.Logger, opts.Interval),
		store:     memstore.New(LookbackDelta, opts.MaxSeries),
		rules:     &RuleSet{},
		readsMemo: map[string]bool{},
		lastEval:  map[*Group]time.Time{},
		cold:      map[string]bool{},
		warmAt:    map[string]time.Time{},
	}
	m.env.labels = opts.ExternalLabels
	if m.env.labels == nil {
		m.env.labels = map[string]string{}
	}
	m.env.url = opts.ExternalURL
	if u, err := url.Parse(opts.ExternalURL); err == nil && opts.ExternalURL != "" {
		m.env.parsedURL = u
	}
	m.m = newMetrics(m)
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.m)
	}
	return m
}

func newEngine(logger *slog.Logger, interval time.Duration) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger:               logger,
		MaxSamples:           10_000_000,
		Timeout:              max(interval, 10*time.Second),
		LookbackDelta:        LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return interval.Milliseconds()
		},
		// Each rule's expression is parsed once (parsecache.go).
		Parser: newParseCache(newParser()),
	})
}

// Store returns the series store (for benchmarks and tests).
func (m *Manager) Store() *memstore.Store { return m.store }

// Swap makes rs the running rules, evaluated every interval. Rules keep
// what they wrote last (for staleness) across the swap by group and name;
// the tracker learns the new set, and resolves the alerts of rules that
// are gone. It cannot fail: everything that can was checked by Load.
func (m *Manager) Swap(rs *RuleSet, interval time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := map[string]*Rule{}
	for _, g := range m.rules.Groups {
		for _, r := range g.Rules {
			old[r.key()] = r
		}
	}
	var infos []alert.Rule
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			if o, ok := old[r.key()]; ok {
				r.written, r.annotations = o.written, o.annotations
			}
			if r.Alert != "" {
				infos = append(infos, r.info())
			}
		}
	}
	// A rule that is gone leaves no series behind: they are marked stale
	// at the next evaluation.
	kept := map[string]bool{}
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			kept[r.key()] = true
		}
	}
	for k, o := range old {
		if !kept[k] {
			for _, l := range o.written {
				m.gone = append(m.gone, l)
			}
		}
	}
	if interval > 0 && interval != m.opts.Interval {
		m.opts.Interval = interval
		m.engine = newEngine(m.logger, interval)
	}
	m.rules = rs
	m.readsMemo = map[string]bool{}
	m.lastEval = map[*Group]time.Time{}
	// Margin: two intervals, so that a late gather never leaves a range
	// one sample short.
	m.store.SetRetention(rs.retention, 2*m.opts.Interval)
	m.opts.Tracker.SetRules(infos)
	m.logger.Info("Rules loaded", "files", len(rs.Files), "groups", len(rs.Groups), "rules", rs.Rules(), "window", m.store.Window())
}

// Reads reports whether the running rules may read a series whose name
// starts with prefix (Retention.ReadsPrefix), so that the agent's own
// gather can leave out what no rule reads.
func (m *Manager) Reads(prefix string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.readsMemo[prefix]; ok {
		return r
	}
	r := m.rules.retention.ReadsPrefix(prefix)
	if len(m.readsMemo) >= maxReadsMemo {
		clear(m.readsMemo)
	}
	m.readsMemo[prefix] = r
	return r
}

// maxReadsMemo bounds Reads' memo. The agent asks about the names of the
// families it can produce, a few hundred, so the bound is never reached
// unless names come and go.
const maxReadsMemo = 4096

// Files returns the rule files loaded.
func (m *Manager) Files() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.rules.Files)
}

// Ingest adds one gather of the agent's registry to the store.
func (m *Manager) Ingest(ts time.Time, mfs []*dto.MetricFamily) {
	m.store.AppendFamilies(ts, mfs)
}

// queryFunc evaluates an instant query over the store.
func queryFunc(engine *promql.Engine, store *memstore.Store) template.QueryFunc {
	return func(ctx context.Context, qs string, t time.Time) (promql.Vector, error) {
		q, err := engine.NewInstantQuery(ctx, store, nil, qs, t)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		res := q.Exec(ctx)
		if res.Err != nil {
			return nil, res.Err
		}
		switch v := res.Value.(type) {
		case promql.Vector:
			return v, nil
		case promql.Scalar:
			return promql.Vector{promql.Sample{T: v.T, F: v.V, Metric: labels.EmptyLabels()}}, nil
		default:
			return nil, errors.New("rule result is not a vector or scalar")
		}
	}
}

// evaluator evaluates rule groups at one time: the engine's loop and the
// rule unit tests share it.
type evaluator struct {
	query   template.QueryFunc
	store   *memstore.Store
	env     templateEnv
	tracker Tracker
	logger  *slog.Logger
	// known reports whether a rule's input is fresh; nil: always.
	known func(r *Rule) bool
}

// evalGroup evaluates every rule of g at ts. Recording rules write to the
// store; alerting rules go to the tracker, whose pending and firing alerts
// are written as ALERTS. An error leaves that rule's alerts as they were.
func (e *evaluator) evalGroup(ctx context.Context, g *Group, ts time.Time) []error {
	var errs []error
	for _, r := range g.Rules {
		if err := e.evalRule(ctx, g, r, ts); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: group %q, rule %q: %w", r.File, r.Line, g.Name, r.Name(), err))
		}
	}
	return errs
}

func (e *evaluator) evalRule(ctx context.Context, g *Group, r *Rule, ts time.Time) error {
	known := e.known == nil || e.known(r)
	if r.Alert != "" && !known {
		// Nothing fresh to judge by: hold the alerts where they are.
		e.writeAlerts(r, e.tracker.Observe(ts, r.info(), nil, false), ts)
		return nil
	}
	var vec promql.Vector
	var err error
	// A rule that reads only metrics the store has none of is empty
	// without asking the engine (rules/empty.go).
	if r.expr == nil || !provablyEmpty(r.expr, e.store.HasMetric) {
		vec, err = e.query(ctx, r.Expr, ts.Add(-g.QueryOffset))
	}
	if err != nil {
		if r.Alert != "" {
			e.writeAlerts(r, e.tracker.Observe(ts, r.info(), nil, false), ts)
		}
		return err
	}
	if r.Record != "" {
		return e.record(r, vec, ts)
	}
	samples, err := r.alertSamples(ctx, ts, vec, e.query, e.env, e.logger)
	if err == nil && g.Limit > 0 && len(samples) > g.Limit {
		err = fmt.Errorf("exceeded the group's limit of %d alerts with %d; raise limit: or make the expression select fewer series (the rule's alerts are held as they were)", g.Limit, len(samples))
	}
	if err != nil {
		e.writeAlerts(r, e.tracker.Observe(ts, r.info(), nil, false), ts)
		return err
	}
	e.writeAlerts(r, e.tracker.Observe(ts, r.info(), samples, true), ts)
	return nil
}

// record writes a recording rule's result.
func (e *evaluator) record(r *Rule, vec promql.Vector, ts time.Time) error {
	lb := labels.NewBuilder(labels.EmptyLabels())
	out := make(map[uint64]labels.Labels, len(vec))
	vals := make(map[uint64]float64, len(vec))
	for _, s := range vec {
		lb.Reset(s.Metric)
		lb.Set(model.MetricNameLabel, r.Record)
		r.Labels.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
		l := lb.Labels()
		h := l.Hash()
		if _, dup := out[h]; dup {
			return errors.New("vector contains metrics with the same labelset after applying rule labels")
		}
		out[h], vals[h] = l, s.F
	}
	for h, l := range out {
		e.store.Append(l, ts, vals[h])
	}
	writeStale(e.store, r, out, ts)
	return nil
}

// writeAlerts writes ALERTS and ALERTS_FOR_STATE for the rule's pending and
// firing alerts, and marks stale those of alerts that ended or changed
// state.
func (e *evaluator) writeAlerts(r *Rule, active []alert.Active, ts time.Time) {
	out := make(map[uint64]labels.Labels, 2*len(active))
	vals := make(map[uint64]float64, 2*len(active))
	for _, a := range active {
		lb := labels.NewBuilder(a.Labels)
		lb.Set(model.MetricNameLabel, AlertsMetric)
		lb.Set(alertStateLabel, string(a.State))
		l := lb.Labels()
		out[l.Hash()], vals[l.Hash()] = l, 1
		lb = labels.NewBuilder(a.Labels)
		lb.Set(model.MetricNameLabel, AlertsForStateMetric)
		l = lb.Labels()
		out[l.Hash()], vals[l.Hash()] = l, float64(a.ActiveAt.Unix())
	}
	for h, l := range out {
		e.store.Append(l, ts, vals[h])
	}
	writeStale(e.store, r, out, ts)
}

// writeStale marks the series r wrote last time and not now stale, and
// remembers now's.
func writeStale(store *memstore.Store, r *Rule, now map[uint64]labels.Labels, ts time.Time) {
	for h, l := range r.written {
		if _, ok := now[h]; !ok {
			store.Append(l, ts, math.Float64frombits(value.StaleNaN))
		}
	}
	r.written = now
}

// due reports whether g's own interval has passed since its last run.
func (m *Manager) due(g *Group, ts time.Time) bool {
	last, ok := m.lastEval[g]
	if !ok || g.Interval <= 0 {
		return true
	}
	// Half an interval of slack: a tick that comes a little early must
	// not skip a whole period.
	return ts.Sub(last) >= g.Interval-m.opts.Interval/2
}

// refreshFreshness updates which names are cold at ts and returns the
// function that tells whether a rule's input is fresh.
func (m *Manager) refreshFreshness(ts time.Time) func(r *Rule) bool {
	var unknown map[string]bool
	if m.opts.Freshness != nil {
		unknown = m.opts.Freshness()
	}
	if m.firstEval.IsZero() {
		m.firstEval = ts
	}
	for n := range m.cold {
		if !unknown[n] {
			m.warmAt[n] = ts
		}
	}
	for n := range unknown {
		delete(m.warmAt, n)
	}
	m.cold = unknown
	// warm reports whether n is fresh at ts; with ranges, whether it was
	// fresh at an earlier evaluation too, so that rate() has two samples.
	warm := func(n string, ranged bool) bool {
		if unknown[n] {
			return false
		}
		since := m.firstEval
		if w := m.warmAt[n]; w.After(since) {
			since = w
		}
		return !ranged || since.Before(ts)
	}
	return func(r *Rule) bool {
		if r.anyDep && len(unknown) > 0 {
			return false
		}
		if r.anyDep && r.hasRange && !m.firstEval.Before(ts) {
			return false
		}
		for _, n := range r.deps {
			if !warm(n, r.hasRange) {
				return false
			}
		}
		return true
	}
}

// Evaluate runs every due group at ts. It returns the rule errors joined;
// the other rules still ran. The caller then commits the tracker.
func (m *Manager) Evaluate(ctx context.Context, ts time.Time) error {
	start := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	ev := &evaluator{
		query: queryFunc(m.engine, m.store), store: m.store, env: m.env,
		tracker: m.opts.Tracker, logger: m.logger, known: m.refreshFreshness(ts),
	}
	for _, l := range m.gone {
		m.store.Append(l, ts, math.Float64frombits(value.StaleNaN))
	}
	m.gone = nil
	var errs []error
	for _, g := range m.rules.Groups {
		if !m.due(g, ts) {
			continue
		}
		m.lastEval[g] = ts
		ge := ev.evalGroup(ctx, g, ts)
		for _, e := range ge {
			m.logger.Warn("Rule evaluation failed", "err", e)
		}
		m.m.failures.Add(float64(len(ge)))
		errs = append(errs, ge...)
	}
	m.m.evaluations.Inc()
	m.m.lastEval.Set(float64(ts.UnixNano()) / 1e9)
	m.m.duration.Set(time.Since(start).Seconds())
	return errors.Join(errs...)
}
