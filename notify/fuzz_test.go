package notify

import (
	"testing"
	"text/template"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// FuzzTemplates parses arbitrary notification templates (the
// templates.*_file texts and body_template) and renders every kind of
// event through them: a template that does not parse is refused, one
// that fails while rendering yields an explanation instead of the text;
// nothing may panic. Seeds: the runbook's templates, Slack's body
// template and templates that misuse the functions.
func FuzzTemplates(f *testing.F) {
	for _, s := range []string{
		defaultInitialTemplate, defaultUpdateTemplate, defaultResolvedTemplate, defaultHeartbeatTemplate,
		`{"text": {{ json .Text }}}`, `{{ time .EndedAt }} {{ value .Value }} {{ upper .Host }}`,
		`{{ time 1 }}{{ value "x" }}{{ json . }}`, `{{ range .Labels }}{{ . }}{{ end }}`, `{{ index .Labels "a" }}`,
		`{{ .Nope }}`, `{{ template "x" }}`, `{{ define "x" }}{{ template "x" }}{{ end }}{{ template "x" }}`,
		`{{ len .Evidence }}{{ range .Evidence }}{{ .Title }}{{ end }}`, `{{`, `{{ printf "%d" .Host }}`,
	} {
		f.Add(s)
	}
	now := time.Unix(1_800_000_000, 0).UTC()
	v := 85.0
	a := alert.Alert{
		Fingerprint: "f", Name: "TokPulseHighMemoryUsage", State: alert.StateFiring, Severity: alert.P2,
		Labels:      map[string]string{"alertname": "TokPulseHighMemoryUsage", "severity": "P2", "a": "b"},
		Annotations: map[string]string{"summary": "Memory usage is 85%", "runbook": "High Memory Usage"},
		Value:       v, ActiveAt: now, FiredAt: now, ResponseDeadline: now.Add(time.Hour),
	}
	events := []Event{newAlertEvent(KindInitial, &a, "web-1", "v1", now, 0)}
	up := newAlertEvent(KindUpdate, &a, "web-1", "v1", now, 1)
	events = append(events, up)
	a.State, a.ResolvedAt = alert.StateResolved, now.Add(time.Minute)
	events = append(events, newAlertEvent(KindResolved, &a, "web-1", "v1", now, 2))
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 4096 {
			return
		}
		tmpl, err := parseTextTemplate("fuzz", text)
		if err != nil {
			return
		}
		ts := &templates{byKind: map[Kind]*template.Template{}}
		for _, k := range []Kind{KindInitial, KindUpdate, KindResolved, KindHeartbeat} {
			ts.byKind[k] = tmpl
		}
		w := &webhook{tmpl: ts, body: tmpl, host: "web-1", version: "v1", now: func() time.Time { return now }}
		for _, e := range events {
			_ = ts.render(&e)
			_, _ = w.render([]Event{e})
		}
	})
}
