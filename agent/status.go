package agent

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/notify"
)

// Status is the body of GET /api/v1/status, what `tokpulse-agent status`
// shows. Its fields are documented in docs/api.md.
type Status struct {
	Agent      AgentStatus         `json:"agent"`
	Components []collectors.Status `json:"components"`
	// Alerts are the pending and firing alerts, and those resolved
	// recently, as /api/v1/alerts serves them.
	Alerts []alert.Alert `json:"alerts"`
	// Outbox is what waits for delivery, as /api/v1/outbox serves it; nil
	// when the state file could not be read.
	Outbox *notify.Status `json:"outbox,omitempty"`
	// Actions are the configured automated actions with the budget left.
	Actions []incident.ActionStatus `json:"actions"`
}

// AgentStatus describes the running agent.
type AgentStatus struct {
	Version              string    `json:"version"`
	Commit               string    `json:"commit"`
	Hostname             string    `json:"hostname"`
	StartedAt            time.Time `json:"started_at"`
	ConfigFile           string    `json:"config_file"`
	Interval             string    `json:"interval"`
	LastReloadSuccessful bool      `json:"last_reload_successful"`
	// LastReloadError is why the last reload was refused, one problem per
	// line; empty after a successful one.
	LastReloadError string `json:"last_reload_error,omitempty"`
	// LastGoodInUse is set while the agent runs on the last good copy of
	// its configuration because the file on disk did not load at start;
	// LastGoodSavedAt is when that copy was saved.
	LastGoodInUse   bool       `json:"last_good_in_use,omitempty"`
	LastGoodSavedAt *time.Time `json:"last_good_saved_at,omitempty"`
	LastGather      string     `json:"last_gather"`
}

// StatusSnapshot assembles the agent's status.
func (a *Agent) StatusSnapshot() Status {
	a.mu.RLock()
	cfg, src := a.cfg, a.src
	a.mu.RUnlock()
	gather, _ := a.lastGather.Load().(string)
	var outbox *notify.Status
	if ob, err := a.notifier.Status(); err == nil {
		outbox = &ob
	} else {
		a.logger.Warn("Reading the outbox for the status failed", "err", err)
	}
	st := AgentStatus{
		Version:              a.opts.Build.Version,
		Commit:               a.opts.Build.Commit,
		Hostname:             cfg.Agent.Hostname,
		StartedAt:            a.startedAt,
		ConfigFile:           displayName(a.opts.ConfigFile),
		Interval:             cfg.Agent.Interval.String(),
		LastReloadSuccessful: true,
		LastGather:           gather,
	}
	if r := a.reload.Load(); r != nil {
		st.LastReloadSuccessful = r.OK || r.Seq == 0
		if r.Seq > 0 && !r.OK {
			st.LastReloadError = r.Error
		}
	}
	if src.lastGood {
		st.LastGoodInUse = true
		t := src.savedAt
		st.LastGoodSavedAt = &t
	}
	return Status{
		Agent:      st,
		Components: a.currentPipeline().set.Status(),
		Alerts:     a.tracker.Alerts(),
		Outbox:     outbox,
		Actions:    a.tracker.Actions(),
	}
}

func (a *Agent) handleStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(a.StatusSnapshot())
}
