package notify

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// TestActionTexts: the default texts of automated actions (docs/actions.md
// shows them): the initial page says a restart is under way, the action's
// own event says how it went, the resolution names what it followed; and
// action_file replaces the action's text.
func TestActionTexts(t *testing.T) {
	at := time.Date(2026, 11, 27, 5, 36, 0, 0, time.UTC)
	three := 3
	restart := &alert.Action{Name: "restart-app", Type: alert.ActionRestartUnit, Unit: "tokpulse.service",
		Description: "restart of tokpulse.service", StartedAt: at}
	base := alert.Event{IncidentID: "0e47fd65298fe015", AlertName: "TokPulseHealthCheckFailed", Severity: "P1", Host: "web-1",
		Summary: "Health check health failing", StartedAt: &at, EndedAt: &at}
	tmpl, err := loadTemplates()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		kind   alert.Kind
		action func() *alert.Action
		esc    string
		want   string
	}{
		{"under way", alert.KindInitial, func() *alert.Action { a := *restart; a.Outcome = alert.OutcomeRunning; return &a }, "",
			"🚨 INCIDENT ALERT\nSeverity: P1\nService: TokPulse\nStatus: Investigating\nImpact: Health check health failing\nStarted: 2026-11-27 05:36:00 UTC\nIncident ID: 0e47fd65298fe015\nAlert: TokPulseHealthCheckFailed on web-1\nAutomated response: restart of tokpulse.service under way (action restart-app)"},
		{"succeeded", alert.KindAction, func() *alert.Action {
			a := *restart
			a.Outcome, a.Reason, a.EndedAt, a.VerifiedAt = alert.OutcomeSucceeded, "the alert resolved 8s after the restart of tokpulse.service started", at.Add(2*time.Second), at.Add(8*time.Second)
			return &a
		}, "",
			"🤖 AUTOMATED ACTION\nIncident ID: 0e47fd65298fe015\nAlert: TokPulseHealthCheckFailed (P1) on web-1\nAction: restart-app, restart of tokpulse.service\nOutcome: succeeded: the alert resolved 8s after the restart of tokpulse.service started"},
		{"failed", alert.KindAction, func() *alert.Action {
			return &alert.Action{Name: "flush", Type: alert.ActionCommand, Command: []string{"/usr/local/bin/flush-queue"}, Description: "run of /usr/local/bin/flush-queue",
				Outcome: alert.OutcomeFailed, Reason: "the run of /usr/local/bin/flush-queue failed", Error: "/usr/local/bin/flush-queue exited with status 3: queue locked",
				ExitStatus: &three, Output: "stderr: queue locked", StartedAt: at}
		}, "engineering-manager",
			"🤖 AUTOMATED ACTION\nIncident ID: 0e47fd65298fe015\nAlert: TokPulseHealthCheckFailed (P1) on web-1\nAction: flush, run of /usr/local/bin/flush-queue\nOutcome: failed: the run of /usr/local/bin/flush-queue failed\nError: /usr/local/bin/flush-queue exited with status 3: queue locked\nOutput: stderr: queue locked\nEscalation: engineering-manager"},
		{"dry run", alert.KindAction, func() *alert.Action {
			a := *restart
			a.Outcome, a.DryRun, a.Reason = alert.OutcomeDryRun, true, "would have started the restart of tokpulse.service; nothing ran"
			return &a
		}, "",
			"🤖 AUTOMATED ACTION\nIncident ID: 0e47fd65298fe015\nAlert: TokPulseHealthCheckFailed (P1) on web-1\nAction: restart-app, restart of tokpulse.service (dry run)\nOutcome: dry_run: would have started the restart of tokpulse.service; nothing ran"},
		{"resolved after it", alert.KindResolved, func() *alert.Action {
			a := *restart
			a.Outcome, a.VerifiedAt = alert.OutcomeSucceeded, at.Add(8*time.Second)
			return &a
		}, "",
			"✅ INCIDENT RESOLVED\nIncident ID: 0e47fd65298fe015\nDuration: 0s (from 2026-11-27 05:36:00 UTC to 2026-11-27 05:36:00 UTC)\nRecovered: TokPulseHealthCheckFailed on web-1 no longer fires: resolved after automated restart of tokpulse.service (8 s); it was: Health check health failing\nRoot Cause: not determined by tokpulse-agent; record it in the post-incident review\nActions Taken: automated restart of tokpulse.service by tokpulse-agent (action restart-app, succeeded)\nPrevention: to be decided in the post-incident review"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := base
			e.Kind, e.Action, e.Escalation = tc.kind, tc.action(), tc.esc
			if got := tmpl.render(&e); got != tc.want {
				t.Errorf("text:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	file := filepath.Join(t.TempDir(), "action.tmpl")
	if err := os.WriteFile(file, []byte("{{ .Action.Name }}: {{ .Action.Outcome }}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err = loadTemplates(TemplateFiles{Action: file})
	if err != nil {
		t.Fatal(err)
	}
	e := base
	e.Kind, e.Action = alert.KindAction, &alert.Action{Name: "restart-app", Outcome: alert.OutcomeNoEffect}
	if got := tmpl.render(&e); got != "restart-app: no_effect" {
		t.Errorf("action_file text %q", got)
	}
}
