// Package incident owns the life of every alert. The rule engine hands it
// each alerting rule's evaluation (the label sets the expression returned);
// the Tracker turns them into incidents — pending, firing, resolved, with
// `for` and `keep_firing_for` — classifies them by their severity (response
// deadline, update cadence, escalation, group_wait from the runbook's
// policies), snapshots evidence when one starts firing, and hands the
// resulting events (initial, update, resolved) to delivery. It keeps every
// incident in the state file, so that a restart or an upgrade neither
// resolves nor re-announces one: a restored incident is held where it was
// until its rule is evaluated over freshly collected data.
//
// Delivery (notify) only delivers: what to say, and when, is decided here
// and nowhere else.
package incident

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// Bucket is the state file bucket of incident records, one JSON record per
// alert (key: group "/" fingerprint). MetaBucket holds the tracker's own
// bookkeeping (when it last evaluated).
const (
	Bucket     = "incidents"
	MetaBucket = "incidents_meta"
)

// ResolvedRetention is how long a resolved incident stays visible in
// /api/v1/alerts and in the state file, as Prometheus keeps resolved alerts
// for 15 minutes.
const ResolvedRetention = 15 * time.Minute

// DefaultOutageTolerance is how long the agent may have been down for a
// pending alert to keep the progress of its `for` (as Prometheus'
// --rules.alert.for-outage-tolerance). A longer outage restarts it.
const DefaultOutageTolerance = time.Hour

// metaSaveEvery bounds how often the time of the last evaluation is
// written while nothing else changes, so that a quiet agent does not
// write the state file every interval; the figure only measures downtime.
const metaSaveEvery = time.Minute

// Delivery accepts events and keeps them durably (the outbox) before it
// returns; the tracker persists its own records only afterwards, so that a
// crash in between repeats an event (receivers de-duplicate by id) rather
// than losing one.
type Delivery interface {
	Enqueue(ctx context.Context, events []alert.Event) error
}

// EvidenceSource snapshots what the on-call engineer needs when alerts
// start firing: for each alert (its labels and the metrics its rule
// reads), the sections to attach, those that explain it first and marked
// Relevant.
type EvidenceSource interface {
	Snapshot(ctx context.Context, alerts []evidence.Subject) [][]evidence.Section
}

// Options configure a Tracker.
type Options struct {
	Logger *slog.Logger
	// State keeps the incidents; nil keeps them in memory only (rule unit
	// tests).
	State *state.Store
	// Policies are the runbook's severities (response, update_every,
	// escalation, group_wait).
	Policies alert.Policies
	// Host and Version identify this agent in every event.
	Host, Version string
	// Labels are added to every event (agent.labels); a rule's own label
	// of the same name wins. They are not part of an alert's identity.
	Labels map[string]string
	// Evidence is consulted when incidents start firing; may be nil.
	Evidence EvidenceSource
	// RunbookURL is notify.runbook_url: the incident runbook's address,
	// to which each event's runbook_url adds the anchor of its section.
	// Empty: no link unless a rule has its own runbook_url annotation.
	RunbookURL string
	// Delivery receives the events; nil drops them (rule unit tests).
	Delivery Delivery
	// Registerer receives the tracker's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OutageTolerance: see DefaultOutageTolerance; 0 means the default.
	OutageTolerance time.Duration
}

// Tracker is the state machine of every alert. Observe and Commit are
// called from one goroutine (the agent's evaluation loop); the readers
// (Alerts, Firing, the metrics) may run concurrently.
type Tracker struct {
	opts   Options
	logger *slog.Logger
	m      *metrics

	mu sync.Mutex
	// byRule holds each rule's incidents by fingerprint; the rule key is
	// alert.Rule.Key.
	byRule map[string]map[string]*incident
	// rules are the loaded alerting rules; nil until SetRules, so that
	// incidents restored before the rules are loaded are not orphaned.
	rules map[string]alert.Rule
	// outgoing holds events produced but not yet accepted by delivery.
	outgoing []alert.Event
	// gone are the keys of incidents dropped since the last persist.
	gone     map[string]bool
	lastMeta time.Time
	// act is what concerns automated actions (action.go).
	act actionState
}

