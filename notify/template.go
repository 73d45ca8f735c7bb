package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/safefile"
)

// The runbook's "Communication Templates", filled from the event. Lines the
// agent cannot know (root cause, actions taken) say where to look instead.
const (
	defaultInitialTemplate = `🚨 INCIDENT ALERT
Severity: {{ .Severity }}
Service: TokPulse
Status: Investigating
Impact: {{ or .Summary .AlertName }}
Started: {{ time .StartedAt }}
Incident ID: {{ .IncidentID }}
Alert: {{ .AlertName }} on {{ .Host }}{{ with .Value }} (value {{ value . }}){{ end }}
{{- with .ResponseDeadline }}
Acknowledge by: {{ time . }}{{ end }}
{{- with .Runbook }}
Runbook: {{ . }}{{ end }}
{{- with .Action }}
Automated response: {{ .Description }} under way (action {{ .Name }}){{ end }}`

	defaultUpdateTemplate = `📊 INCIDENT UPDATE
Incident ID: {{ .IncidentID }}
Status: Investigating
Current Actions: {{ if .Escalation }}escalated to {{ .Escalation }}{{ else }}on-call engineer notified{{ end }}; {{ .AlertName }} still firing on {{ .Host }}{{ with .Value }} (value {{ value . }}){{ end }}
ETA: unknown
Next Update: {{ with .NextUpdateAt }}{{ time . }}{{ else }}at the next change{{ end }}`

	defaultResolvedTemplate = `✅ INCIDENT RESOLVED
Incident ID: {{ .IncidentID }}
Duration: {{ .Duration }}
Root Cause: {{ or .Description .Summary .AlertName }}
Actions Taken: {{ with .Action }}resolved after automated {{ .Description }} ({{ .Seconds }} s); {{ end }}condition cleared on {{ .Host }} at {{ time .EndedAt }}
Prevention: {{ with .Runbook }}review runbook section "{{ . }}"{{ else }}see the post-incident review{{ end }}`

	defaultActionTemplate = `🤖 AUTOMATED ACTION
Incident ID: {{ .IncidentID }}
Alert: {{ .AlertName }} ({{ .Severity }}) on {{ .Host }}
{{- with .Action }}
Action: {{ .Name }}, {{ .Description }}{{ if .DryRun }} (dry run){{ end }}
Outcome: {{ .Outcome }}{{ with .Reason }}: {{ . }}{{ end }}
{{- with .Error }}
Error: {{ . }}{{ end }}
{{- with .Output }}
Output: {{ . }}{{ end }}{{ end }}
{{- with .Escalation }}
Escalation: {{ . }}{{ end }}`

	defaultHeartbeatTemplate = `💓 tokpulse-agent {{ .AgentVersion }} on {{ .Host }} is alive ({{ time .CreatedAt }})`
)

// templateFuncs are available to every template: time formats a time (or
// *time.Time) in UTC, value formats a sample value, json quotes a value as
// JSON (for body templates).
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"time": func(v any) string {
			switch t := v.(type) {
			case time.Time:
				return t.UTC().Format("2006-01-02 15:04:05 UTC")
			case *time.Time:
				if t == nil {
					return ""
				}
				return t.UTC().Format("2006-01-02 15:04:05 UTC")
			}
			return fmt.Sprint(v)
		},
		"value": func(v any) string {
			if f, ok := v.(*float64); ok && f != nil {
				return fmt.Sprintf("%g", *f)
			}
			return fmt.Sprint(v)
		},
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"upper": strings.ToUpper,
	}
}

func parseTextTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Funcs(templateFuncs()).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("invalid template: %w (Go text/template syntax; see docs/webhook.md)", err)
	}
	return t, nil
}

func parseBodyTemplate(text string) (*template.Template, error) {
	return parseTextTemplate("body_template", text)
}

// templates renders the text of each kind of event for one output.
type templates struct {
	byKind map[alert.Kind]*template.Template
}

// loadTemplates builds an output's templates: its own files first, then the
// notify-wide files, then the runbook defaults.
func loadTemplates(layers ...TemplateFiles) (*templates, error) {
	t := &templates{byKind: map[alert.Kind]*template.Template{}}
	defaults := map[alert.Kind]string{
		alert.KindInitial: defaultInitialTemplate, alert.KindUpdate: defaultUpdateTemplate,
		alert.KindResolved: defaultResolvedTemplate, alert.KindHeartbeat: defaultHeartbeatTemplate,
		alert.KindAction: defaultActionTemplate,
	}
	for kind, def := range defaults {
		text, source := def, "default"
		for _, l := range layers {
			f := map[alert.Kind]string{alert.KindInitial: l.Initial, alert.KindUpdate: l.Update, alert.KindResolved: l.Resolved,
				alert.KindHeartbeat: l.Heartbeat, alert.KindAction: l.Action}[kind]
			if f == "" {
				continue
			}
			data, err := readTemplate(f)
			if err != nil {
				return nil, fmt.Errorf("reading %s template: %w", kind, err)
			}
			text, source = string(data), f
			break
		}
		tmpl, err := parseTextTemplate(string(kind), text)
		if err != nil {
			return nil, fmt.Errorf("%s template %s: %w", kind, source, err)
		}
		t.byKind[kind] = tmpl
	}
	return t, nil
}

// readTemplate reads a template file; a FIFO or a device named as one must
// not hang check or a reload.
func readTemplate(path string) ([]byte, error) {
	return safefile.ReadFile(path, safefile.MaxTemplate, "template file")
}

// render returns e's text; a template that fails at run time yields an
// explanation instead of losing the event.
func (t *templates) render(e *alert.Event) string {
	tmpl := t.byKind[e.Kind]
	if tmpl == nil {
		return ""
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, e); err != nil {
		return fmt.Sprintf("%s %s %s (template error: %v)", e.Kind, e.AlertName, e.Severity, err)
	}
	return strings.TrimSpace(b.String())
}
