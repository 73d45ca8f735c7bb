package notify

import (
	"testing"
	"text/template"
	"time"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
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
		`{{ .Condition }}{{ range .KeyEvidence }}{{ .Title }}{{ range .Entries }}{{ .Text }}{{ end }}{{ end }}{{ duration .Duration }}{{ .Threshold.Op }}`,
	} {
		f.Add(s)
	}
	now := time.Unix(1_800_000_000, 0).UTC()
	initial, resolved := incident.TestEvents("web-1", "v1", "https://git.example.com/RUNBOOK.md", now)
	v := 85.0
	initial.Value, initial.Unit, initial.Threshold = &v, "%", &alert.Threshold{Op: ">", Value: 80}
	initial.Evidence = []evidence.Section{{Source: "host", Kind: "host", Title: "Memory", Relevant: true, Entries: []evidence.Entry{{Text: "86%"}}}}
	up := initial
	up.Kind, up.Update, up.ID = alert.KindUpdate, 1, "u"
	events := []alert.Event{initial, up, resolved}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 4096 {
			return
		}
		tmpl, err := parseTextTemplate("fuzz", text)
		if err != nil {
			return
		}
		ts := &templates{byKind: map[alert.Kind]*template.Template{}}
		for _, k := range []alert.Kind{alert.KindInitial, alert.KindUpdate, alert.KindResolved, alert.KindHeartbeat} {
			ts.byKind[k] = tmpl
		}
		w := &webhook{tmpl: ts, body: tmpl, host: "web-1", version: "v1", now: func() time.Time { return now }}
		for _, e := range events {
			_ = ts.render(&e)
			_, _ = w.render([]alert.Event{e})
		}
	})
}