// New returns a tracker with the incidents restored from the state file.
// Pending incidents lose the time the agent was down (their `for` resumes
// where it stopped), or start over after an outage longer than the
// tolerance; firing ones stay firing under the same incident id, held
// until their rule is evaluated over fresh data.
func New(opts Options) (*Tracker, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OutageTolerance <= 0 {
		opts.OutageTolerance = DefaultOutageTolerance
	}
	t := &Tracker{
		opts: opts, logger: opts.Logger,
		byRule: map[string]map[string]*incident{},
		gone:   map[string]bool{},
		act: actionState{budgets: map[string]*budget{}, lastRun: map[string]time.Time{},
			dirtyKeys: map[string]bool{}, counts: map[[2]string]float64{}},
	}
	t.m = newMetrics(t)
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(t.m)
	}
	if err := t.restore(); err != nil {
		return nil, err
	}
	return t, nil
}

// SetPolicies replaces the severity policies and the labels added to every
// event (on reload). Incidents keep their ids; the new cadence applies from
// the next evaluation.
func (t *Tracker) SetPolicies(p alert.Policies, eventLabels map[string]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.opts.Policies, t.opts.Labels = p, eventLabels
}

// SetRunbookURL replaces notify.runbook_url (on reload); events produced
// from then on link to the new address.
func (t *Tracker) SetRunbookURL(base string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.opts.RunbookURL = base
}

// SetRules tells the tracker which alerting rules are loaded. Incidents of
// a rule no longer loaded are resolved at the next Commit.
func (t *Tracker) SetRules(rules []alert.Rule) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rules = make(map[string]alert.Rule, len(rules))
	for _, r := range rules {
		t.rules[r.Key()] = r
		// The severity is the rule's: a reload may have changed it.
		for _, inc := range t.byRule[r.Key()] {
			if inc.Severity != r.Severity && r.Severity != "" {
				inc.Severity, inc.dirty = r.Severity, true
			}
		}
	}
}

// Observe applies one evaluation of the alerting rule r at ts. samples is
// what its expression returned. known is false while the rule's input has
// not been collected afresh since the agent started or reloaded: then
// nothing changes (an absent series is no evidence of recovery), and the
// rule's incidents are held where they are. It returns the rule's pending
// and firing alerts, for the ALERTS series.
func (t *Tracker) Observe(ts time.Time, r alert.Rule, samples []alert.Sample, known bool) []alert.Active {
	t.mu.Lock()
	defer t.mu.Unlock()
	incs := t.byRule[r.Key()]
	if incs == nil {
		incs = map[string]*incident{}
		t.byRule[r.Key()] = incs
	}
	if known {
		t.apply(ts, r, incs, samples)
	} else {
		for _, inc := range incs {
			inc.held = inc.State != alert.StateResolved
		}
	}
	var out []alert.Active
	for _, inc := range incs {
		if inc.State == alert.StatePending || inc.State == alert.StateFiring {
			out = append(out, alert.Active{Labels: inc.lset, State: inc.State, ActiveAt: inc.ActiveAt})
		}
	}
	return out
}

