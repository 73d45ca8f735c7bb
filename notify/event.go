// Package notify delivers classified alerts: it turns the rules' alert
// hand-overs into events (initial, update, resolved, heartbeat) following
// the runbook's update cadence, writes every event to a durable outbox in
// the state file before any attempt to send it, and delivers it to each
// configured output (JSON webhooks, Alertmanager clusters, JSON-lines files)
// until that output accepts it. Delivery is at least once; every event has a
// stable id so that receivers can de-duplicate.
package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

// SchemaVersion is the version of the webhook body (docs/webhook.md). It
// changes only when a field is removed or changes meaning.
const SchemaVersion = "1"

// Kind says why an event was sent.
type Kind string

// The kinds of events.
const (
	// KindInitial is sent once when an alert starts firing.
	KindInitial Kind = "initial"
	// KindUpdate is sent every update_every of the alert's severity while
	// it fires, and when it reaches a new escalation step.
	KindUpdate Kind = "update"
	// KindResolved is sent once when the alert stops firing.
	KindResolved Kind = "resolved"
	// KindHeartbeat is sent every notify.heartbeat, alert or not.
	KindHeartbeat Kind = "heartbeat"
)

// Event is one notification, as written to the outbox and sent to outputs.
// Its JSON form is the webhook schema (docs/webhook.schema.json).
type Event struct {
	// ID is stable: the same alert transition always gets the same id, so
	// that receivers can de-duplicate repeated deliveries.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Status is "firing", "resolved", or "ok" for heartbeats.
	Status string `json:"status"`
	// IncidentID is shared by every event of one alert occurrence.
	IncidentID  string `json:"incident_id,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	AlertName   string `json:"alertname,omitempty"`
	Severity    string `json:"severity,omitempty"`
	Summary     string `json:"summary,omitempty"`
	Description string `json:"description,omitempty"`
	Runbook     string `json:"runbook,omitempty"`
	// Value is absent when the sample was NaN or infinite.
	Value       *float64          `json:"value,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartedAt   *time.Time        `json:"started_at,omitempty"`
	EndedAt     *time.Time        `json:"ended_at,omitempty"`
	// DurationSeconds is set on resolved events: ended_at - started_at.
	DurationSeconds  *float64   `json:"duration_seconds,omitempty"`
	ResponseDeadline *time.Time `json:"response_deadline,omitempty"`
	// Escalation is the escalation step reached ("" while only the on-call
	// engineer is notified).
	Escalation string `json:"escalation_step"`
	// Update counts the update events of this incident (1 for the first).
	Update int `json:"update_number,omitempty"`
	// NextUpdateAt is when the next update is due while the alert fires.
	NextUpdateAt *time.Time         `json:"next_update_at,omitempty"`
	Evidence     []evidence.Section `json:"evidence,omitempty"`
	Host         string             `json:"host"`
	AgentVersion string             `json:"agent_version"`
	// CreatedAt is when the agent produced the event (the hand-over).
	CreatedAt time.Time `json:"created_at"`
	// Text is the runbook's message for this kind, rendered at send time
	// with the output's templates; empty in the outbox.
	Text string `json:"text"`
}

// rank orders events for dropping: heartbeats (5) go first, then P4 .. P1.
func (e *Event) rank() int {
	if e.Kind == KindHeartbeat {
		return 5
	}
	return min(alert.Severity(e.Severity).Rank(), 5)
}

// Duration is the incident's duration (resolved events), for templates.
func (e *Event) Duration() time.Duration {
	if e.DurationSeconds == nil {
		return 0
	}
	return time.Duration(*e.DurationSeconds * float64(time.Second)).Round(time.Second)
}

// EventID is the stable id of the n-th event of kind for the alert
// occurrence (fingerprint, activeAt) on host. Exported so that tests and
// receivers can predict ids.
func EventID(host, fingerprint string, activeAt time.Time, kind Kind, n int) string {
	return hashID(host, fingerprint, strconv.FormatInt(activeAt.UnixNano(), 10), string(kind), strconv.Itoa(n))
}

// IncidentID is the id shared by every event of one alert occurrence.
func IncidentID(host, fingerprint string, activeAt time.Time) string {
	return hashID(host, fingerprint, strconv.FormatInt(activeAt.UnixNano(), 10))[:16]
}

func hashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// newAlertEvent builds the event of kind for a.
func newAlertEvent(kind Kind, a *alert.Alert, host, version string, now time.Time, n int) Event {
	started := a.ActiveAt
	if !a.FiredAt.IsZero() {
		started = a.FiredAt
	}
	e := Event{
		ID:          EventID(host, a.Fingerprint, a.ActiveAt, kind, n),
		Kind:        kind,
		Status:      "firing",
		IncidentID:  IncidentID(host, a.Fingerprint, a.ActiveAt),
		Fingerprint: a.Fingerprint,
		AlertName:   a.Name,
		Severity:    string(a.Severity),
		Summary:     a.Annotations["summary"],
		Description: a.Annotations["description"],
		Runbook:     a.Runbook(),
		Labels:      a.Labels,
		Annotations: a.Annotations,
		StartedAt:   &started,
		Escalation:  a.Escalation,
		Evidence:    a.Evidence,
		Host:        host, AgentVersion: version,
		CreatedAt: now.UTC(),
	}
	// JSON has no NaN or infinity; such a value (a ratio over zero
	// requests) is left out rather than failing the hand-over.
	if v := a.Value; !math.IsNaN(v) && !math.IsInf(v, 0) {
		e.Value = &v
	}
	if !a.ResponseDeadline.IsZero() {
		d := a.ResponseDeadline
		e.ResponseDeadline = &d
	}
	if e.Labels == nil {
		e.Labels = map[string]string{}
	}
	if e.Annotations == nil {
		e.Annotations = map[string]string{}
	}
	if kind == KindUpdate {
		e.Update = n
	}
	if kind == KindResolved {
		e.Status = "resolved"
		end := a.ResolvedAt
		if end.IsZero() {
			end = now
		}
		e.EndedAt = &end
		d := end.Sub(started).Seconds()
		e.DurationSeconds = &d
	}
	return e
}
