package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	bolt "go.etcd.io/bbolt"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// Options are a Manager's inputs besides its configuration.
type Options struct {
	Store   *state.Store
	Logger  *slog.Logger
	Metrics *Metrics
	// Host and Version identify this agent in every event.
	Host    string
	Version string
	// ExternalURL is the agent's URL (generatorURL for Alertmanager) when
	// notify.external_url is not set.
	ExternalURL string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Stdout receives the "-" file output; nil means os.Stdout.
	Stdout io.Writer
}

// Manager turns alert hand-overs into events, keeps them in the outbox and
// delivers them. It implements alert.Sink. Create it with New, then Start;
// Apply swaps the configuration on reload; Stop drains and stops.
type Manager struct {
	opts   Options
	logger *slog.Logger
	box    *outbox

	// alertsMu serialises hand-overs so that two evaluations never race
	// on the same per-alert record.
	alertsMu sync.Mutex
	// seen is when the rules last handed over each firing alert (by
	// fingerprint); only alerts seen lately are re-posted to Alertmanager,
	// so that one the rules forgot (a rule deleted by a reload) expires
	// there instead of living for ever. Guarded by alertsMu.
	seen map[string]time.Time

	mu      sync.Mutex // guards everything below
	cfg     Config
	pol     alert.Policies
	outputs []Output
	wake    map[string]chan struct{}
	parent  context.Context // set by Start
	run     *running
	stopped bool // by Stop; Apply must not start senders again
}

var _ alert.Sink = (*Manager)(nil)

// running is one generation of sender goroutines.
type running struct {
	cancel context.CancelFunc
	// drain asks for a last delivery attempt, then exit (shutdown); quit
	// asks for an exit after the request in flight (reload), so that a
	// reload does not cut a POST the receiver already accepted.
	drain chan struct{}
	quit  chan struct{}
	wg    sync.WaitGroup
}

// New builds a Manager; it fails when an output cannot be built (an
// unreadable secret or template file).
func New(cfg Config, pol alert.Policies, opts Options) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("notify: no state file")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	m := &Manager{opts: opts, logger: opts.Logger, seen: map[string]time.Time{}}
	outs, err := m.buildOutputs(cfg)
	if err != nil {
		return nil, err
	}
	m.box = &outbox{db: opts.Store.DB(), maxEvents: cfg.Outbox.MaxEvents, maxBytes: cfg.Outbox.MaxBytes}
	m.install(cfg, pol, outs)
	opts.Metrics.current.Store(m)
	return m, nil
}

func (m *Manager) buildOutputs(cfg Config) ([]Output, error) {
	ext := cfg.ExternalURL
	if ext == "" {
		ext = m.opts.ExternalURL
	}
	var outs []Output
	for _, c := range cfg.Webhooks {
		w, err := newWebhook(c, cfg.Templates, m.opts.Host, m.opts.Version, m.opts.Now)
		if err != nil {
			return nil, fmt.Errorf("notify output %s: %w", c.name(), err)
		}
		outs = append(outs, w)
	}
	for _, c := range cfg.Alertmanagers {
		a, err := newAlertmanager(c, ext, m.opts.Host, m.opts.Now)
		if err != nil {
			return nil, fmt.Errorf("notify output %s: %w", c.name(), err)
		}
		outs = append(outs, a)
	}
	for _, c := range cfg.Files {
		f, err := newFile(c, cfg.Templates, m.opts.Stdout)
		if err != nil {
			return nil, fmt.Errorf("notify output %s: %w", c.name(), err)
		}
		outs = append(outs, f)
	}
	return outs, nil
}

// install makes cfg current; m.mu must be held or m not yet shared.
func (m *Manager) install(cfg Config, pol alert.Policies, outs []Output) {
	m.cfg, m.pol, m.outputs = cfg, pol, outs
	m.box.maxEvents, m.box.maxBytes = cfg.Outbox.MaxEvents, cfg.Outbox.MaxBytes
	m.wake = map[string]chan struct{}{}
	for _, o := range outs {
		m.wake[o.Name()] = make(chan struct{}, 1)
		m.opts.Metrics.init(o.Name())
	}
}

func (m *Manager) outputNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, len(m.outputs))
	for i, o := range m.outputs {
		names[i] = o.Name()
	}
	return names
}

