package incident

import (
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// RunbookURL links an alert to its runbook section: the rule's own
// runbook_url annotation (the Prometheus community's convention) when it
// has one, or a runbook annotation that is itself a URL; else base
// (notify.runbook_url, the runbook document's address) with the anchor of
// the section the runbook annotation names, as GitHub and GitLab make it
// from the heading ("High Memory Usage" → #high-memory-usage). Empty when
// there is nothing to link to.
func RunbookURL(base string, annotations map[string]string) string {
	if u := strings.TrimSpace(annotations["runbook_url"]); absoluteURL(u) {
		return u
	}
	section := strings.TrimSpace(annotations["runbook"])
	if absoluteURL(section) {
		return section
	}
	if base == "" || section == "" {
		return ""
	}
	base, _, _ = strings.Cut(base, "#")
	return base + "#" + Slug(section)
}

// absoluteURL reports whether s is a URL a person can open (the webhook
// schema says runbook_url is one).
func absoluteURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != "" && !strings.ContainsAny(s, " \t\n")
}

// Slug is the anchor GitHub gives a Markdown heading: lower case, spaces
// as hyphens, and every character that is not a letter, a digit, a hyphen
// or an underscore removed ("5. Post-Incident Review" →
// "5-post-incident-review").
func Slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// threshold is what an event says its value crossed: the rule's threshold
// annotation when it reads as one (a templated one is read once
// expanded), else the expression's own comparison.
func threshold(annotation string, fromExpr *alert.Threshold) *alert.Threshold {
	if annotation != "" {
		if t, err := alert.ParseThreshold(annotation); err == nil {
			return &t
		}
	}
	return fromExpr
}

// TestEventName is the alert name of the test events.
const TestEventName = "TokPulseNotifyTest"

// TestEvents are the initial and resolved events of a P4 test incident,
// which `tokpulse-agent notify test` sends through every output to prove
// the path: shaped as real events, with the runbook's address as their
// link when notify.runbook_url is set, so that the receiver shows what a
// real alert will look like.
func TestEvents(host, version, runbookURL string, now time.Time) (alert.Event, alert.Event) {
	now = now.UTC()
	fp := alert.HashID("notify-test", host, now.String())[:16]
	labels := map[string]string{"alertname": TestEventName, "severity": "P4", "test": "true"}
	anns := map[string]string{"summary": "Test notification from tokpulse-agent notify test on " + host,
		"description": "An operator checked the notification path; no action needed."}
	started, deadline, next := now, now.Add(24*time.Hour), now.Add(24*time.Hour)
	firing := alert.Event{
		ID: alert.EventID(host, fp, now, alert.KindInitial, 0), Kind: alert.KindInitial, Status: "firing",
		IncidentID: alert.IncidentID(host, fp, now), Fingerprint: fp, AlertName: TestEventName,
		Severity: "P4", Summary: anns["summary"], Description: anns["description"], RunbookURL: runbookURL,
		Labels: labels, Annotations: anns, StartedAt: &started, ResponseDeadline: &deadline,
		NextUpdateAt: &next, Host: host, AgentVersion: version, CreatedAt: now,
	}
	resolved := firing
	resolved.ID, resolved.Kind, resolved.Status, resolved.NextUpdateAt = alert.EventID(host, fp, now, alert.KindResolved, 0), alert.KindResolved, "resolved", nil
	ended, d := now, 0.0
	resolved.EndedAt, resolved.DurationSeconds = &ended, &d
	return firing, resolved
}
