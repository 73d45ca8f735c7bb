package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

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
	// Firing returns the initial event of every incident that fires now
	// (incident.Tracker.Firing). An output that appears (a reload added it,
	// or it is new to the state file) receives them first, so that it
	// learns what is open; Alertmanager outputs re-post them. Nil: none.
	Firing func() []alert.Event
}

// Manager keeps events in the outbox and delivers them to every output. It
// decides nothing about alerts: the incident tracker hands it finished
// events. Create it with New, then Start; Apply swaps the outputs on
// reload; Stop drains and stops.
type Manager struct {
	opts   Options
	logger *slog.Logger
	box    *outbox

	mu      sync.Mutex // guards everything below
	cfg     Config
	outputs []Output
	wake    map[string]chan struct{}
	parent  context.Context // set by Start
	run     *running
	started bool
	stopped bool // by Stop; Apply must not start senders again
}

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

// New builds a Manager delivering to the outputs of cfg.
func New(cfg Config, opts Options) (*Manager, error) {
	outs, err := BuildOutputs(cfg, opts)
	if err != nil {
		return nil, err
	}
	return NewWithOutputs(outs, opts)
}

// NewWithOutputs returns a Manager delivering to outs.
func NewWithOutputs(outs *Outputs, opts Options) (*Manager, error) {
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
	m := &Manager{opts: opts, logger: opts.Logger}
	m.box = &outbox{st: opts.Store}
	m.install(outs)
	opts.Metrics.current.Store(m)
	return m, nil
}

// install makes outs current; m.mu must be held or m not yet shared.
func (m *Manager) install(outs *Outputs) {
	m.cfg, m.outputs = outs.cfg, outs.list
	m.box.maxEvents, m.box.maxBytes = outs.cfg.Outbox.MaxEvents, outs.cfg.Outbox.MaxBytes
	m.wake = map[string]chan struct{}{}
	for _, o := range outs.list {
		m.wake[o.Name()] = make(chan struct{}, 1)
		m.opts.Metrics.init(o.Name())
	}
}

func (m *Manager) outputNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.namesLocked()
}

func (m *Manager) namesLocked() []string {
	names := make([]string, len(m.outputs))
	for i, o := range m.outputs {
		names[i] = o.Name()
	}
	return names
}

// Start begins delivery (and heartbeats) until Stop. Queues of outputs no
// longer configured are dropped; outputs new to the state file first
// receive what fires now.
func (m *Manager) Start(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parent, m.stopped, m.started = ctx, false, true
	m.reconcileLocked()
	m.startLocked()
}

// reconcileLocked drops the queues of outputs that are gone, with one log
// line per output saying how many events went, and queues the firing
// incidents' initial events for outputs the outbox has not known.
func (m *Manager) reconcileLocked() {
	names := m.namesLocked()
	removed, err := m.box.removeOutputs(names)
	if err != nil {
		m.logger.Error("Cleaning the outbox of removed outputs failed", "err", err)
	}
	for name, n := range removed {
		m.logger.Warn("Output no longer configured; its undelivered events are dropped", "output", name, "events", n)
	}
	var firing []alert.Event
	if m.opts.Firing != nil {
		firing = m.opts.Firing()
	}
	added, dropped, err := m.box.catchUp(names, firing)
	if err != nil {
		m.logger.Error("Telling new outputs what fires failed; they will learn of it at its next update", "err", err)
	}
	m.reportDrops(dropped)
	for _, name := range added {
		m.logger.Info("New output: queued the initial event of every incident firing now", "output", name, "incidents", len(firing))
	}
}