// Start begins delivery (and heartbeats) until Stop. Queues of outputs no
// longer configured are forgotten, with a warning.
func (m *Manager) Start(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parent, m.stopped = ctx, false
	m.forgetRemovedLocked()
	m.startLocked()
}

func (m *Manager) forgetRemovedLocked() {
	names := make([]string, len(m.outputs))
	for i, o := range m.outputs {
		names[i] = o.Name()
	}
	removed, err := m.box.removeOutputs(names)
	if err != nil {
		m.logger.Error("Cleaning the outbox of removed outputs failed", "err", err)
	}
	for name, n := range removed {
		m.logger.Warn("Output no longer configured; its undelivered events are dropped", "output", name, "events", n)
	}
}

func (m *Manager) startLocked() {
	ctx, cancel := context.WithCancel(m.parent)
	r := &running{cancel: cancel, drain: make(chan struct{}), quit: make(chan struct{})}
	for _, o := range m.outputs {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			s := &sender{m: m, out: o, wake: m.wake[o.Name()], cfg: m.cfg, pol: m.pol,
				logger: m.logger.With("output", o.Name())}
			s.run(ctx, r.drain, r.quit)
		}()
	}
	if hb := m.cfg.Heartbeat.D(); hb > 0 {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			m.heartbeats(ctx, r.drain, r.quit, hb)
		}()
	}
	m.run = r
}

// Apply replaces the configuration (on reload). Outputs are built first;
// when that fails the running configuration stays. Undelivered events stay
// in the outbox and go to the new outputs of the same name.
func (m *Manager) Apply(cfg Config, pol alert.Policies) error {
	outs, err := m.buildOutputs(cfg)
	if err != nil {
		return err
	}
	// The senders and the heartbeat take m.mu themselves: stop them
	// without holding it.
	m.mu.Lock()
	r := m.run
	m.run = nil
	m.mu.Unlock()
	if r != nil {
		close(r.quit)
		r.wg.Wait()
		r.cancel()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.install(cfg, pol, outs)
	if r != nil && !m.stopped {
		m.forgetRemovedLocked()
		m.startLocked()
	}
	return nil
}

// Stop makes a last attempt to deliver what is pending, bounded by ctx,
// then stops. Whatever is left stays in the outbox for the next start.
func (m *Manager) Stop(ctx context.Context) {
	m.mu.Lock()
	r := m.run
	m.run = nil
	m.stopped = true
	m.mu.Unlock()
	if r == nil {
		return
	}
	close(r.drain)
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		m.logger.Warn("Delivery did not drain before shutdown; undelivered events stay in the outbox")
	}
	r.cancel()
	<-done
}

