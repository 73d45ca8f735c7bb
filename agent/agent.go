// Package agent wires the tokpulse-agent daemon together: it loads and
// validates the configuration, builds the collectors, serves /metrics and the
// local API, gathers its own registry every agent.interval, and handles the
// lifecycle (start-up, reload, shutdown) and the systemd notification
// protocol. Flags and signals stay in cmd/; this package takes Options.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	tpcollectors "github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
	"github.com/tokpulse/tokpulse-agent/notify"
	"github.com/tokpulse/tokpulse-agent/rules"
)

// BuildInfo identifies the running binary; cmd/ sets it from ldflags.
type BuildInfo struct {
	Version   string
	Commit    string
	GoVersion string
}

// Options are the agent's inputs besides its configuration.
type Options struct {
	// ConfigFile is re-read on reload; empty means the embedded default.
	ConfigFile string
	Logger     *slog.Logger
	// Level is the logger's level, changed when a reload changes
	// agent.log.level. May be nil.
	Level *slog.LevelVar
	Build BuildInfo
	// Reload receives a value for each reload request (SIGHUP in cmd/).
	Reload <-chan struct{}
	// Notifier reports to systemd; nil uses the NOTIFY_SOCKET protocol.
	Notifier Notifier
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sink receives alerts after every rule evaluation; nil means the
	// agent's own delivery (notify:). Tests replace it to observe hand-overs.
	Sink alert.Sink
}

// ShutdownTimeout bounds a clean shutdown; systemd's default stop timeout
// is longer, so the agent always exits on its own first.
const ShutdownTimeout = 8 * time.Second

// Agent is one running tokpulse-agent.
type Agent struct {
	opts     Options
	logger   *slog.Logger
	registry *prometheus.Registry
	metrics  *selfMetrics
	server   *http.Server
	ready    atomic.Bool
	store    *state.Store
	// startedAt and reloadOK feed /api/v1/status.
	startedAt time.Time
	reloadOK  atomic.Bool
	rules     *rules.Manager
	notifier  *notify.Manager
	// counters keeps the log sources' counters across reloads.
	counters *tpcollectors.Counters

	mu       sync.RWMutex // guards cfg and pipeline
	cfg      *Config
	pipeline *pipeline

	// lastGather is a one-line summary for STATUS= and the logs.
	lastGather atomic.Value // string
}