// apply is Prometheus' AlertingRule.Eval on one rule's incidents: new label
// sets become pending, pending ones fire after `for`, absent ones resolve
// unless keep_firing_for holds them.
func (t *Tracker) apply(ts time.Time, r alert.Rule, incs map[string]*incident, samples []alert.Sample) {
	seen := make(map[string]bool, len(samples))
	for _, s := range samples {
		fp := alert.Fingerprint(s.Labels)
		seen[fp] = true
		inc, ok := incs[fp]
		if ok && inc.State != alert.StateResolved {
			// The value and annotations follow the latest evaluation in
			// memory; they are saved with the next real change, not at
			// every evaluation, so that a firing alert whose value moves
			// does not write the state file every interval.
			inc.Value, inc.Annotations = jsonFloat(s.Value), s.Annotations
			if !inc.KeepFiringSince.IsZero() {
				inc.KeepFiringSince, inc.dirty = time.Time{}, true
			}
			inc.held = false
			continue
		}
		inc = &incident{record: record{
			Fingerprint: fp, Group: r.Group, AlertName: r.Name, Severity: r.Severity,
			Labels: s.Labels.Map(), Annotations: s.Annotations, Value: jsonFloat(s.Value),
			State: alert.StatePending, ActiveAt: ts,
		}, lset: s.Labels, dirty: true}
		inc.IncidentID = alert.IncidentID(t.opts.Host, fp, ts)
		incs[fp] = inc
	}
	for fp, inc := range incs {
		inc.held = false
		if seen[fp] {
			if inc.State == alert.StatePending && ts.Sub(inc.ActiveAt) >= r.For {
				inc.State, inc.FiredAt, inc.dirty, inc.newlyFiring = alert.StateFiring, ts, true, true
			}
			continue
		}
		switch inc.State {
		case alert.StatePending:
			// A pending alert that ends was never announced: it vanishes.
			t.drop(incs, fp)
		case alert.StateFiring:
			if r.KeepFiringFor > 0 {
				if inc.KeepFiringSince.IsZero() {
					inc.KeepFiringSince, inc.dirty = ts, true
				}
				if ts.Sub(inc.KeepFiringSince) < r.KeepFiringFor {
					continue
				}
			}
			inc.resolve(ts)
		}
	}
}

// drop forgets the incident fp of incs; its record goes at the next persist.
func (t *Tracker) drop(incs map[string]*incident, fp string) {
	t.gone[incs[fp].key()] = true
	delete(incs, fp)
}

// Commit ends an evaluation round at ts: it resolves the incidents of rules
// no longer loaded, snapshots evidence for those that started firing,
// produces the events the runbook's policies call for, hands them to
// delivery and then saves the incidents. When delivery refuses, the events
// are kept and offered again at the next Commit, and the state file stays
// one step behind.
func (t *Tracker) Commit(ctx context.Context, ts time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resolveOrphans(ts)
	t.advanceActions(ts)
	t.attachEvidence(ctx)
	t.produce(ts)
	if len(t.outgoing) > 0 && t.opts.Delivery != nil {
		if err := t.opts.Delivery.Enqueue(ctx, t.outgoing); err != nil {
			t.m.handoverFailures.Inc()
			t.logger.Error("Handing events to delivery failed; retrying at the next evaluation", "events", len(t.outgoing), "err", err)
			return fmt.Errorf("handing events to delivery: %w", err)
		}
	}
	for _, e := range t.outgoing {
		t.logger.Info("Incident event", "kind", e.Kind, "alertname", e.AlertName, "severity", e.Severity,
			"incident_id", e.IncidentID, "id", e.ID, "escalation", e.Escalation)
	}
	t.outgoing = nil
	t.expire(ts)
	if err := t.persist(ts); err != nil {
		t.m.stateFailures.Inc()
		t.logger.Error("Saving incidents to the state file failed", "err", err)
		return err
	}
	// Only now that the state file says they run: a crash before this
	// point loses a run that never started, never repeats one.
	t.launchDecided()
	return nil
}

func (t *Tracker) resolveOrphans(ts time.Time) {
	if t.rules == nil {
		return
	}
	for key, incs := range t.byRule {
		if _, ok := t.rules[key]; ok {
			continue
		}
		for fp, inc := range incs {
			switch inc.State {
			case alert.StatePending:
				t.drop(incs, fp)
			case alert.StateFiring:
				t.logger.Info("Resolving an alert whose rule is no longer loaded", "alertname", inc.AlertName, "group", inc.Group, "incident_id", inc.IncidentID)
				inc.resolve(ts)
			}
			inc.held = false
		}
	}
}

func (t *Tracker) attachEvidence(ctx context.Context) {
	var targets []*incident
	t.each(func(inc *incident) {
		if inc.newlyFiring {
			inc.newlyFiring = false
			if inc.Evidence == nil {
				targets = append(targets, inc)
			}
		}
	})
	if len(targets) == 0 || t.opts.Evidence == nil {
		return
	}
	subjects := make([]evidence.Subject, len(targets))
	for i, inc := range targets {
		subjects[i] = evidence.Subject{Labels: inc.Labels, Metrics: t.rule(inc).Reads}
	}
	for i, secs := range t.opts.Evidence.Snapshot(ctx, subjects) {
		targets[i].Evidence, targets[i].dirty = secs, true
	}
}

