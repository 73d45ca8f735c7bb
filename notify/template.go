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

// The runbook's "Communication Templates", filled from the event, with
// what a person needs to act on the alert: the value against its
// threshold, the link to the runbook section, the rule's description (its
// first steps) and the evidence that explains this alert. Lines the agent
// cannot know (root cause, actions taken) say so rather than guess.
const (
	runbookLine = `
{{- if and .Runbook .RunbookURL }}
Runbook: {{ .Runbook }} – {{ .RunbookURL }}
{{- else if .RunbookURL }}
Runbook: {{ .RunbookURL }}
{{- else if .Runbook }}
Runbook: section "{{ .Runbook }}" of the incident runbook
{{- end }}`

	defaultInitialTemplate = `🚨 INCIDENT ALERT
Severity: {{ .Severity }}
Service: TokPulse
Status: Investigating
Impact: {{ or .Summary .AlertName }}
Started: {{ time .StartedAt }}
Incident ID: {{ .IncidentID }}
Alert: {{ .AlertName }} on {{ .Host }}{{ with .Condition }}: {{ . }}{{ end }}
{{- with .ResponseDeadline }}
Acknowledge by: {{ time . }}{{ end }}` + runbookLine + `
{{- with .Action }}
Automated response: {{ .Description }} under way (action {{ .Name }}){{ end }}
{{- with .Description }}

First steps: {{ . }}{{ end }}
{{- with .KeyEvidence }}

Evidence:{{ range . }}
• {{ .Title }}{{ range .Entries }}
    {{ .Text }}{{ end }}{{ end }}{{ end }}`

	defaultUpdateTemplate = `📊 INCIDENT UPDATE
Incident ID: {{ .IncidentID }}
Status: Investigating
Current Actions: {{ if .Escalation }}escalated to {{ .Escalation }}{{ else }}on-call engineer notified{{ end }}; {{ .AlertName }} still firing on {{ .Host }}{{ with .Condition }} ({{ . }}){{ end }}
ETA: unknown
Next Update: {{ with .NextUpdateAt }}{{ time . }}{{ else }}at the next change{{ end }}` + runbookLine

	defaultResolvedTemplate = `✅ INCIDENT RESOLVED
Incident ID: {{ .IncidentID }}
Duration: {{ duration .Duration }}{{ if and .StartedAt .EndedAt }} (from {{ time .StartedAt }} to {{ time .EndedAt }}){{ end }}
Recovered: {{ .AlertName }} on {{ .Host }} no longer fires{{ with .Action }}: resolved after automated {{ .Description }} ({{ .Seconds }} s){{ end }}{{ with .Summary }}; it was: {{ . }}{{ end }}{{ with .Condition }} (last seen: {{ . }}){{ end }}
Root Cause: not determined by tokpulse-agent; record it in the post-incident review
Actions Taken: {{ with .Action }}automated {{ .Description }} by tokpulse-agent (action {{ .Name }}, {{ .Outcome }}){{ else }}none by tokpulse-agent, which only observes{{ end }}
Prevention: to be decided in the post-incident review` + runbookLine

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
// *time.Time) in UTC, value formats a sample value, duration a duration
// without its zero units (1h5m, 50m, 45s), json quotes a value as JSON
// (for body templates).
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"duration": humanDuration,
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
			switch f := v.(type) {
			case *float64:
				if f != nil {
					return alert.FormatValue(*f)
				}
			case float64:
				return alert.FormatValue(f)
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

// humanDuration writes d to the second without zero units: 1h5m, 50m,
// 5m30s, 45s.
func humanDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if d >= time.Minute {
		s = strings.TrimSuffix(s, "0s")
	}
	if d >= time.Hour {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
