// Package rules evaluates Prometheus alerting and recording rules on the
// host. The agent gathers its own registry every interval into a bounded
// in-memory Store; the Manager evaluates the loaded rule files over it with
// Prometheus' promql engine, walks each alert through inactive → pending →
// firing → resolved (honouring `for` and `keep_firing_for`), classifies it
// by its severity label (P1..P4) against the runbook's policies, takes an
// evidence snapshot when it starts firing, hands firing and newly resolved
// alerts to an alert.Sink and persists the alert states in the state file,
// so that a restart neither forgets a pending alert's clock nor announces a
// firing alert again.
package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"
	bolt "go.etcd.io/bbolt"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// Bucket is the state file bucket holding alert states, one JSON record per
// alert fingerprint.
const Bucket = "alerts"

// LookbackDelta is how long a series' last sample stays current, as in
// Prometheus. The store keeps it on top of the rules' longest range.
const LookbackDelta = 5 * time.Minute

// EvidenceSource snapshots what the on-call engineer needs when alerts
// start firing: for each label set, the sections to attach.
type EvidenceSource interface {
	Snapshot(ctx context.Context, alerts []map[string]string) [][]evidence.Section
}

// Options configure a Manager.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the rules' metrics (tokpulse_alerts and the
	// store's); nil registers nothing.
	Registerer prometheus.Registerer
	// State persists alert states; nil keeps them in memory only.
	State *state.Store
	// Sink receives firing and newly resolved alerts after every
	// evaluation; nil hands them to nobody (they stay visible through
	// Alerts and the metrics).
	Sink     alert.Sink
	Policies alert.Policies
	// Evidence is consulted when alerts start firing; may be nil.
	Evidence EvidenceSource
	// Interval is the evaluation interval (agent.interval); it sizes the
	// store's margin.
	Interval time.Duration
	// MaxSeries caps the store (DefaultMaxSeries when 0).
	MaxSeries int
	// ExternalLabels and ExternalURL are $externalLabels and $externalURL
	// in templates.
	ExternalLabels map[string]string
	ExternalURL    string
	// AlertLabels are added to every alert handed on (agent.labels: the
	// host's role, datacenter, team), as Prometheus adds external labels
	// when it sends; a rule's own label of the same name wins. They are
	// not part of the alert's identity, so changing them on reload neither
	// resolves nor re-announces anything.
	AlertLabels map[string]string
}

// Manager owns the loaded rules, the series store, the promql engine and
// the alert states. Ingest and Evaluate are called from one goroutine (the
// agent's gather loop); Alerts and the metrics may be read concurrently.
type Manager struct {
	opts   Options
	logger *slog.Logger
	engine *promql.Engine
	store  *Store
	env    templateEnv

	mu        sync.Mutex
	groups    []*Group
	files     []string
	lastEval  map[*Group]time.Time
	orphans   []*orphan
	persisted map[string]bool
	loaded    bool

	m *metrics
}

// orphan is an alert whose rule disappeared (a reload or a restart with
// other rule files); it is resolved and handed on once.
type orphan struct {
	inst     *instance
	severity alert.Severity
}

// NewManager returns a Manager with no rules; call Load.
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
		store:     NewStore(LookbackDelta, opts.MaxSeries),
		lastEval:  map[*Group]time.Time{},
		persisted: map[string]bool{},
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
		Parser: newParser(),
	})
}

// SetInterval changes the evaluation interval (after a reload); it applies
// to the store's window at the next Load.
func (m *Manager) SetInterval(d time.Duration) {
	if d <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if d != m.opts.Interval {
		m.opts.Interval = d
		m.engine = newEngine(m.logger, d)
	}
}

// SetPolicies replaces the severity policies (after a reload).
func (m *Manager) SetPolicies(p alert.Policies) {
	m.mu.Lock()
	m.opts.Policies = p
	m.mu.Unlock()
}

// SetAlertLabels replaces the labels added to every alert (on reload).
func (m *Manager) SetAlertLabels(l map[string]string) {
	m.mu.Lock()
	m.opts.AlertLabels = l
	m.mu.Unlock()
}