// produce appends the events due at ts: an initial event for every
// incident that fires and was not announced, an update when the
// severity's update_every has passed or a new escalation step is reached,
// and a resolution for every announced incident that ended.
//
// The events of automated actions come in between: after the initial
// event (which says when an action is under way), before the update that
// their escalation calls for, and before the resolution, which waits for
// a run still under way so that the receiver reads "restarted", then
// "resolved".
func (t *Tracker) produce(ts time.Time) {
	for _, inc := range t.sorted() {
		pol := t.opts.Policies.For(inc.Severity)
		switch {
		case inc.State == alert.StateFiring:
			if !inc.Announced {
				_, step := pol.EscalationLevel(inc.ActiveAt, ts, inc.EscalationFloor)
				ev := t.event(alert.KindInitial, inc, ts, 0)
				if gw := pol.GroupWait.D(); gw > 0 {
					ev.HoldUntil = ts.Add(gw)
				}
				ev.Action = inc.running()
				inc.Announced = true
				t.sent(inc, &ev, pol, ts, step)
			}
			t.actionEvents(inc, ts)
			_, step := pol.EscalationLevel(inc.ActiveAt, ts, inc.EscalationFloor)
			if ts.Sub(inc.LastSentAt) >= pol.UpdateEvery.D() || step != inc.Escalation {
				inc.Updates++
				ev := t.event(alert.KindUpdate, inc, ts, inc.Updates)
				t.sent(inc, &ev, pol, ts, step)
			}
		case inc.State == alert.StateResolved && inc.Announced && !inc.Closed:
			if inc.inFlight() {
				continue
			}
			t.actionEvents(inc, ts)
			ev := t.event(alert.KindResolved, inc, ts, 0)
			ev.Escalation = inc.Escalation
			ev.Action = inc.succeeded()
			inc.Closed, inc.dirty = true, true
			t.outgoing = append(t.outgoing, ev)
		default:
			// A run on an incident resolved before it was announced (it
			// cannot start before), or on one already closed, is still
			// accounted for.
			for i := range inc.Actions {
				inc.Actions[i].Reported = inc.Actions[i].Reported || inc.Actions[i].State == runDone
			}
		}
	}
}

// sent hands on an initial or update event of inc at escalation step and
// records it as the last one sent.
func (t *Tracker) sent(inc *incident, ev *alert.Event, pol alert.Policy, ts time.Time, step string) {
	ev.Escalation = step
	next := ts.Add(pol.UpdateEvery.D())
	ev.NextUpdateAt = &next
	inc.LastSentAt, inc.Escalation, inc.dirty = ts, step, true
	t.outgoing = append(t.outgoing, *ev)
}

// expire forgets resolved incidents after the retention.
func (t *Tracker) expire(ts time.Time) {
	for _, incs := range t.byRule {
		for fp, inc := range incs {
			if inc.State == alert.StateResolved && (inc.Closed || !inc.Announced) && ts.Sub(inc.ResolvedAt) > ResolvedRetention {
				t.drop(incs, fp)
			}
		}
	}
}

// rule returns the loaded rule of inc; the zero Rule when it is not
// loaded (any more).
func (t *Tracker) rule(inc *incident) alert.Rule {
	return t.rules[alert.Rule{Group: inc.Group, Name: inc.AlertName}.Key()]
}

