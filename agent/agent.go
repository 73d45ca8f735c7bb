// Package agent wires the tokpulse-agent daemon together: it loads and
// validates the configuration, builds the collectors, the rules and the
// outputs, serves /metrics and the local API, gathers its own registry
// every agent.interval and evaluates the rules over it, and handles the
// lifecycle (start-up on the last good configuration when the file on disk
// does not load, all-or-nothing reload, shutdown) and the systemd
// notification protocol. Flags and signals stay in cmd/; this package takes
// Options.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	tpcollectors "github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/collectors/host"
	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/pagetrim"
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
	// ConfigFile is read at start and on every reload; empty means the
	// embedded default.
	ConfigFile string
	// WebConfigFile overrides web.config_file (--web.config.file).
	WebConfigFile string
	Logger        *slog.Logger
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
	// ReleaseStartupPages gives back the executable's pages that only
	// start-up (and each reload) touched, once it is over
	// (internal/pagetrim); the daemon sets it, tests that run the agent
	// inside their own binary do not.
	ReleaseStartupPages bool
}

// ShutdownTimeout bounds a clean shutdown; systemd's default stop timeout
// is longer, so the agent always exits on its own first.
const ShutdownTimeout = 8 * time.Second

// Agent is one running tokpulse-agent.
type Agent struct {
	opts   Options
	logger *slog.Logger
	// registry is what /metrics serves; rulesReg what the agent gathers
	// for its rules every interval (selfgather.go); reg registers in both.
	registry  *prometheus.Registry
	rulesReg  *prometheus.Registry
	reg       prometheus.Registerer
	metrics   *selfMetrics
	server    *http.Server
	ready     atomic.Bool
	store     *state.Store
	stateDir  string
	startedAt time.Time
	// counters keeps the log sources' counters across reloads.
	counters *tpcollectors.Counters

	// The three stages of an alert: the engine evaluates, the tracker
	// owns each alert's life, the notifier delivers.
	engine   *rules.Manager
	tracker  *incident.Tracker
	notifier *notify.Manager

	mu       sync.RWMutex // guards cfg, src and pipeline
	cfg      *Config
	src      *configSource
	pipeline *pipeline
	runCtx   context.Context

	// notifyTesting is set while a notify test (POST /api/v1/notify/test)
	// runs: one at a time.
	notifyTesting atomic.Bool

	// reload is the verdict of the last reload (or of the start).
	reload atomic.Pointer[ReloadStatus]

	// lastGather is a one-line summary for STATUS= and the logs.
	lastGather atomic.Value // string
}

// New loads the configuration and builds everything it names. When the
// configuration on disk does not load (a typo, a broken rule file, an
// unreadable secret), the agent starts on the last good configuration kept
// in its state directory, says so at error level and raises its own P2
// alert; only without a last good configuration does New fail.
func New(opts Options) (*Agent, error) {
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
		rulesReg:  prometheus.NewRegistry(),
		startedAt: opts.Now(),
		counters:  tpcollectors.NewCounters(),
	}
	a.reg = newTeeRegisterer(a.registry, a.rulesReg, a.reads)
	// The process_* series are client_golang's, read at a third of its
	// collector's cost (collectors/host/selfprocess.go).
	goColl, procColl := collectors.NewGoCollector(), host.NewSelfProcess()
	a.registry.MustRegister(goColl, procColl)
	a.rulesReg.MustRegister(
		wantedCollector{c: goColl, prefix: "go_", want: a.reads},
		wantedCollector{c: procColl, prefix: "process_", want: a.reads},
	)
	a.metrics = newSelfMetrics(a.reg, opts.Build)

	src, buildErr := readConfigSource(opts.ConfigFile)
	stateDir := defaultStateDir()
	if buildErr == nil {
		if c, err := Parse(src.name, src.data); err == nil {
			stateDir = c.Agent.StateDir
		} else {
			stateDir = guessStateDir(src.data)
		}
	}
	store, err := state.Open(stateDir)
	if err != nil {
		return nil, err
	}
	a.store, a.stateDir = store, stateDir
	a.reportStateFile()

	var g *generation
	if buildErr == nil {
		g, buildErr = a.build(src, nil)
	}
	if buildErr != nil {
		lg, lgErr := loadLastGood(stateDir, opts.ConfigFile)
		if lgErr == nil {
			g, lgErr = a.build(lg, nil)
		}
		if lgErr != nil {
			_ = store.Close()
			return nil, fmt.Errorf("%w\n(and no usable last good configuration to fall back on: %v)", buildErr, lgErr)
		}
		problems := problemLines(buildErr)
		a.logger.Error("The configuration on disk does not load; running on the last good configuration until it is fixed and reloaded",
			"file", displayName(opts.ConfigFile), "last_good_saved_at", lg.savedAt, "problems", len(problems))
		for _, p := range problems {
			a.logger.Error("Configuration problem", "problem", p)
		}
		a.metrics.setLastGood(true, problems)
	}
	if err := a.newStages(g); err != nil {
		_ = store.Close()
		return nil, err
	}
	a.logWarnings(g.cfg)
	a.install(g)
	st := ReloadStatus{PID: os.Getpid(), OK: !g.src.lastGood, ConfigFile: displayName(opts.ConfigFile), LastGood: g.src.lastGood, At: a.startedAt}
	if g.src.lastGood {
		st.Error = buildErr.Error()
	} else {
		a.saveLastGood(g)
	}
	a.setReloadStatus(st)
	return a, nil
}