// record is what was sent for one alert fingerprint; it lives in the state
// file so that a restart neither announces an alert again nor forgets to
// resolve it.
type record struct {
	ActiveAt   time.Time `json:"active_at"`
	Updates    int       `json:"updates"`
	LastSentAt time.Time `json:"last_sent_at"`
	Escalation string    `json:"escalation,omitempty"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Last is the latest firing event without evidence, re-posted to
	// Alertmanager while the alert is active.
	Last Event `json:"last"`
}

// resolvedRetention is how long a resolved record is kept to recognise a
// repeated hand-over of the same resolution.
const resolvedRetention = 24 * time.Hour

// Alerts implements alert.Sink: it decides which events the hand-over
// produces and writes them, with the per-alert records, to the outbox in
// one transaction before returning.
func (m *Manager) Alerts(ctx context.Context, now time.Time, alerts []alert.Alert) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.alertsMu.Lock()
	defer m.alertsMu.Unlock()
	m.mu.Lock()
	pol := m.pol
	names := make([]string, len(m.outputs))
	for i, o := range m.outputs {
		names[i] = o.Name()
	}
	m.mu.Unlock()

	// Most evaluations change nothing; find that out in a read
	// transaction, so that a quiet agent does not fsync every interval.
	quiet := true
	err := m.box.db.View(func(tx *bolt.Tx) error {
		recs, _ := sub(tx, bktAlerts)
		for i := range alerts {
			evs, _, err := m.decide(recs, &alerts[i], pol, now)
			if err != nil || len(evs) > 0 {
				quiet = false
				return err
			}
		}
		return nil
	})
	var produced []Event
	var dropped []Stored
	if err == nil && !quiet {
		err = m.box.db.Update(func(tx *bolt.Tx) error {
			recs, err := sub(tx, bktAlerts)
			if err != nil {
				return err
			}
			produced = produced[:0]
			for i := range alerts {
				a := &alerts[i]
				evs, rec, err := m.decide(recs, a, pol, now)
				if err != nil {
					return err
				}
				if len(evs) == 0 {
					continue
				}
				data, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				if err := recs.Put([]byte(a.Fingerprint), data); err != nil {
					return err
				}
				produced = append(produced, evs...)
			}
			dropped, err = m.box.appendTx(tx, names, produced)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("writing alert events to the outbox: %w (check the state file's disk)", err)
	}
	m.reportDrops(dropped)
	seenAt := m.opts.Now()
	for i := range alerts {
		if alerts[i].State == alert.StateFiring {
			m.seen[alerts[i].Fingerprint] = seenAt
		} else {
			delete(m.seen, alerts[i].Fingerprint)
		}
	}
	for _, e := range produced {
		m.logger.Info("Alert event queued", "kind", e.Kind, "alertname", e.AlertName, "severity", e.Severity, "id", e.ID, "escalation", e.Escalation)
	}
	if len(produced) > 0 {
		m.wakeAll()
	}
	return nil
}

// decide returns the events a's hand-over produces, if any, and the record
// to store with them.
func (m *Manager) decide(recs *bolt.Bucket, a *alert.Alert, pol alert.Policies, now time.Time) ([]Event, record, error) {
	var rec record
	have := false
	// recs is nil in a read transaction on a new state file.
	if v := recordBytes(recs, a.Fingerprint); v != nil {
		if err := json.Unmarshal(v, &rec); err != nil {
			m.logger.Warn("Delivery record is corrupt; treating the alert as new", "fingerprint", a.Fingerprint, "err", err)
		} else {
			have = true
		}
	}
	p := pol.For(a.Severity)
	step := a.Escalation
	if step == "" {
		step = p.Escalation(a.ActiveAt, now)
	}
	host, ver := m.opts.Host, m.opts.Version
	switch a.State {
	case alert.StateFiring:
		sameIncident := have && rec.ActiveAt.Equal(a.ActiveAt)
		var out []Event
		var ev Event
		switch {
		case !sameIncident:
			if have && rec.ResolvedAt.IsZero() && rec.Last.ID != "" {
				// The previous occurrence was never resolved (the rules
				// lost its state): close it, so that no receiver keeps an
				// incident open for ever.
				out = append(out, closeEvent(rec, host, now))
			}
			ev = newAlertEvent(KindInitial, a, host, ver, now, 0)
			rec = record{ActiveAt: a.ActiveAt}
		case !rec.ResolvedAt.IsZero():
			return nil, rec, nil // a late repeat of an alert already resolved
		case now.Sub(rec.LastSentAt) >= p.UpdateEvery.D() || (step != "" && step != rec.Escalation):
			rec.Updates++
			ev = newAlertEvent(KindUpdate, a, host, ver, now, rec.Updates)
		default:
			return nil, rec, nil
		}
		ev.Escalation = step
		next := now.Add(p.UpdateEvery.D())
		ev.NextUpdateAt = &next
		rec.LastSentAt, rec.Escalation = now, step
		rec.Last = ev
		rec.Last.Evidence = nil
		return append(out, ev), rec, nil
	case alert.StateResolved:
		if !have || !rec.ActiveAt.Equal(a.ActiveAt) || !rec.ResolvedAt.IsZero() {
			// Never announced, or already resolved: nothing to say.
			return nil, rec, nil
		}
		ev := newAlertEvent(KindResolved, a, host, ver, now, 0)
		ev.Escalation = rec.Escalation
		rec.ResolvedAt = *ev.EndedAt
		rec.Last = Event{}
		return []Event{ev}, rec, nil
	}
	return nil, rec, nil
}

func recordBytes(recs *bolt.Bucket, fingerprint string) []byte {
	if recs == nil {
		return nil
	}
	return recs.Get([]byte(fingerprint))
}

// closeEvent resolves the occurrence rec describes, at now.
func closeEvent(rec record, host string, now time.Time) Event {
	e := rec.Last
	e.ID = EventID(host, e.Fingerprint, rec.ActiveAt, KindResolved, 0)
	e.Kind, e.Status, e.Update, e.NextUpdateAt, e.Text = KindResolved, "resolved", 0, nil, ""
	end := now
	e.EndedAt = &end
	e.CreatedAt = now.UTC()
	if e.StartedAt != nil {
		d := end.Sub(*e.StartedAt).Seconds()
		e.DurationSeconds = &d
	} else {
		d := 0.0
		e.DurationSeconds = &d
	}
	return e
}

func (m *Manager) reportDrops(dropped []Stored) {
	if len(dropped) == 0 {
		return
	}
	m.opts.Metrics.dropped.Add(float64(len(dropped)))
	bySev := map[string]int{}
	for _, d := range dropped {
		s := d.Event.Severity
		if d.Event.Kind == KindHeartbeat {
			s = "heartbeat"
		}
		bySev[s]++
	}
	m.logger.Warn("Outbox full: dropped the oldest events of the lowest severity; raise notify.outbox limits or fix the outputs",
		"dropped", len(dropped), "by_severity", fmt.Sprint(bySev))
}

func (m *Manager) wakeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ch := range m.wake {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// heartbeats queues a heartbeat now and every interval; a new heartbeat
// replaces undelivered older ones (only the latest says anything). It also
// forgets old resolved records.
func (m *Manager) heartbeats(ctx context.Context, drain, quit <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := m.heartbeat(); err != nil {
			m.logger.Error("Queuing a heartbeat failed", "err", err)
		}
		m.prune()
		select {
		case <-ctx.Done():
			return
		case <-drain:
			return
		case <-quit:
			return
		case <-t.C:
		}
	}
}

func (m *Manager) heartbeat() error {
	now := m.opts.Now().UTC()
	ev := Event{
		ID: hashID(m.opts.Host, string(KindHeartbeat), now.Format(time.RFC3339Nano)), Kind: KindHeartbeat, Status: "ok",
		Host: m.opts.Host, AgentVersion: m.opts.Version, CreatedAt: now,
	}
	names := m.outputNames()
	var dropped []Stored
	err := m.box.db.Update(func(tx *bolt.Tx) error {
		if err := m.box.supersedeTx(tx, KindHeartbeat); err != nil {
			return err
		}
		var err error
		dropped, err = m.box.appendTx(tx, names, []Event{ev})
		return err
	})
	m.reportDrops(dropped)
	m.wakeAll()
	return err
}

func (m *Manager) prune() {
	cutoff := m.opts.Now().Add(-resolvedRetention)
	err := m.box.db.Update(func(tx *bolt.Tx) error {
		recs, err := sub(tx, bktAlerts)
		if err != nil {
			return err
		}
		var old [][]byte
		_ = recs.ForEach(func(k, v []byte) error {
			var r record
			if json.Unmarshal(v, &r) == nil && !r.ResolvedAt.IsZero() && r.ResolvedAt.Before(cutoff) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range old {
			if err := recs.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.logger.Warn("Pruning resolved alert records failed", "err", err)
	}
}

// staleAfter is how long an alert the rules stopped handing over is still
// re-posted to Alertmanager.
const staleAfter = 5 * time.Minute

// active returns the latest firing event of every alert still active and
// handed over within staleAfter.
func (m *Manager) active() ([]Event, error) {
	m.alertsMu.Lock()
	cutoff := m.opts.Now().Add(-staleAfter)
	fresh := map[string]bool{}
	for fp, at := range m.seen {
		if at.After(cutoff) {
			fresh[fp] = true
		}
	}
	m.alertsMu.Unlock()
	var out []Event
	err := m.box.db.View(func(tx *bolt.Tx) error {
		recs, _ := sub(tx, bktAlerts)
		if recs == nil {
			return nil
		}
		return recs.ForEach(func(_, v []byte) error {
			var r record
			if json.Unmarshal(v, &r) == nil && r.ResolvedAt.IsZero() && r.Last.ID != "" && fresh[r.Last.Fingerprint] {
				out = append(out, r.Last)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint < out[j].Fingerprint })
	return out, err
}

// Requeue puts the dead letters of output (of every output when "") back
// in its queue, once the operator has fixed what made the receiver refuse
// them. They are sent before newer events; receivers de-duplicate by id.
func (m *Manager) Requeue(output string) (int, error) {
	n, err := m.box.requeue(output)
	if n > 0 {
		m.logger.Info("Dead letters queued again", "output", output, "events", n)
		m.wakeAll()
	}
	return n, err
}

// Status describes the outbox for /api/v1/outbox.
func (m *Manager) Status() (Status, error) {
	return m.box.status(m.outputNames())
}

// sender delivers one output's queue in order.
type sender struct {
	m      *Manager
	out    Output
	wake   <-chan struct{}
	cfg    Config
	pol    alert.Policies
	logger *slog.Logger

	// isolate is the last seq of a batch refused for good: events up to it
	// are sent one at a time so that only the offending one is set aside.
	isolate  uint64
	failures int
}

func (s *sender) run(ctx context.Context, drain, quit <-chan struct{}) {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     s.cfg.Retry.InitialInterval.D(),
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         s.cfg.Retry.MaxInterval.D(),
	}
	bo.Reset()
	var resendC <-chan time.Time
	rs, isResender := s.out.(resender)
	if isResender {
		t := time.NewTicker(rs.ResendInterval())
		defer t.Stop()
		resendC = t.C
	}
	draining := false
	for {
		select {
		case <-quit:
			return
		default:
		}
		if !draining {
			select {
			case <-drain:
				draining = true
			default:
			}
		}
		batch, wait, err := s.next(draining)
		if err != nil {
			s.logger.Error("Reading the outbox failed", "err", err)
			wait = time.Second
		}
		if len(batch) == 0 {
			if draining {
				return
			}
			var timer *time.Timer
			var timerC <-chan time.Time
			if wait > 0 {
				timer = time.NewTimer(wait)
				timerC = timer.C
			}
			select {
			case <-ctx.Done():
				return
			case <-quit:
				return
			case <-drain:
				draining = true
			case <-s.wake:
			case <-timerC:
			case <-resendC:
				s.resend(ctx, rs)
			}
			if timer != nil {
				timer.Stop()
			}
			continue
		}
		err = s.send(ctx, batch)
		switch {
		case err == nil:
			bo.Reset()
		case ctx.Err() != nil:
			return
		case permanent(err):
			// handled in send; go on with the next event
		default:
			if draining {
				return
			}
			delay := max(bo.NextBackOff(), retryAfterOf(err))
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-drain:
				// One last attempt before shutdown.
				draining = true
			case <-quit:
				t.Stop()
				return
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// next picks the next batch: events in queue order, skipping (with every
// later event of the same alert) new alerts still inside their severity's
// group_wait, so that alerts starting together leave in one POST while a P1
// never waits behind a P3's group_wait. wait is when to look again.
// While draining for shutdown, group_wait is ignored.
func (s *sender) next(draining bool) ([]Stored, time.Duration, error) {
	limit := s.out.MaxBatch()
	list, err := s.m.box.pending(s.out.Name(), max(limit*2, 256))
	if err != nil || len(list) == 0 {
		return nil, 0, err
	}
	if s.isolate != 0 && list[0].Seq <= s.isolate {
		limit = 1
	} else {
		s.isolate = 0
	}
	now := s.m.opts.Now()
	blocked := map[string]bool{}
	// open: the group_wait of the oldest new alert of a severity is over,
	// so every new alert of that severity queued since joins it (as
	// Alertmanager's group_wait does).
	open := map[string]bool{}
	var wait time.Duration
	var batch []Stored
	for _, st := range list {
		e := &st.Event
		key := e.Fingerprint
		if key == "" {
			key = e.ID
		}
		if blocked[key] {
			continue
		}
		// At shutdown nothing waits: the next start may be far away.
		if e.Kind == KindInitial && !open[e.Severity] && !draining {
			if gw := s.pol.For(alert.Severity(e.Severity)).GroupWait.D(); gw > 0 {
				open[e.Severity] = true
				if d := e.CreatedAt.Add(gw).Sub(now); d > 0 {
					open[e.Severity] = false
					blocked[key] = true
					if wait == 0 || d < wait {
						wait = d
					}
					continue
				}
			}
		}
		batch = append(batch, st)
		if len(batch) >= limit {
			break
		}
	}
	return batch, wait, nil
}

func (s *sender) send(ctx context.Context, batch []Stored) error {
	events := make([]Event, len(batch))
	seqs := make([]uint64, len(batch))
	for i, st := range batch {
		events[i], seqs[i] = st.Event, st.Seq
	}
	met := s.m.opts.Metrics
	name := s.out.Name()
	err := s.out.Send(ctx, events)
	now := s.m.opts.Now()
	if err == nil {
		if err := s.m.box.ack(name, seqs); err != nil {
			// The receiver has them; a later resend is a duplicate its
			// de-duplication absorbs.
			s.logger.Error("Recording a delivery in the outbox failed", "err", err)
			return err
		}
		met.notifications.WithLabelValues(name, ResultSuccess).Add(float64(len(batch)))
		for _, e := range events {
			met.latency.WithLabelValues(name).Observe(max(now.Sub(e.CreatedAt).Seconds(), 0))
		}
		if s.failures > 0 {
			s.logger.Info("Output accepts events again", "failed_attempts", s.failures)
		}
		s.failures = 0
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	if permanent(err) {
		if len(batch) > 1 {
			s.isolate = batch[len(batch)-1].Seq
			s.logger.Warn("Output refused a batch; resending its events one by one to set aside only the refused ones", "events", len(batch), "err", err)
			return err
		}
		if derr := s.m.box.deadLetter(name, batch, err.Error(), now); derr != nil {
			s.logger.Error("Setting aside a refused event failed", "err", derr)
			return derr
		}
		met.notifications.WithLabelValues(name, ResultDeadLetter).Add(float64(len(batch)))
		e := events[0]
		s.logger.Error("Output refused an event for good; it is kept aside as a dead letter (see /api/v1/outbox) and not retried",
			"id", e.ID, "kind", e.Kind, "alertname", e.AlertName, "severity", e.Severity, "err", err)
		return err
	}
	met.notifications.WithLabelValues(name, ResultRetry).Add(float64(len(batch)))
	s.failures++
	level := slog.LevelWarn
	if s.failures > 1 && s.failures%10 != 0 {
		level = slog.LevelDebug // one warning per ten attempts is enough
	}
	s.logger.Log(ctx, level, "Delivery failed; will retry", "events", len(batch), "attempt", s.failures, "err", err)
	return err
}

// resend re-posts active alerts to an output that needs them (when its
// queue is empty, so that nothing older overtakes a queued event).
func (s *sender) resend(ctx context.Context, rs resender) {
	active, err := s.m.active()
	if err != nil || len(active) == 0 {
		return
	}
	if err := rs.Resend(ctx, active); err != nil && ctx.Err() == nil {
		s.logger.Warn("Re-sending active alerts failed", "alerts", len(active), "err", err)
	}
}

// TestResult is the outcome of "tokpulse-agent notify test" for one output.
type TestResult struct {
	Output   string
	Duration time.Duration
	Err      error
}

// Test sends a test alert (firing, then resolved) through every output of
// cfg directly, without the outbox (the running agent may hold the state
// file), and reports each output's result.
func Test(ctx context.Context, cfg Config, opts Options) ([]TestResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Manager{opts: opts}
	outs, err := m.buildOutputs(cfg)
	if err != nil {
		return nil, err
	}
	now := opts.Now()
	a := alert.Alert{
		Fingerprint: hashID("notify-test", opts.Host, now.String()), Name: "TokPulseNotifyTest", State: alert.StateFiring, Severity: alert.P4,
		Labels: map[string]string{"alertname": "TokPulseNotifyTest", "severity": "P4", "test": "true"},
		Annotations: map[string]string{"summary": "Test notification from tokpulse-agent notify test on " + opts.Host,
			"description": "An operator checked the notification path; no action needed."},
		ActiveAt: now, FiredAt: now, ResponseDeadline: now.Add(24 * time.Hour),
	}
	firing := newAlertEvent(KindInitial, &a, opts.Host, opts.Version, now, 0)
	next := now.Add(24 * time.Hour)
	firing.NextUpdateAt = &next
	a.State, a.ResolvedAt = alert.StateResolved, now
	resolved := newAlertEvent(KindResolved, &a, opts.Host, opts.Version, now, 0)
	var res []TestResult
	for _, o := range outs {
		start := time.Now()
		var errs []string
		for _, e := range []Event{firing, resolved} {
			if err := o.Send(ctx, []Event{e}); err != nil {
				errs = append(errs, fmt.Sprintf("%s event: %v", e.Kind, err))
			}
		}
		r := TestResult{Output: o.Name(), Duration: time.Since(start)}
		if len(errs) > 0 {
			r.Err = errors.New(strings.Join(errs, "; "))
		}
		res = append(res, r)
	}
	return res, nil
}
