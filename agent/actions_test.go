package agent

import (
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// TestActionsConfig: the defaults of an action, the unit name completed
// as systemctl completes it, and match_re anchored as Prometheus' and
// Alertmanager's matchers are.
func TestActionsConfig(t *testing.T) {
	cfg, err := Parse("agent.yaml", []byte(`actions:
  - name: restart-app
    match: {alertname: TokPulseHealthCheckFailed}
    restart_unit: tokpulse
  - name: flush
    match_re: {alertname: 'TokPulseWebhook.*', severity: P2}
    command: [/usr/local/bin/flush-queue, --safe]
    after: 30s
    max_runs: 2
    per: 2h
    verify_within: 5m
    timeout: 10s
    dry_run: true
`))
	if err != nil {
		t.Fatal(err)
	}
	restart, flush := cfg.Actions[0].Action(), cfg.Actions[1].Action()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"unit completed", restart.Unit, "tokpulse.service"},
		{"type", restart.Type, alert.ActionRestartUnit},
		{"default max_runs", restart.MaxRuns, 1},
		{"default per", restart.Per, time.Hour},
		{"default verify_within", restart.VerifyWithin, time.Minute},
		{"default after", restart.After, time.Duration(0)},
		{"restart's default timeout", restart.Timeout, 90 * time.Second},
		{"description", restart.Description(), "restart of tokpulse.service"},
		{"command", flush.Description(), "run of /usr/local/bin/flush-queue --safe"},
		{"after", flush.After, 30 * time.Second},
		{"max_runs", flush.MaxRuns, 2},
		{"per", flush.Per, 2 * time.Hour},
		{"verify_within", flush.VerifyWithin, 5 * time.Minute},
		{"timeout", flush.Timeout, 10 * time.Second},
		{"dry_run", flush.DryRun, true},
		{"match_re matches whole values", flush.Matches(map[string]string{"alertname": "TokPulseWebhookFailures", "severity": "P2"}), true},
		{"match_re is anchored", flush.Matches(map[string]string{"alertname": "TokPulseWebhookFailures", "severity": "P22"}), false},
		{"match_re is anchored at the start", flush.Matches(map[string]string{"alertname": "XTokPulseWebhookFailures", "severity": "P2"}), false},
		{"match is equality", restart.Matches(map[string]string{"alertname": "TokPulseHealthCheckFailed", "probe": "health"}), true},
		{"match misses", restart.Matches(map[string]string{"alertname": "TokPulseServiceFailed"}), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}
