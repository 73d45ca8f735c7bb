package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

// SchemaVersion is the version of the event body (docs/webhook.md). It
// changes only when a field is removed or changes meaning.
const SchemaVersion = "1"

// Kind says why an event was sent.
type Kind string

// The kinds of events.
const (
	// KindInitial is sent once when an incident starts firing (and again,
	// with the same id, to an output that was added while it fired).
	KindInitial Kind = "initial"
	// KindUpdate is sent every update_every of the incident's severity
	// while it fires, and when it reaches a new escalation step.
	KindUpdate Kind = "update"
	// KindResolved is sent once when the incident ends.
	KindResolved Kind = "resolved"
	// KindHeartbeat is sent every notify.heartbeat, alert or not.
	KindHeartbeat Kind = "heartbeat"
	// KindAction is sent once per automated action on an incident (the
	// "actions:" of agent.yaml) when its outcome is known: succeeded,
	// no_effect, failed, rate_limited or dry_run.
	KindAction Kind = "action"
)

// Event is one notification about an incident (or a heartbeat), as the
// incident tracker produces it, the outbox keeps it and the outputs send
// it. Its JSON form is the webhook schema (docs/webhook.schema.json).
type Event struct {
	// ID is stable: the same transition of the same incident always gets
	// the same id, so that receivers can de-duplicate repeated deliveries.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Status is "firing", "resolved", or "ok" for heartbeats.
	Status string `json:"status"`
	// IncidentID is shared by every event of one incident.
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
	// Action is the automated action the event reports (kind action), the
	// one under way (initial), or the one after which the alert resolved
	// (resolved).
	Action       *Action `json:"action,omitempty"`
	Host         string  `json:"host"`
	AgentVersion string  `json:"agent_version"`
	// CreatedAt is when the agent produced the event.
	CreatedAt time.Time `json:"created_at"`
	// Text is the runbook's message for this kind, rendered at send time
	// with the output's templates; empty in the outbox.
	Text string `json:"text"`

	// HoldUntil is the end of the severity's group_wait for an initial
	// event: delivery holds it until then, so that incidents that start
	// together leave in one request. The outbox keeps it beside the event;
	// receivers never see it.
	HoldUntil time.Time `json:"-"`
}

// Rank orders events for dropping from a full outbox: heartbeats (5) go
// first, then P4 .. P1.
func (e *Event) Rank() int {
	if e.Kind == KindHeartbeat {
		return 5
	}
	return min(Severity(e.Severity).Rank(), 5)
}

// Duration is the incident's duration (resolved events), for templates.
func (e *Event) Duration() time.Duration {
	if e.DurationSeconds == nil {
		return 0
	}
	return time.Duration(*e.DurationSeconds * float64(time.Second)).Round(time.Second)
}

// EventID is the stable id of the n-th event of kind for the incident of
// fingerprint that became active at activeAt on host. Exported so that
// tests and receivers can predict ids.
func EventID(host, fingerprint string, activeAt time.Time, kind Kind, n int) string {
	return HashID(host, fingerprint, strconv.FormatInt(activeAt.UnixNano(), 10), string(kind), strconv.Itoa(n))
}

// IncidentID is the id shared by every event of one incident: the alert's
// fingerprint on host, active since activeAt. It does not change across
// restarts and upgrades of the agent.
func IncidentID(host, fingerprint string, activeAt time.Time) string {
	return HashID(host, fingerprint, strconv.FormatInt(activeAt.UnixNano(), 10))[:16]
}

// HashID hashes parts (length-prefixed, so that no two lists collide) into
// a 32-hex-digit id.
func HashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
