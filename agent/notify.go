package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"

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

// NotifyTest sends a test alert (firing, then resolved) through every
// output of cfg and writes one line per output to w. It does not open the
// state file, so it works while the agent runs. It returns the exit code:
// 0 when every output accepted the test, 1 otherwise.
func NotifyTest(ctx context.Context, cfg *Config, build BuildInfo, w io.Writer) int {
	if len(cfg.Notify.OutputNames()) == 0 {
		fmt.Fprintln(w, "no notify outputs configured; add notify.webhooks, notify.alertmanagers or notify.files")
		return 1
	}
	res, err := notify.Test(ctx, cfg.Notify, notify.Options{
		Host: cfg.Agent.Hostname, Version: build.Version, ExternalURL: externalURL(cfg),
	})
	if err != nil {
		fmt.Fprintln(w, err)
		return 1
	}
	code := 0
	for _, r := range res {
		if r.Err != nil {
			code = 1
			fmt.Fprintf(w, "FAIL %s (%s): %v\n", r.Output, r.Duration.Round(1e6), r.Err)
			continue
		}
		fmt.Fprintf(w, "OK   %s (%s)\n", r.Output, r.Duration.Round(1e6))
	}
	return code
}
