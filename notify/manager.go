package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

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