// event builds the event of kind for inc: everything a message says is
// decided here, and the outputs' templates only lay it out. Besides the
// rule's annotations: the link to its runbook section, the unit and the
// threshold that give its value a meaning, and the evidence that
// explains it first.
func (t *Tracker) event(kind alert.Kind, inc *incident, now time.Time, n int) alert.Event {
	started := inc.ActiveAt
	if !inc.FiredAt.IsZero() {
		started = inc.FiredAt
	}
	e := alert.Event{
		ID:          alert.EventID(t.opts.Host, inc.Fingerprint, inc.ActiveAt, kind, n),
		Kind:        kind,
		Status:      "firing",
		IncidentID:  inc.IncidentID,
		Fingerprint: inc.Fingerprint,
		AlertName:   inc.AlertName,
		Severity:    string(inc.Severity),
		Summary:     inc.Annotations["summary"],
		Description: inc.Annotations["description"],
		Runbook:     inc.Annotations["runbook"],
		RunbookURL:  RunbookURL(t.opts.RunbookURL, inc.Annotations),
		Unit:        inc.Annotations["unit"],
		Threshold:   threshold(inc.Annotations["threshold"], t.rule(inc).Threshold),
		Labels:      t.eventLabels(inc),
		Annotations: inc.Annotations,
		StartedAt:   &started,
		Escalation:  inc.Escalation,
		Evidence:    inc.Evidence,
		Host:        t.opts.Host, AgentVersion: t.opts.Version,
		CreatedAt: now.UTC(),
	}
	// JSON has no NaN or infinity; such a value (a ratio over zero
	// requests) is left out rather than failing the hand-over.
	if v := float64(inc.Value); !math.IsNaN(v) && !math.IsInf(v, 0) {
		e.Value = &v
	}
	if d := inc.ActiveAt.Add(t.opts.Policies.For(inc.Severity).Response.D()); !inc.ActiveAt.IsZero() {
		e.ResponseDeadline = &d
	}
	if e.Annotations == nil {
		e.Annotations = map[string]string{}
	}
	switch kind {
	case alert.KindUpdate:
		e.Update = n
	case alert.KindResolved:
		e.Status = "resolved"
		end := inc.ResolvedAt
		if end.IsZero() {
			end = now
		}
		e.EndedAt = &end
		d := end.Sub(started).Seconds()
		e.DurationSeconds = &d
	}
	return e
}

// eventLabels are the incident's labels with agent.labels added under them.
func (t *Tracker) eventLabels(inc *incident) map[string]string {
	out := make(map[string]string, len(inc.Labels)+len(t.opts.Labels))
	for k, v := range t.opts.Labels {
		out[k] = v
	}
	for k, v := range inc.Labels {
		out[k] = v
	}
	return out
}

// Firing returns the initial event of every incident that fires and was
// announced, for an output that has just been added (it must learn what
// is open) and for outputs that need active alerts re-posted
// (Alertmanager). The events carry the ids of the original initial events.
func (t *Tracker) Firing() []alert.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.opts.Now()
	var out []alert.Event
	for _, inc := range t.sorted() {
		if inc.State != alert.StateFiring || !inc.Announced {
			continue
		}
		ev := t.event(alert.KindInitial, inc, now, 0)
		next := inc.LastSentAt.Add(t.opts.Policies.For(inc.Severity).UpdateEvery.D())
		ev.NextUpdateAt = &next
		out = append(out, ev)
	}
	return out
}

// Alerts returns every pending, firing and recently resolved alert, most
// severe first, as /api/v1/alerts serves them.
func (t *Tracker) Alerts() []alert.Alert {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.opts.Now()
	out := []alert.Alert{}
	for _, inc := range t.sorted() {
		pol := t.opts.Policies.For(inc.Severity)
		a := alert.Alert{
			Fingerprint: inc.Fingerprint, IncidentID: inc.IncidentID, Name: inc.AlertName,
			State: inc.State, Severity: inc.Severity, Labels: t.eventLabels(inc),
			Annotations: inc.Annotations, Value: float64(inc.Value),
			ActiveAt: inc.ActiveAt, FiredAt: inc.FiredAt, ResolvedAt: inc.ResolvedAt,
			ResponseDeadline: inc.ActiveAt.Add(pol.Response.D()),
			Escalation:       inc.Escalation, Held: inc.held, Evidence: inc.Evidence,
		}
		if inc.State == alert.StateFiring {
			_, a.Escalation = pol.EscalationLevel(inc.ActiveAt, now, inc.EscalationFloor)
		}
		for _, r := range inc.Actions {
			a.Actions = append(a.Actions, r.Action)
		}
		out = append(out, a)
	}
	return out
}

// closeWait bounds how long Close waits for actions under way; their
// context is cancelled by then (the agent is stopping), so commands are
// being killed and D-Bus calls return.
const closeWait = 5 * time.Second