// newStages creates the engine, the tracker and the notifier, wired to one
// another, for the first generation.
func (a *Agent) newStages(g *generation) error {
	cfg := g.cfg
	var err error
	a.notifier, err = notify.NewWithOutputs(g.outputs, notify.Options{
		Store: a.store, Logger: a.logger.With("component", "notify"), Metrics: notify.NewMetrics(a.reg),
		Host: cfg.Agent.Hostname, Version: a.opts.Build.Version, ExternalURL: externalURL(cfg), Now: a.opts.Now,
		Firing: func() []alert.Event { return a.tracker.Firing() },
	})
	if err != nil {
		return err
	}
	a.tracker, err = incident.New(incident.Options{
		Logger: a.logger.With("component", "incident"), State: a.store,
		Policies: cfg.Severities, Host: cfg.Agent.Hostname, Version: a.opts.Build.Version, Labels: cfg.Agent.Labels,
		Evidence: &tpcollectors.HostEvidence{
			Proc: cfg.Agent.Paths.Proc, Rootfs: cfg.Agent.Paths.Rootfs, Providers: a.evidenceProviders,
			Redactor: evidence.NewRedactor(), Now: a.opts.Now, Host: &cfg.Host,
		},
		Delivery: a.notifier, Registerer: a.reg, Now: a.opts.Now, RunbookURL: cfg.Notify.RunbookURL,
	})
	if err != nil {
		return err
	}
	a.engine = rules.NewManager(rules.Options{
		Logger: a.logger.With("component", "rules"), Registerer: a.reg,
		Tracker: a.tracker, Freshness: a.unknownFamilies,
		Interval: cfg.Agent.Interval.D(), ExternalLabels: externalLabels(cfg),
	})
	a.registry.MustRegister(&swappable{a: a})
	a.rulesReg.MustRegister(wantedSet{a: a})
	return nil
}

// reads reports whether the running rules may read a metric named with
// prefix; before the rules exist, everything is read.
func (a *Agent) reads(prefix string) bool {
	return a.engine == nil || a.engine.Reads(prefix)
}

// install makes g the configuration in force: one swap of every stage. It
// cannot fail; everything that can was checked by build.
func (a *Agent) install(g *generation) {
	a.mu.Lock()
	old := a.pipeline
	a.pipeline, a.cfg, a.src = g.pipeline, g.cfg, g.src
	ctx := a.runCtx
	a.mu.Unlock()
	if ctx != nil {
		g.pipeline.start(ctx, old)
	}
	a.engine.Swap(g.rules, g.cfg.Agent.Interval.D())
	a.tracker.SetPolicies(g.cfg.Severities, g.cfg.Agent.Labels)
	a.tracker.SetRunbookURL(g.cfg.Notify.RunbookURL)
	a.tracker.SetActions(g.actions, g.executor)
	a.notifier.Apply(g.outputs)
	if a.opts.Level != nil {
		_ = a.opts.Level.UnmarshalText([]byte(g.cfg.Agent.Log.Level))
	}
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
	webConfig := cfg.Web.ConfigFile
	if a.opts.WebConfigFile != "" {
		webConfig = a.opts.WebConfigFile
	}
	ln, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		a.closeState()
		return fmt.Errorf("listening on %s: %w (set web.listen to a free address)", cfg.Web.Listen, err)
	}
	a.server = newServer(a)
	serveErr := make(chan error, 1)
	go func() { serveErr <- serve(a.server, ln, webConfig, a.logger) }()

	runCtx, stopRunners := context.WithCancel(ctx)
	defer stopRunners()
	a.mu.Lock()
	a.runCtx = runCtx
	p := a.pipeline
	a.mu.Unlock()
	p.start(runCtx, nil)
	// Actions end with the agent: a command under way is killed, and the
	// next start verifies what it cannot know.
	a.tracker.Start(runCtx)
	// Delivery outlives ctx: shutdown drains it before the state file closes.
	a.notifier.Start(context.WithoutCancel(runCtx))

	a.gather()
	a.ready.Store(true)
	a.logger.Info("Agent started", "listen", ln.Addr().String(), "collectors", p.names(), "interval", cfg.Agent.Interval)
	a.notify(SdReady, "STATUS="+a.status())
	a.releaseStartupPages(false)
	// The page cache's copy goes a minute later (releaseStartupPages).
	dropAt := time.Now().Add(dropPagesAfter)

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
	tick := time.NewTimer(untilGather(time.Now(), cfg.Agent.Interval.D()))
	defer tick.Stop()

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
			if a.Reload() {
				// A new interval applies from the next tick.
				tick.Reset(untilGather(time.Now(), a.Config().Agent.Interval.D()))
			}
			a.releaseStartupPages(false)
			dropAt = time.Now().Add(dropPagesAfter)
		case <-tick.C:
			a.gather()
			a.notify("STATUS=" + a.status())
			if !dropAt.IsZero() && !time.Now().Before(dropAt) {
				a.releaseStartupPages(true)
				dropAt = time.Time{}
			}
			tick.Reset(untilGather(time.Now(), a.Config().Agent.Interval.D()))
		case <-watchdogC:
			a.notify(SdWatchdog)
		}
	}
}