func (m *Manager) startLocked() {
	ctx, cancel := context.WithCancel(m.parent)
	r := &running{cancel: cancel, drain: make(chan struct{}), quit: make(chan struct{})}
	for _, o := range m.outputs {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			s := &sender{m: m, out: o, wake: m.wake[o.Name()], cfg: m.cfg,
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

// Apply replaces the outputs (on reload) with ones built by BuildOutputs;
// it cannot fail. Undelivered events stay in the outbox and go to the new
// outputs of the same name; queues of removed outputs are dropped; added
// outputs first receive what fires now.
func (m *Manager) Apply(outs *Outputs) {
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
	m.install(outs)
	if m.started && !m.stopped {
		m.reconcileLocked()
		m.startLocked()
	}
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

// Enqueue writes events to the outbox for every output, in one
// transaction, before it returns; delivery follows. It implements
// incident.Delivery.
func (m *Manager) Enqueue(ctx context.Context, events []alert.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	names := m.outputNames()
	dropped, err := m.box.add(names, events)
	if err != nil {
		return fmt.Errorf("writing events to the outbox: %w (check the state file's disk)", err)
	}
	m.reportDrops(dropped)
	m.wakeAll()
	return nil
}

func (m *Manager) reportDrops(dropped []Stored) {
	if len(dropped) == 0 {
		return
	}
	m.opts.Metrics.dropped.Add(float64(len(dropped)))
	bySev := map[string]int{}
	for _, d := range dropped {
		s := d.Event.Severity
		if d.Event.Kind == alert.KindHeartbeat {
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
// replaces undelivered older ones (only the latest says anything).
func (m *Manager) heartbeats(ctx context.Context, drain, quit <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := m.heartbeat(); err != nil {
			m.logger.Error("Queuing a heartbeat failed", "err", err)
		}
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
	ev := alert.Event{
		ID: alert.HashID(m.opts.Host, string(alert.KindHeartbeat), now.Format(time.RFC3339Nano)), Kind: alert.KindHeartbeat, Status: "ok",
		Host: m.opts.Host, AgentVersion: m.opts.Version, CreatedAt: now,
	}
	names := m.outputNames()
	dropped, err := m.box.replace(names, ev)
	m.reportDrops(dropped)
	m.wakeAll()
	return err
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
// later event of the same alert) initial events still inside their
// severity's group_wait (HoldUntil), so that alerts starting together leave
// in one request while a P1 never waits behind a P3's group_wait. wait is
// when to look again. While draining for shutdown, nothing waits.
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
		if e.Kind == alert.KindInitial && !e.HoldUntil.IsZero() && !open[e.Severity] && !draining {
			if d := e.HoldUntil.Sub(now); d > 0 {
				blocked[key] = true
				if wait == 0 || d < wait {
					wait = d
				}
				continue
			}
			open[e.Severity] = true
		}
		batch = append(batch, st)
		if len(batch) >= limit {
			break
		}
	}
	return batch, wait, nil
}

func (s *sender) send(ctx context.Context, batch []Stored) error {
	events := make([]alert.Event, len(batch))
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

// resend re-posts what fires to an output that needs it (when its queue is
// empty, so that nothing older overtakes a queued event).
func (s *sender) resend(ctx context.Context, rs resender) {
	if s.m.opts.Firing == nil {
		return
	}
	active := s.m.opts.Firing()
	if len(active) == 0 {
		return
	}
	for i := range active {
		active[i].Evidence = nil
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

// Test sends events (a test incident's firing and resolved events,
// incident.TestEvents) through every output of cfg directly, from this
// process, without the outbox (the running agent holds the state file),
// and reports each output's result: `notify test --direct`.
func Test(ctx context.Context, cfg Config, opts Options, events []alert.Event) ([]TestResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	outs, err := BuildOutputs(cfg, opts)
	if err != nil {
		return nil, err
	}
	return sendTest(ctx, outs.list, events), nil
}

// Test sends events through the outputs the manager delivers to now,
// with the secrets and as the user the agent has, bypassing the outbox
// so that the answer says what each output did with them, and reports
// each output's result: `notify test` asks the running agent for this.
// The outputs' queues are not touched: a test event never waits behind
// (nor delays) a real one, and is never retried.
func (m *Manager) Test(ctx context.Context, events []alert.Event) []TestResult {
	m.mu.Lock()
	outs := slices.Clone(m.outputs)
	m.mu.Unlock()
	return sendTest(ctx, outs, events)
}

// sendTest sends events one at a time through each output, the outputs in
// parallel, and reports per output in their order.
func sendTest(ctx context.Context, outs []Output, events []alert.Event) []TestResult {
	res := make([]TestResult, len(outs))
	var wg sync.WaitGroup
	for i, o := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			var errs []string
			for _, e := range events {
				if err := o.Send(ctx, []alert.Event{e}); err != nil {
					errs = append(errs, fmt.Sprintf("%s event: %v", e.Kind, err))
				}
			}
			res[i] = TestResult{Output: o.Name(), Duration: time.Since(start)}
			if len(errs) > 0 {
				res[i].Err = errors.New(strings.Join(errs, "; "))
			}
		}()
	}
	wg.Wait()
	return res
}
