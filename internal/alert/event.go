package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
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
	// RunbookURL links the runbook section: the rule's runbook_url
	// annotation, or notify.runbook_url with the anchor of the section
	// that the runbook annotation names.
	RunbookURL string `json:"runbook_url,omitempty"`
	// Value is absent when the sample was NaN or infinite.
	Value *float64 `json:"value,omitempty"`
	// Unit is the unit of Value and Threshold (the rule's "unit"
	// annotation: "%", "s").
	Unit string `json:"unit,omitempty"`
	// Threshold is the comparison Value crossed (the rule's "threshold"
	// annotation, or its expression's comparison with a number).
	Threshold   *Threshold        `json:"threshold,omitempty"`
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

// Condition says, for templates, what the alert's value is against its
// threshold: "86.2 % > 80 %". Only the value ("3 matching lines in 5m")
// when the rule fires on any value above zero, and nothing when the
// threshold is a state (probe_success == 0: the value only repeats it) or
// when there is neither a threshold nor a unit to make the number mean
// something beyond the summary.
func (e *Event) Condition() string {
	if e.Value == nil {
		return ""
	}
	v := *e.Value
	switch t := e.Threshold; {
	case t == nil && e.Unit == "":
		return "value " + FormatValue(v)
	case t == nil:
		return withUnit(v, e.Unit)
	case t.StateTest():
		return ""
	case t.Op == ">" && t.Value == 0:
		return withUnit(v, e.Unit)
	}
	return withUnit(v, e.Unit) + " " + e.Threshold.Op + " " + withUnit(e.Threshold.Value, e.Unit)
}

// Text bounds of the evidence a message shows (KeyEvidence): the webhook
// body carries it all, a chat message only what explains the alert.
const (
	keySections     = 3
	keyEntries      = 6
	keyEntryRunes   = 200
	keyEntryElision = "…"
)

// KeyEvidence returns, for templates, the evidence sections that explain
// this alert (those marked Relevant, at most three), each cut to six
// entries of one line and at most 200 characters: the first six of a
// host table (its header, then the rows that matter most: the largest
// processes, the alert's mount point), the last six of anything else (the
// newest log lines).
func (e *Event) KeyEvidence() []evidence.Section {
	var out []evidence.Section
	for _, s := range e.Evidence {
		if !s.Relevant || len(s.Entries) == 0 {
			continue
		}
		entries := s.Entries
		switch {
		case len(entries) <= keyEntries:
		case s.Kind == "host":
			entries = entries[:keyEntries]
		default:
			entries = entries[len(entries)-keyEntries:]
		}
		s.Entries = make([]evidence.Entry, len(entries))
		for i, en := range entries {
			s.Entries[i] = evidence.Entry{Time: en.Time, Text: oneLine(en.Text, keyEntryRunes)}
		}
		out = append(out, s)
		if len(out) == keySections {
			break
		}
	}
	return out
}

// oneLine folds s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), " ⏎ ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + keyEntryElision
	}
	return s
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
