// Package alert holds what the rules hand on to delivery: the Alert (an
// alerting rule's instance with its classification and evidence), the Sink
// that receives alerts after every evaluation, and the severity policy of
// the runbook (response time, update cadence, escalation) that both sides
// read from the "severities:" section of agent.yaml.
package alert

import (
	"context"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

// State is where an alert is in its life.
type State string

// The states an alert passes through. Inactive alerts are never handed on.
const (
	StatePending  State = "pending"
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// Alert is one instance of an alerting rule (one label set).
type Alert struct {
	// Fingerprint identifies the alert instance: a stable hash of its
	// labels (alertname included). It does not change across restarts.
	Fingerprint string            `json:"fingerprint"`
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
	// stopped (zero while active).
	ActiveAt   time.Time `json:"active_at"`
	FiredAt    time.Time `json:"fired_at,omitempty"`
	ResolvedAt time.Time `json:"resolved_at,omitempty"`
	// ResponseDeadline is ActiveAt plus the severity's response time.
	ResponseDeadline time.Time `json:"response_deadline"`
	// Escalation is the escalation step reached at the time of the
	// evaluation ("" while only the on-call engineer is notified).
	Escalation string `json:"escalation,omitempty"`
	// Evidence is the snapshot taken when the alert started firing.
	Evidence []evidence.Section `json:"evidence,omitempty"`
}

// Runbook returns the runbook section the rule names in its "runbook"
// annotation.
func (a *Alert) Runbook() string { return a.Annotations["runbook"] }

// Sink receives, after every rule evaluation, every alert that is firing and
// every alert that resolved in that evaluation. Alerts must be written
// durably (to the outbox) before Alerts returns: the rules persist their own
// state only afterwards, so that a crash in between repeats a hand-over
// rather than losing one. Receivers de-duplicate by Fingerprint and State.
type Sink interface {
	Alerts(ctx context.Context, now time.Time, alerts []Alert) error
}