// New builds an agent from a validated configuration.
func New(cfg *Config, opts Options) (*Agent, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Notifier == nil {
		opts.Notifier = SystemdNotifier{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Agent{
		opts:      opts,
		logger:    opts.Logger,
		registry:  prometheus.NewRegistry(),
		cfg:       cfg,
		startedAt: opts.Now(),
		counters:  tpcollectors.NewCounters(),
	}
	a.reloadOK.Store(true)
	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	a.metrics = newSelfMetrics(a.registry, opts.Build)
	store, err := state.Open(cfg.Agent.StateDir)
	if err != nil {
		return nil, err
	}
	a.store = store
	a.reportStateFile()
	p, err := newPipeline(cfg, a.collectorOptions(cfg))
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	a.pipeline = p
	a.registry.MustRegister(&swappable{a: a})
	// Delivery first: the rules hand their alerts to it.
	if a.notifier, err = a.newNotifier(cfg); err != nil {
		_ = store.Close()
		return nil, err
	}
	if a.rules, err = a.newRules(cfg); err != nil {
		_ = store.Close()
		return nil, err
	}
	return a, nil
}

func (a *Agent) collectorOptions(cfg *Config) tpcollectors.Options {
	return tpcollectors.Options{Logger: a.logger, Paths: cfg.Agent.Paths, Now: a.opts.Now, State: a.store, Counters: a.counters}
}

// Registry returns the agent's registry (what /metrics serves).
func (a *Agent) Registry() *prometheus.Registry { return a.registry }

// Config returns the configuration in force.
func (a *Agent) Config() *Config {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.cfg
}

// Run serves and gathers until ctx is cancelled, then shuts down within
// ShutdownTimeout. It returns an error only when start-up fails.
func (a *Agent) Run(ctx context.Context) error {
	cfg := a.Config()
	ln, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		_ = a.store.Close()
		return fmt.Errorf("listening on %s: %w (set web.listen to a free address)", cfg.Web.Listen, err)
	}
	a.server = newServer(a)
	serveErr := make(chan error, 1)
	go func() { serveErr <- serve(a.server, ln, cfg.Web.ConfigFile, a.logger) }()

	runCtx, stopRunners := context.WithCancel(ctx)
	defer stopRunners()
	a.pipeline.start(runCtx)
	// Delivery outlives ctx: shutdown drains it before the state file closes.
	a.notifier.Start(context.WithoutCancel(runCtx))

	a.gather()
	a.ready.Store(true)
	a.logger.Info("Agent started", "listen", ln.Addr().String(), "collectors", a.pipeline.names(), "interval", cfg.Agent.Interval)
	a.notify(SdReady, a.status())

	watchdog := a.opts.Notifier.WatchdogInterval()
	var watchdogC <-chan time.Time
	if watchdog > 0 {
		// systemd kills a unit whose pings stop for WatchdogSec; pinging at
		// half of it from this loop means a wedged loop is restarted.
		t := time.NewTicker(watchdog / 2)
		defer t.Stop()
		watchdogC = t.C
		a.notify(SdWatchdog)
	}
	ticker := time.NewTicker(cfg.Agent.Interval.D())
	defer ticker.Stop()

	for {
		select {
		case <-ctx.Done():
			return a.shutdown()
		case err := <-serveErr:
			// The server stopped by itself: the agent cannot be scraped, so
			// fail and let systemd restart it.
			a.logger.Error("HTTP server stopped", "err", err)
			_ = a.shutdown()
			return fmt.Errorf("http server: %w", err)
		case <-a.opts.Reload:
			if a.reload(runCtx) {
				// A new interval applies from the next tick.
				ticker.Reset(a.Config().Agent.Interval.D())
			}
		case <-ticker.C:
			a.gather()
			a.notify("STATUS=" + a.status())
		case <-watchdogC:
			a.notify(SdWatchdog)
		}
	}
}

func (a *Agent) shutdown() error {
	a.notify(SdStopping)
	a.ready.Store(false)
	a.logger.Info("Shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	a.mu.RLock()
	p := a.pipeline
	a.mu.RUnlock()
	p.stop()
	a.stopNotifier(ctx)
	if a.server != nil {
		if err := a.server.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Warn("HTTP server did not stop cleanly", "err", err)
		}
	}
	// Collectors have saved their positions by now; closing flushes them.
	if err := a.store.Close(); err != nil {
		a.logger.Error("Closing the state file failed", "err", err)
	}
	return nil
}

// gather reads the whole registry, as Prometheus would, and keeps a summary.
func (a *Agent) gather() {
	start := time.Now()
	mfs, err := a.registry.Gather()
	series := 0
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	summary := fmt.Sprintf("%d series from %d collectors in %s", series, len(a.currentPipeline().names()), time.Since(start).Round(time.Millisecond))
	if err != nil {
		a.logger.Warn("Gathering own metrics reported errors", "err", err)
		summary += "; gather errors (see log)"
	}
	a.lastGather.Store(summary)
	a.evaluateRules(mfs)
}

func (a *Agent) currentPipeline() *pipeline {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.pipeline
}

func (a *Agent) status() string {
	s, _ := a.lastGather.Load().(string)
	return "tokpulse-agent " + a.opts.Build.Version + ": " + s
}

func (a *Agent) notify(states ...string) {
	for _, s := range states {
		if err := a.opts.Notifier.Notify(s); err != nil {
			a.logger.Warn("Notifying systemd failed", "state", s, "err", err)
		}
	}
}

// reload re-reads the configuration file and applies it if it is valid; a
// bad one leaves the running configuration in place. It reports whether the
// new configuration was applied.
func (a *Agent) reload(ctx context.Context) bool {
	a.notify(SdReloading)
	defer a.notify(SdReady, a.status())
	a.logger.Info("Reloading configuration", "file", a.opts.ConfigFile)
	cfg, err := Load(a.opts.ConfigFile)
	if err == nil {
		err = a.checkReloadable(cfg)
	}
	var p *pipeline
	if err == nil {
		p, err = newPipeline(cfg, a.collectorOptions(cfg))
	}
	if err == nil {
		err = a.notifier.Apply(cfg.Notify, cfg.Severities)
	}
	if err == nil {
		err = a.reloadRules(cfg)
	}
	if err != nil {
		a.metrics.reloadSuccess.Set(0)
		a.reloadOK.Store(false)
		a.logger.Error("Configuration reload failed; keeping the running configuration", "file", a.opts.ConfigFile, "err", err)
		return false
	}
	a.mu.Lock()
	old := a.pipeline
	a.pipeline, a.cfg = p, cfg
	a.mu.Unlock()
	old.stop()
	p.start(ctx)
	if a.opts.Level != nil {
		_ = a.opts.Level.UnmarshalText([]byte(cfg.Agent.Log.Level))
	}
	a.metrics.reloadSuccess.Set(1)
	a.reloadOK.Store(true)
	a.metrics.reloadTime.SetToCurrentTime()
	a.logger.Info("Configuration reloaded", "collectors", p.names())
	return true
}

// checkReloadable rejects changes that only a restart can apply, so that an
// operator is never told a change took effect when it did not.
func (a *Agent) checkReloadable(cfg *Config) error {
	cur := a.Config()
	if cfg.Web.Listen != cur.Web.Listen || cfg.Web.ConfigFile != cur.Web.ConfigFile {
		return errors.New("web.listen and web.config_file change only on restart; run systemctl restart tokpulse-agent")
	}
	if cfg.Agent.Log.Format != cur.Agent.Log.Format {
		return errors.New("agent.log.format changes only on restart; run systemctl restart tokpulse-agent")
	}
	return nil
}

// pipeline is the part of the agent rebuilt on reload.
type pipeline struct {
	set    *tpcollectors.Set
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newPipeline(cfg *Config, opts tpcollectors.Options) (*pipeline, error) {
	members, err := tpcollectors.Build(cfg.Config, opts)
	if err != nil {
		return nil, err
	}
	// A gather must finish well inside one interval.
	timeout := min(cfg.Agent.Interval.D()*8/10, 30*time.Second)
	return &pipeline{set: tpcollectors.NewSet(members, timeout, opts.Logger)}, nil
}

func (p *pipeline) names() []string {
	var n []string
	for _, m := range p.set.Members() {
		n = append(n, m.Name)
	}
	return n
}

// start runs the collectors that work on their own schedule.
func (p *pipeline) start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	for _, m := range p.set.Members() {
		if r, ok := m.Collector.(tpcollectors.Runner); ok {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				r.Run(ctx)
			}()
		}
	}
}

func (p *pipeline) stop() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
}

// swappable lets the registry keep one registration while reloads replace
// the collectors behind it.
type swappable struct{ a *Agent }

func (s *swappable) Describe(chan<- *prometheus.Desc) {}

func (s *swappable) Collect(ch chan<- prometheus.Metric) {
	s.a.currentPipeline().set.Collect(ch)
}
