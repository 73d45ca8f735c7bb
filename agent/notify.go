package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/notify"
)

// externalURL is how receivers reach this agent: notify.external_url, or
// web.listen with a wildcard host replaced by the host name.
func externalURL(cfg *Config) string {
	host, port, err := net.SplitHostPort(cfg.Web.Listen)
	if err != nil {
		return "http://" + cfg.Web.Listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = cfg.Agent.Hostname
	}
	return "http://" + net.JoinHostPort(host, port)
}

// notifyOptions are what the outputs of cfg are built with.
func (a *Agent) notifyOptions(cfg *Config) notify.Options {
	return notify.Options{
		Host:        cfg.Agent.Hostname,
		Version:     a.opts.Build.Version,
		ExternalURL: externalURL(cfg),
		Now:         a.opts.Now,
	}
}

// stopNotifier gives delivery half of the shutdown budget to send what is
// pending; the rest stays in the outbox for the next start.
func (a *Agent) stopNotifier(ctx context.Context) {
	dctx, cancel := context.WithTimeout(ctx, ShutdownTimeout/2)
	defer cancel()
	a.notifier.Stop(dctx)
}

// handleOutbox serves GET /api/v1/outbox: pending events and dead letters
// per output, drops, and the limits.
func (a *Agent) handleOutbox(w http.ResponseWriter, _ *http.Request) {
	st, err := a.notifier.Status()
	if err != nil {
		http.Error(w, "reading the outbox: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"status": "success", "data": st})
}

// handleRequeue serves POST /api/v1/outbox/requeue[?output=NAME]: dead
// letters go back in their queue once the receiver is fixed.
func (a *Agent) handleRequeue(w http.ResponseWriter, r *http.Request) {
	n, err := a.notifier.Requeue(r.URL.Query().Get("output"))
	if err != nil {
		http.Error(w, "requeueing dead letters: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]int{"requeued": n}})
}

// NotifyTestReport is the data of POST /api/v1/notify/test, and what
// `tokpulse-agent notify test` prints: who sent the test events, from
// which configuration, and what each output did with them.
type NotifyTestReport struct {
	// ConfigFile is the configuration whose outputs were tested: the
	// running agent's (docs/api.md), or the file read by --direct.
	ConfigFile string `json:"config_file"`
	// LastGoodInUse is set when the agent runs on its last good copy
	// because the file on disk does not load: its outputs are that copy's.
	LastGoodInUse bool `json:"last_good_in_use,omitempty"`
	// User and PID are the process that sent the events, with its secrets.
	User    string             `json:"user"`
	PID     int                `json:"pid"`
	Outputs []NotifyTestOutput `json:"outputs"`
}

// NotifyTestOutput is one output's result.
type NotifyTestOutput struct {
	Output          string  `json:"output"`
	OK              bool    `json:"ok"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Error says why the output refused or could not be reached.
	Error string `json:"error,omitempty"`
}

// notifyTestTimeout bounds a notify test over the API: two events per
// output, the outputs in parallel, each POST within its output's timeout.
const notifyTestTimeout = 2 * time.Minute

// handleNotifyTest serves POST /api/v1/notify/test: the agent sends a test
// incident (TokPulseNotifyTest, P4, firing then resolved) through its own
// outputs, as the service's user with the secrets it read, and answers
// what each output did. One test at a time (409 while one runs); 200 with
// per-output results whether they succeeded or not.
func (a *Agent) handleNotifyTest(w http.ResponseWriter, r *http.Request) {
	// The API guard has refused what a web page could send (apiguard.go):
	// a page cannot make the agent send notifications.
	if !a.notifyTesting.CompareAndSwap(false, true) {
		http.Error(w, "a notify test is already running; try again when it has finished", http.StatusConflict)
		return
	}
	defer a.notifyTesting.Store(false)
	ctx, cancel := context.WithTimeout(r.Context(), notifyTestTimeout)
	defer cancel()
	a.mu.RLock()
	cfg, src := a.cfg, a.src
	a.mu.RUnlock()
	firing, resolved := incident.TestEvents(cfg.Agent.Hostname, a.opts.Build.Version, cfg.Notify.RunbookURL, a.opts.Now())
	rep := newTestReport(displayName(a.opts.ConfigFile), a.notifier.Test(ctx, []alert.Event{firing, resolved}))
	rep.LastGoodInUse = src != nil && src.lastGood
	failed := 0
	for _, o := range rep.Outputs {
		if !o.OK {
			failed++
			a.logger.Warn("Notify test: output failed", "output", o.Output, "err", o.Error)
		}
	}
	a.logger.Info("Notify test requested over the API", "outputs", len(rep.Outputs), "failed", failed)
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"status": "success", "data": rep})
}

// newTestReport turns notify test results into a report from this
// process.
func newTestReport(configFile string, res []notify.TestResult) NotifyTestReport {
	rep := NotifyTestReport{ConfigFile: configFile, PID: os.Getpid(), Outputs: []NotifyTestOutput{}}
	if u, err := user.Current(); err == nil {
		rep.User = u.Username
	} else {
		rep.User = "uid " + strconv.Itoa(os.Getuid())
	}
	for _, r := range res {
		o := NotifyTestOutput{Output: r.Output, OK: r.Err == nil, DurationSeconds: r.Duration.Seconds()}
		if r.Err != nil {
			o.Error = r.Err.Error()
		}
		rep.Outputs = append(rep.Outputs, o)
	}
	return rep
}

// NotifyTestDirect sends a test incident through every output of cfg from
// this process, as the user who runs it (`notify test --direct`). It does
// not open the state file, so it works while the agent runs; but it reads
// the secrets itself, so it proves nothing about what the service can
// read (`tokpulse-agent check` warns about that).
func NotifyTestDirect(ctx context.Context, cfg *Config, configFile string, build BuildInfo) (NotifyTestReport, error) {
	firing, resolved := incident.TestEvents(cfg.Agent.Hostname, build.Version, cfg.Notify.RunbookURL, time.Now())
	res, err := notify.Test(ctx, cfg.Notify, notify.Options{
		Host: cfg.Agent.Hostname, Version: build.Version, ExternalURL: externalURL(cfg),
	}, []alert.Event{firing, resolved})
	if err != nil {
		return NotifyTestReport{}, err
	}
	return newTestReport(displayName(configFile), res), nil
}
