package alert

import (
	"strings"
	"time"
)

// Outcome is how one automated action on an incident ended (or that it is
// still running).
type Outcome string

// The outcomes of an action. Only Running is not final.
const (
	// OutcomeRunning: the action has started and not finished; an initial
	// event sent meanwhile says so ("a restart is under way").
	OutcomeRunning Outcome = "running"
	// OutcomeSucceeded: it ran, and the alert resolved within the
	// action's verify_within.
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeNoEffect: it ran, and the alert still fired verify_within
	// later. The incident escalates one step.
	OutcomeNoEffect Outcome = "no_effect"
	// OutcomeFailed: it could not run or ran and failed (the restart job
	// failed or was refused, the command exited non-zero or timed out).
	// The incident escalates one step.
	OutcomeFailed Outcome = "failed"
	// OutcomeRateLimited: it was due, but max_runs per window had already
	// run for this action and alert; nothing ran. The incident escalates
	// one step.
	OutcomeRateLimited Outcome = "rate_limited"
	// OutcomeDryRun: dry_run is set; the action was due and the budget
	// allowed it, and nothing ran.
	OutcomeDryRun Outcome = "dry_run"
)

// Outcomes lists the final outcomes, for metrics.
func Outcomes() []Outcome {
	return []Outcome{OutcomeSucceeded, OutcomeNoEffect, OutcomeFailed, OutcomeRateLimited, OutcomeDryRun}
}

// Escalates reports whether the outcome escalates the incident at once:
// automation did not help, so a human must.
func (o Outcome) Escalates() bool {
	return o == OutcomeNoEffect || o == OutcomeFailed || o == OutcomeRateLimited
}

// The types of action.
const (
	ActionRestartUnit = "restart_unit"
	ActionCommand     = "command"
)

// Action is one automated action on an incident, as the events of kind
// "action" carry it (and initial events while it runs, resolved events
// after it succeeded); its JSON form is the "action" object of the webhook
// schema (docs/webhook.schema.json).
type Action struct {
	// Name is the action's name in agent.yaml (actions[].name).
	Name string `json:"name"`
	// Type is ActionRestartUnit or ActionCommand.
	Type string `json:"type"`
	// Unit is the unit restarted (restart_unit); Command the argv run
	// (command).
	Unit    string   `json:"unit,omitempty"`
	Command []string `json:"command,omitempty"`
	// Description says in words what ran (or would have): "restart of
	// tokpulse.service", "run of /usr/local/bin/flush-queue --safe".
	Description string  `json:"description"`
	Outcome     Outcome `json:"outcome"`
	// Reason explains the outcome in one line.
	Reason string `json:"reason,omitempty"`
	// Error is why it failed; ExitStatus the command's exit status, when
	// it exited; Output an excerpt of what it printed (redacted).
	Error      string `json:"error,omitempty"`
	ExitStatus *int   `json:"exit_status,omitempty"`
	Output     string `json:"output,omitempty"`
	// DryRun is set for an action configured with dry_run: true.
	DryRun bool `json:"dry_run,omitempty"`
	// StartedAt is when it started (or was refused, or dry-run);
	// EndedAt when the restart job or command finished (absent while it
	// runs); VerifiedAt when the outcome was known: the alert resolved
	// (succeeded) or verify_within passed (no_effect).
	StartedAt  time.Time `json:"started_at"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
}

// Took is how long after it started the action's outcome was known: for a
// succeeded action, from the start of the restart to the alert's
// resolution ("resolved after automated restart of tokpulse.service
// (8 s)"), rounded to the second.
func (a *Action) Took() time.Duration {
	end := a.VerifiedAt
	if end.IsZero() {
		end = a.EndedAt
	}
	if end.IsZero() || end.Before(a.StartedAt) {
		return 0
	}
	return end.Sub(a.StartedAt).Round(time.Second)
}

// Seconds is Took in whole seconds, for templates: "(8 s)".
func (a *Action) Seconds() int { return int(a.Took() / time.Second) }

// DescribeAction says what an action of type t does to unit or command,
// in the words events use.
func DescribeAction(t, unit string, command []string) string {
	if t == ActionRestartUnit {
		return "restart of " + unit
	}
	return "run of " + strings.Join(command, " ")
}