// Store returns the series store (for benchmarks and tests).
func (m *Manager) Store() *Store { return m.store }

// Load reads the rule files matching globs and replaces the running rules
// with them. On error nothing changes. Alert states carry over to rules of
// the same group and name; on the first Load they come from the state
// file. Alerts whose rule is gone resolve at the next evaluation.
func (m *Manager) Load(globs []string) error {
	groups, files, err := LoadFiles(globs, m.logger)
	if err != nil {
		return err
	}
	for _, g := range UnmatchedGlobs(globs) {
		// An empty drop-in directory is normal; a missing one is a typo.
		if GlobDirMissing(g) {
			m.logger.Warn("A rule_files glob names a directory that does not exist; no rules are loaded from it", "glob", g)
		} else {
			m.logger.Debug("A rule_files glob matches no file", "glob", g)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var prev []*instance
	if !m.loaded {
		prev, err = m.readState()
		if err != nil {
			return err
		}
	} else {
		for _, g := range m.groups {
			for _, r := range g.Rules {
				for _, a := range r.active {
					prev = append(prev, a)
				}
			}
		}
	}
	byKey := map[string]*Rule{}
	var window time.Duration
	for _, g := range groups {
		for _, r := range g.Rules {
			window = max(window, r.ranges, r.For)
			if r.Alert != "" {
				byKey[r.key()] = r
			}
		}
	}
	for _, a := range prev {
		if r, ok := byKey[a.Group+"\x00"+a.Alertname]; ok {
			r.active[a.Fingerprint] = a
			continue
		}
		if a.State == alert.StatePending || (a.State == alert.StateResolved && a.Delivered) {
			continue // forgotten; the next persist deletes it
		}
		m.orphans = append(m.orphans, &orphan{inst: a, severity: alert.Severity(a.Labels["severity"])})
	}
	m.groups, m.files, m.loaded = groups, files, true
	m.lastEval = map[*Group]time.Time{}
	// Margin: the lookback of an instant selector plus two intervals, so
	// that a late gather never leaves a range one sample short.
	m.store.SetWindow(window + LookbackDelta + 2*m.opts.Interval)
	nrules := 0
	for _, g := range groups {
		nrules += len(g.Rules)
	}
	m.logger.Info("Rules loaded", "files", len(files), "groups", len(groups), "rules", nrules, "window", m.store.Window())
	return nil
}

// Files returns the rule files loaded.
func (m *Manager) Files() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.files)
}

