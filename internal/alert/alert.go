// Package alert is the model shared by the rule engine (rules), the
// incident tracker (incident) and delivery (notify): what an alerting
// rule's evaluation yields (Rule, Sample), the alert as the API shows it
// (Alert), the notification events (Event), and the runbook's severity
// classes and policies (Severity, Policies) read from the "severities:"
// section of agent.yaml.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

// State is where an alert is in its life.
type State string

// The states an alert passes through. Inactive alerts are never shown.
const (
	StatePending  State = "pending"
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// Rule identifies an alerting rule and carries what its alerts' life
// depends on. Group and Name identify it across reloads and restarts.
type Rule struct {
	Group string
	Name  string
	// File and Line locate the rule for messages.
	File          string
	Line          int
	For           time.Duration
	KeepFiringFor time.Duration
	Severity      Severity
	// Reads are the metric names the rule's expression reads (recording
	// rules resolved), which choose the host evidence of its alerts.
	Reads []string
	// Threshold is the comparison of the expression with a number, when
	// it has one (`… > 80`); the "threshold" annotation overrides it.
	Threshold *Threshold
}

// Key identifies the rule across reloads and restarts.
func (r Rule) Key() string { return r.Group + "\x00" + r.Name }

// Sample is one element of an alerting rule's result: the label set of
// one alert (the rule's labels and alertname applied) with its expanded
// annotations and the value that made it active.
type Sample struct {
	Labels      labels.Labels
	Annotations map[string]string
	Value       float64
}

// Active is an alert that is pending or firing after an evaluation, as the
// rule engine writes it into the ALERTS and ALERTS_FOR_STATE series.
type Active struct {
	Labels   labels.Labels
	State    State
	ActiveAt time.Time
}

// Fingerprint is a stable hash of an alert's label set (alertname
// included): it identifies the alert across restarts and versions.
func Fingerprint(l labels.Labels) string {
	h := sha256.New()
	l.Range(func(x labels.Label) {
		h.Write([]byte(x.Name))
		h.Write([]byte{0xff})
		h.Write([]byte(x.Value))
		h.Write([]byte{0xfe})
	})
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Alert is one alert as /api/v1/alerts and `tokpulse-agent status` show
// it: an incident's current view, with its classification and evidence.
type Alert struct {
	// Fingerprint identifies the alert instance: a stable hash of its
	// labels (alertname included). It does not change across restarts.
	Fingerprint string `json:"fingerprint"`
	// IncidentID is the id every event of this occurrence carries.
	IncidentID  string            `json:"incident_id,omitempty"`
	Name        string            `json:"alertname"`
	State       State             `json:"state"`
	Severity    Severity          `json:"severity"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	// Value is the sample value of the rule's expression that made the
	// alert active, the value that crossed the threshold.
	Value float64 `json:"value"`
	// ActiveAt is when the expression first returned this label set
	// (pending began); FiredAt when it started firing; ResolvedAt when it
	// stopped. Absent while they have not happened.
	ActiveAt   time.Time `json:"active_at"`
	FiredAt    time.Time `json:"fired_at,omitzero"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// ResponseDeadline is ActiveAt plus the severity's response time.
	ResponseDeadline time.Time `json:"response_deadline"`
	// Escalation is the escalation step reached ("" while only the on-call
	// engineer is notified).
	Escalation string `json:"escalation,omitempty"`
	// Held is set while the alert's input has not been collected afresh
	// since the agent started or reloaded: its state is the one restored
	// from the state file, neither confirmed nor resolved yet.
	Held bool `json:"held,omitempty"`
	// Evidence is the snapshot taken when the alert started firing.
	Evidence []evidence.Section `json:"evidence,omitempty"`
	// Actions are the automated actions run (or refused) on this
	// incident, oldest first.
	Actions []Action `json:"actions,omitempty"`
}

// Runbook returns the runbook section the rule names in its "runbook"
// annotation.
func (a *Alert) Runbook() string { return a.Annotations["runbook"] }