// Close waits briefly for actions under way, saves the results of those
// that finished (their events leave at the next start), and when the
// tracker last evaluated, so that the next start knows how long the agent
// was down.
func (t *Tracker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	if err := t.WaitActions(ctx); err != nil {
		t.logger.Warn("Automated actions still running at shutdown; the next start verifies them", "err", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.takeResults()
	// Events not yet accepted by delivery must be produced again at the
	// next start: then the incidents stay one step behind, unsaved.
	if len(t.outgoing) == 0 {
		if err := t.persist(t.opts.Now()); err != nil {
			return err
		}
	}
	return t.saveMeta(time.Time{}, true)
}

// each calls fn for every incident.
func (t *Tracker) each(fn func(*incident)) {
	for _, incs := range t.byRule {
		for _, inc := range incs {
			fn(inc)
		}
	}
}

// sorted returns the incidents most severe first, then by name and
// fingerprint, so that events and listings come in a stable order.
func (t *Tracker) sorted() []*incident {
	var out []*incident
	t.each(func(inc *incident) { out = append(out, inc) })
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Severity != b.Severity {
			return a.Severity.Rank() < b.Severity.Rank()
		}
		if a.AlertName != b.AlertName {
			return a.AlertName < b.AlertName
		}
		return a.Fingerprint < b.Fingerprint
	})
	return out
}

// record is an incident as the state file keeps it.
type record struct {
	IncidentID  string            `json:"incident_id"`
	Fingerprint string            `json:"fingerprint"`
	Group       string            `json:"group"`
	AlertName   string            `json:"alertname"`
	Severity    alert.Severity    `json:"severity"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Value       jsonFloat         `json:"value"`
	State       alert.State       `json:"state"`
	ActiveAt    time.Time         `json:"active_at"`
	FiredAt     time.Time         `json:"fired_at,omitzero"`
	ResolvedAt  time.Time         `json:"resolved_at,omitzero"`
	// KeepFiringSince is when the expression stopped returning the alert
	// while keep_firing_for held it firing.
	KeepFiringSince time.Time `json:"keep_firing_since,omitzero"`
	// Announced: the initial event was produced; Closed: the resolution.
	Announced bool `json:"announced,omitempty"`
	Closed    bool `json:"closed,omitempty"`
	// Updates counts update events; LastSentAt is when the last initial
	// or update event was produced; Escalation the step it carried.
	Updates    int                `json:"updates,omitempty"`
	LastSentAt time.Time          `json:"last_sent_at,omitzero"`
	Escalation string             `json:"escalation,omitempty"`
	Evidence   []evidence.Section `json:"evidence,omitempty"`
	// EscalationFloor is the escalation level the incident has reached
	// early: each automated action that failed, had no effect or was
	// refused raises it one step above the level its age gives.
	EscalationFloor int `json:"escalation_floor,omitempty"`
	// Actions are the automated actions run (or refused) on it, oldest
	// first; an action that is here never runs again for this incident.
	Actions []actionRun `json:"actions,omitempty"`
}

// incident is a record with what only lives in memory.
type incident struct {
	record
	lset labels.Labels
	// dirty: the record changed since it was saved.
	dirty bool
	// newlyFiring marks the evaluation in which it started firing, when
	// its evidence is taken.
	newlyFiring bool
	// held is set while its rule's input is not fresh (see Observe).
	held bool
}

func (inc *incident) key() string { return inc.Group + "/" + inc.Fingerprint }

func (inc *incident) resolve(ts time.Time) {
	inc.State, inc.ResolvedAt, inc.KeepFiringSince, inc.dirty = alert.StateResolved, ts, time.Time{}, true
}

// jsonFloat is a float64 that survives JSON even when NaN or infinite (a
// ratio over zero requests), which encoding/json refuses.
type jsonFloat float64

// MarshalJSON writes finite values as numbers, others as strings.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return json.Marshal(strconv.FormatFloat(v, 'g', -1, 64))
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	var v float64
	if err := json.Unmarshal(b, &v); err == nil {
		*f = jsonFloat(v)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := strconv.ParseFloat(s, 64)
	*f = jsonFloat(v)
	return err
}