// untilGather is the time from now to the next gather. Gathers fall on
// the multiples of the interval since the epoch, the instants on which
// log sources look for their absent folders, so that the process wakes
// once for both (each wake-up costs the idle agent more than the work it
// does; docs/performance.md). A multiple closer than a tenth of the
// interval is skipped: the gather just done (a clock stepped back, a
// first gather at start) stands for it.
func untilGather(now time.Time, interval time.Duration) time.Duration {
	if interval <= 0 { // the configuration says at least 1s; never spin
		interval = 10 * time.Second
	}
	u := tpcollectors.UntilMultiple(now, interval)
	if u < interval/10 {
		u += interval
	}
	return u
}

// dropPagesAfter is how long after start-up (or a reload) the agent drops
// its executable's pages from the page cache: from then on each page the
// steady state runs is read from the disk once, which the first answers
// after a start should not wait for.
const dropPagesAfter = time.Minute

// releaseStartupPages gives back the executable's pages that start-up or
// a reload touched and the steady state does not run; with drop, the page
// cache's copy too, so that they come back one by one (RssFile 16.8 MB
// after start-up, 9.4 MB in the steady state of the default configuration;
// internal/pagetrim, docs/performance.md).
func (a *Agent) releaseStartupPages(drop bool) {
	if !a.opts.ReleaseStartupPages {
		return
	}
	n, err := pagetrim.Release(drop)
	if err != nil {
		a.logger.Debug("Could not give back the start-up pages of the executable", "err", err)
		return
	}
	a.logger.Debug("Gave back the start-up pages of the executable", "mapped_bytes", n, "page_cache", drop)
}

func (a *Agent) shutdown() error {
	a.notify(SdStopping)
	a.ready.Store(false)
	a.logger.Info("Shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	a.currentPipeline().stop()
	a.stopNotifier(ctx)
	if a.server != nil {
		if err := a.server.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Warn("HTTP server did not stop cleanly", "err", err)
		}
	}
	a.closeState()
	return nil
}

// closeState records when the tracker last evaluated and closes the state
// file; collectors have saved their positions by then.
func (a *Agent) closeState() {
	if err := a.tracker.Close(); err != nil {
		a.logger.Error("Saving the tracker's bookkeeping failed", "err", err)
	}
	if err := a.store.Close(); err != nil {
		a.logger.Error("Closing the state file failed", "err", err)
	}
}

// gather reads what the rules may read of the registry, as Prometheus
// would see it, keeps a summary, and evaluates the rules over it.
func (a *Agent) gather() {
	start := time.Now()
	mfs, err := a.rulesReg.Gather()
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
	now := a.opts.Now()
	a.engine.Ingest(now, mfs)
	ctx, cancel := context.WithTimeout(context.Background(), gatherTimeout(a.Config()))
	defer cancel()
	// Errors are logged and counted by the engine and the tracker; the
	// loop goes on, and the tracker offers refused events again.
	_ = a.engine.Evaluate(ctx, now)
	_ = a.tracker.Commit(ctx, now)
}

func (a *Agent) currentPipeline() *pipeline {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.pipeline
}