func (m *Manager) readState() ([]*instance, error) {
	if m.opts.State == nil {
		return nil, nil
	}
	var out []*instance
	err := m.opts.State.Bucket(Bucket).ForEach(func(k, v []byte) error {
		a := &instance{}
		if err := json.Unmarshal(v, a); err != nil {
			// One corrupt record must not hide the others.
			m.logger.Warn("Dropping a corrupt alert state record", "key", string(k), "err", err)
			return nil
		}
		// A record under another key (an older layout) is rewritten.
		a.dirty = string(k) != a.stateKey()
		out = append(out, a)
		m.persisted[string(k)] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading alert states from the state file: %w (move the state file aside to start afresh)", err)
	}
	return out, nil
}

// Ingest adds one gather of the agent's registry to the store.
func (m *Manager) Ingest(ts time.Time, mfs []*dto.MetricFamily) {
	m.store.AppendFamilies(ts, mfs)
}

// queryFunc evaluates an instant query over the store.
func queryFunc(engine *promql.Engine, store *Store) template.QueryFunc {
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

// evalGroup evaluates every rule of g at ts. Recording rules write to
// store. An error leaves that rule's alerts as they were.
func evalGroup(ctx context.Context, g *Group, ts time.Time, query template.QueryFunc, store *Store, env templateEnv, logger *slog.Logger) []error {
	var errs []error
	for _, r := range g.Rules {
		vec, err := query(ctx, r.Expr, ts.Add(-g.QueryOffset))
		if err == nil && r.Record != "" {
			err = record(r, vec, ts, store)
		}
		if err == nil && r.Alert != "" {
			err = r.evalAlert(ctx, ts, vec, query, env, g.Limit, logger)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: group %q, rule %q: %w", r.File, r.Line, g.Name, r.Name(), err))
		}
	}
	return errs
}

func record(r *Rule, vec promql.Vector, ts time.Time, store *Store) error {
	lb := labels.NewBuilder(labels.EmptyLabels())
	seen := map[uint64]bool{}
	out := make([]labels.Labels, len(vec))
	for i, s := range vec {
		lb.Reset(s.Metric)
		lb.Set(model.MetricNameLabel, r.Record)
		r.Labels.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
		out[i] = lb.Labels()
		if h := out[i].Hash(); seen[h] {
			return errors.New("vector contains metrics with the same labelset after applying rule labels")
		} else {
			seen[h] = true
		}
	}
	for i, s := range vec {
		store.Append(out[i], ts, s.F)
	}
	return nil
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

// Evaluate runs every due group at ts, hands firing and newly resolved
// alerts to the sink and then persists the alert states. It returns the
// rule errors joined; the other rules still ran.
func (m *Manager) Evaluate(ctx context.Context, ts time.Time) error {
	start := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	query := queryFunc(m.engine, m.store)
	var errs []error
	for _, g := range m.groups {
		if !m.due(g, ts) {
			continue
		}
		m.lastEval[g] = ts
		ge := evalGroup(ctx, g, ts, query, m.store, m.env, m.logger)
		for _, e := range ge {
			m.logger.Warn("Rule evaluation failed", "err", e)
		}
		m.m.failures.Add(float64(len(ge)))
		errs = append(errs, ge...)
	}
	// Orphans are handed on once, then shown for the retention like any
	// resolved alert.
	m.orphans = slices.DeleteFunc(m.orphans, func(o *orphan) bool {
		return o.inst.Delivered && ts.Sub(o.inst.ResolvedAt) > ResolvedRetention
	})
	for _, o := range m.orphans {
		if o.inst.State != alert.StateResolved {
			o.inst.State = alert.StateResolved
			o.inst.ResolvedAt = ts
			o.inst.KeepFiringSince = time.Time{}
			o.inst.dirty = true
			m.logger.Info("Resolving an alert whose rule is no longer loaded", "alertname", o.inst.Alertname, "group", o.inst.Group)
		}
	}
	m.attachEvidence(ctx)

	handover := m.handover(ts)
	if m.opts.Sink != nil && len(handover) > 0 {
		if err := m.opts.Sink.Alerts(ctx, ts, handover); err != nil {
			// Not persisting keeps the state file one step behind delivery,
			// so the next evaluation hands the same alerts on again.
			m.m.sinkFailures.Inc()
			m.logger.Error("Handing alerts to delivery failed; retrying at the next evaluation", "alerts", len(handover), "err", err)
			errs = append(errs, fmt.Errorf("handing alerts to delivery: %w", err))
			m.m.duration.Set(time.Since(start).Seconds())
			return errors.Join(errs...)
		}
	}
	m.markDelivered()
	if err := m.persist(); err != nil {
		m.m.stateFailures.Inc()
		m.logger.Error("Saving alert states failed", "err", err)
		errs = append(errs, err)
	}
	m.m.evaluations.Inc()
	m.m.lastEval.Set(float64(ts.UnixNano()) / 1e9)
	m.m.duration.Set(time.Since(start).Seconds())
	return errors.Join(errs...)
}

// eachInstance calls fn for every alert of every rule, and for orphans
// (with a nil rule).
func (m *Manager) eachInstance(fn func(r *Rule, sev alert.Severity, a *instance)) {
	for _, g := range m.groups {
		for _, r := range g.Rules {
			for _, a := range r.active {
				fn(r, r.Severity, a)
			}
		}
	}
	for _, o := range m.orphans {
		fn(nil, o.severity, o.inst)
	}
}

func (m *Manager) attachEvidence(ctx context.Context) {
	if m.opts.Evidence == nil {
		return
	}
	var targets []*instance
	m.eachInstance(func(_ *Rule, _ alert.Severity, a *instance) {
		if a.newlyFiring && a.Evidence == nil {
			targets = append(targets, a)
		}
	})
	if len(targets) == 0 {
		return
	}
	lsets := make([]map[string]string, len(targets))
	for i, a := range targets {
		lsets[i] = a.Labels
	}
	for i, secs := range m.opts.Evidence.Snapshot(ctx, lsets) {
		targets[i].Evidence = secs
		targets[i].dirty = true
	}
}

// handover lists firing alerts and resolved ones not yet delivered.
func (m *Manager) handover(ts time.Time) []alert.Alert {
	var out []alert.Alert
	m.eachInstance(func(_ *Rule, sev alert.Severity, a *instance) {
		if a.State == alert.StateFiring || (a.State == alert.StateResolved && !a.Delivered) {
			out = append(out, m.toAlert(sev, a, ts))
		}
	})
	sortAlerts(out)
	return out
}

func (m *Manager) markDelivered() {
	m.eachInstance(func(_ *Rule, _ alert.Severity, a *instance) {
		if a.State == alert.StateResolved && !a.Delivered {
			a.Delivered = true
			a.dirty = true
		}
	})
}

func (m *Manager) toAlert(sev alert.Severity, a *instance, ts time.Time) alert.Alert {
	pol := m.opts.Policies.For(sev)
	at := ts
	if a.State == alert.StateResolved {
		at = a.ResolvedAt
	}
	labels := a.Labels
	if len(m.opts.AlertLabels) > 0 {
		labels = make(map[string]string, len(a.Labels)+len(m.opts.AlertLabels))
		for k, v := range m.opts.AlertLabels {
			labels[k] = v
		}
		for k, v := range a.Labels {
			labels[k] = v
		}
	}
	return alert.Alert{
		Fingerprint:      a.Fingerprint,
		Name:             a.Alertname,
		State:            a.State,
		Severity:         sev,
		Labels:           labels,
		Annotations:      a.Annotations,
		Value:            a.Value,
		ActiveAt:         a.ActiveAt,
		FiredAt:          a.FiredAt,
		ResolvedAt:       a.ResolvedAt,
		ResponseDeadline: a.ActiveAt.Add(pol.Response.D()),
		Escalation:       pol.Escalation(a.ActiveAt, at),
		Evidence:         a.Evidence,
	}
}

func sortAlerts(as []alert.Alert) {
	sort.Slice(as, func(i, j int) bool {
		if as[i].Severity != as[j].Severity {
			return as[i].Severity.Rank() < as[j].Severity.Rank()
		}
		if as[i].Name != as[j].Name {
			return as[i].Name < as[j].Name
		}
		return as[i].Fingerprint < as[j].Fingerprint
	})
}

// persist writes changed alert states and deletes forgotten ones, in one
// transaction.
func (m *Manager) persist() error {
	current := map[string]*instance{}
	m.eachInstance(func(_ *Rule, _ alert.Severity, a *instance) { current[a.stateKey()] = a })
	if m.opts.State == nil {
		for _, a := range current {
			a.dirty = false
		}
		return nil
	}
	changed := false
	for fp := range m.persisted {
		if current[fp] == nil {
			changed = true
		}
	}
	for _, a := range current {
		changed = changed || a.dirty
	}
	if !changed {
		return nil
	}
	err := m.opts.State.DB().Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(Bucket))
		if err != nil {
			return err
		}
		for fp := range m.persisted {
			if current[fp] == nil {
				if err := b.Delete([]byte(fp)); err != nil {
					return err
				}
			}
		}
		for fp, a := range current {
			if !a.dirty {
				continue
			}
			data, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(fp), data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("saving alert states to the state file: %w (check free space in agent.state_dir)", err)
	}
	m.persisted = map[string]bool{}
	for fp, a := range current {
		a.dirty = false
		m.persisted[fp] = true
	}
	return nil
}

// Alerts returns every pending, firing and recently resolved alert, most
// severe first, as /api/v1/alerts serves them.
func (m *Manager) Alerts(now time.Time) []alert.Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []alert.Alert{}
	m.eachInstance(func(_ *Rule, sev alert.Severity, a *instance) {
		out = append(out, m.toAlert(sev, a, now))
	})
	sortAlerts(out)
	return out
}