// unknownFamilies is the rules' Freshness: the families of collectors that
// have not completed a run since they started.
func (a *Agent) unknownFamilies() map[string]bool {
	return a.currentPipeline().unknownFamilies()
}

// status is the one-line STATUS= for systemd: the last gather, and what
// an operator must know about the configuration.
func (a *Agent) status() string {
	s, _ := a.lastGather.Load().(string)
	out := "tokpulse-agent " + a.opts.Build.Version + ": " + s
	if st := a.reload.Load(); st != nil {
		switch {
		case st.LastGood:
			out += "; RUNNING ON THE LAST GOOD CONFIGURATION: " + firstLine(st.Error)
		case !st.OK:
			out += "; last reload refused: " + firstLine(st.Error)
		}
	}
	return out
}

func firstLine(s string) string {
	l, rest, _ := strings.Cut(s, "\n")
	if rest != "" {
		l += " (and more, see journalctl -u tokpulse-agent)"
	}
	return l
}

func (a *Agent) notify(states ...string) {
	for _, s := range states {
		if err := a.opts.Notifier.Notify(s); err != nil {
			a.logger.Warn("Notifying systemd failed", "state", s, "err", err)
		}
	}
}

// Reload re-reads the configuration file and applies it if every part of
// it builds; otherwise nothing changes and the reasons are logged at error
// level. The verdict goes to the gauge, the status file, /api/v1/status
// and STATUS=. It reports whether the new configuration was applied.
func (a *Agent) Reload() bool {
	a.notify(SdReloading)
	defer func() { a.notify(SdReady, "STATUS="+a.status()) }()
	a.logger.Info("Reloading configuration", "file", displayName(a.opts.ConfigFile))
	prev := a.reload.Load()
	st := ReloadStatus{PID: os.Getpid(), ConfigFile: displayName(a.opts.ConfigFile), At: a.opts.Now()}
	if prev != nil {
		st.Seq = prev.Seq + 1
	}
	src, err := readConfigSource(a.opts.ConfigFile)
	var g *generation
	if err == nil {
		g, err = a.build(src, a.currentPipeline())
	}
	if err == nil {
		err = a.checkReloadable(g.cfg)
	}
	if err != nil {
		a.metrics.reloadSuccess.Set(0)
		st.Error = err.Error()
		// The agent keeps running on what it had, which may itself be the
		// last good copy.
		st.LastGood = prev != nil && prev.LastGood
		a.setReloadStatus(st)
		problems := problemLines(err)
		a.logger.Error("Configuration reload refused; keeping the running configuration", "file", displayName(a.opts.ConfigFile), "problems", len(problems))
		for _, p := range problems {
			a.logger.Error("Configuration problem", "problem", p)
		}
		return false
	}
	a.install(g)
	a.metrics.reloadSuccess.Set(1)
	a.metrics.reloadTime.SetToCurrentTime()
	a.metrics.setLastGood(false, nil)
	st.OK = true
	a.setReloadStatus(st)
	a.saveLastGood(g)
	a.logger.Info("Configuration reloaded", "collectors", g.pipeline.names(), "kept_running", len(g.pipeline.reused))
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
	if cfg.Agent.Hostname != cur.Agent.Hostname || cfg.Agent.StateDir != cur.Agent.StateDir {
		return errors.New("agent.hostname and agent.state_dir change only on restart (they name the incidents and hold the state file); run systemctl restart tokpulse-agent")
	}
	return nil
}

// setReloadStatus records st for the status file, STATUS= and the API.
func (a *Agent) setReloadStatus(st ReloadStatus) {
	a.reload.Store(&st)
	if err := writeReloadStatus(a.stateDir, st); err != nil {
		a.logger.Warn("Writing the reload status file failed; `tokpulse-agent reload` cannot learn the verdict", "err", err)
	}
}

// saveLastGood keeps g's configuration as the last good one.
func (a *Agent) saveLastGood(g *generation) {
	if g.src.lastGood {
		return
	}
	if err := saveLastGood(a.stateDir, g.src, g.rules.Files, g.rules.Sources(), a.opts.Now()); err != nil {
		a.logger.Warn("Saving the last good configuration failed; a later start with a broken file cannot fall back to this one", "err", err)
	}
}

// swappable lets the registry keep one registration while reloads replace
// the collectors behind it.
type swappable struct{ a *Agent }

func (s *swappable) Describe(chan<- *prometheus.Desc) {}

func (s *swappable) Collect(ch chan<- prometheus.Metric) {
	s.a.currentPipeline().set.Collect(ch)
}
