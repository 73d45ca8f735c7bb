package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// Command actions (issue 16) against the real binary and a signing
// webhook receiver: one agent, five alerts, each over a check that fails
// until a file exists, each answered by a command action. The commands
// are real processes; every body is validated against the webhook schema
// by the receiver.

// actRules: one P1 per case, at once.
const actRules = `groups:
  - name: actions
    rules:
%s`

const actRule = `      - alert: %[1]s
        expr: tokpulse_check_success{check=%[2]q} == 0
        labels: {severity: P1}
        annotations: {summary: "check %[2]s failing"}
`

// actCase is one alert and its action.
type actCase struct {
	alert, check string
	// action is the body of the action (name and match are added).
	action string
}

func TestCommandActions(t *testing.T) {
	dir := t.TempDir()
	listen := testutil.FreeAddr(t)
	hook := &lcHook{t: t, rc: testutil.NewReceiver(t, "k3y-actions")}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("k3y-actions\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := func(check string) string { return filepath.Join(dir, "ok-"+check) }
	runs := filepath.Join(dir, "runs-budget")
	cases := []actCase{
		// The command repairs what the check tests: the alert resolves.
		{"ActSucceeds", "succeeds", fmt.Sprintf("command: [/bin/touch, %s]", ok("succeeds"))},
		{"ActFails", "fails", `command: [/bin/sh, -c, "echo queue locked >&2; exit 3"]`},
		{"ActTimesOut", "timesout", "command: [/bin/sleep, '30']\n    timeout: 1s"},
		{"ActDryRun", "dryrun", fmt.Sprintf("command: [/bin/touch, %s]\n    dry_run: true", ok("dryrun"))},
		// Counts its runs in a file, so that a run the agent does not
		// report would still be seen.
		{"ActBudget", "budget", fmt.Sprintf("command: [/bin/sh, -c, 'echo ran >> %s; touch %s']\n    max_runs: 1\n    per: 1h", runs, ok("budget"))},
	}
	var rules, checks, acts strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&rules, actRule, c.alert, c.check)
		fmt.Fprintf(&checks, "  - {name: %s, command: [/usr/bin/test, -e, %s], interval: 1s, timeout: 1s}\n", c.check, ok(c.check))
		fmt.Fprintf(&acts, "  - name: act-%s\n    match: {alertname: %s}\n    verify_within: 20s\n    %s\n", c.check, c.alert, c.action)
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("rules.yml", fmt.Sprintf(actRules, rules.String()))
	write("agent.yaml", fmt.Sprintf(`agent:
  hostname: act-host
  interval: 1s
  state_dir: %[1]s/state
web:
  listen: %[2]s
host: {cpu: false, load: false, memory: false, boot_time: false, filesystem: {enabled: false}, disk: {enabled: false}, network: {enabled: false}}
checks:
%[3]srule_files: [rules.yml]
notify:
  heartbeat: 0s
  retry: {initial_interval: 100ms, max_interval: 1s}
  webhooks:
    - {name: central, url: %[4]q, secret_file: %[1]s/secret}
actions:
%[5]s`, dir, listen, checks.String(), hook.rc.URL, acts.String()))
	cfg := filepath.Join(dir, "agent.yaml")
	start := func() *testutil.Agent {
		a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Addr: listen,
			Env: []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + dir + "/no_bus_socket"}})
		a.WaitReady(t, 1, 20*time.Second)
		return a
	}
	agent := start()

	// kinds waits until alert's events, in order, are want.
	kinds := func(alert, want string, timeout time.Duration) []event {
		t.Helper()
		var got []event
		testutil.Eventually(t, timeout, alert+": "+want, func() bool {
			got = hook.find(alert, "")
			var ks []string
			for _, e := range got {
				ks = append(ks, e.Kind)
			}
			return strings.Join(ks, " ") == want
		})
		return got
	}

	t.Run("success", func(t *testing.T) {
		evs := kinds("ActSucceeds", "initial action resolved", 30*time.Second)
		if a := evs[0].Action; a == nil || a.Outcome != "running" || !strings.Contains(evs[0].Text, "Automated response: run of /bin/touch") {
			t.Errorf("initial event's action %+v, text %q: want the run under way", a, evs[0].Text)
		}
		if a := evs[1].Action; a.Outcome != "succeeded" || a.Type != "command" || a.Name != "act-succeeds" {
			t.Errorf("action %+v, want succeeded", a)
		}
		if !strings.Contains(evs[2].Text, "resolved after automated run of /bin/touch") || evs[2].Action == nil {
			t.Errorf("resolved text %q does not name the action", evs[2].Text)
		}
	})
	t.Run("failure", func(t *testing.T) {
		evs := kinds("ActFails", "initial action update", 30*time.Second)
		a := evs[1].Action
		if a.Outcome != "failed" || a.ExitStatus == nil || *a.ExitStatus != 3 || !strings.Contains(a.Error, "exited with status 3: queue locked") ||
			a.Output != "stderr: queue locked" {
			t.Errorf("action %+v, want failed with status 3 and its output", a)
		}
		if evs[1].Escalation != "engineering-manager" || evs[2].Escalation != "engineering-manager" {
			t.Errorf("escalation %q, %q: a failed action escalates the P1 at once", evs[1].Escalation, evs[2].Escalation)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		evs := kinds("ActTimesOut", "initial action update", 30*time.Second)
		if a := evs[1].Action; a.Outcome != "failed" || !strings.Contains(a.Error, "did not finish within 1s and was killed with everything it started") {
			t.Errorf("action %+v, want failed by the timeout", a)
		}
	})
	t.Run("dry run", func(t *testing.T) {
		evs := kinds("ActDryRun", "initial action", 30*time.Second)
		if a := evs[1].Action; a.Outcome != "dry_run" || !a.DryRun || evs[1].Escalation != "" {
			t.Errorf("action %+v, escalation %q: want a dry run, no escalation", a, evs[1].Escalation)
		}
		if _, err := os.Stat(ok("dryrun")); err == nil {
			t.Errorf("the dry run ran its command")
		}
	})
	t.Run("budget across a restart", func(t *testing.T) {
		kinds("ActBudget", "initial action resolved", 30*time.Second)
		// The failure comes back while the agent is stopped: the new
		// incident, after the restart, finds the hour's budget spent.
		agent.Signal(t, 15)
		if code := agent.WaitExit(t, 15*time.Second); code != 0 {
			t.Fatalf("agent exited %d", code)
		}
		if err := os.Remove(ok("budget")); err != nil {
			t.Fatal(err)
		}
		agent = start()
		evs := kinds("ActBudget", "initial action resolved initial action update", 30*time.Second)
		if a := evs[4].Action; a.Outcome != "rate_limited" || !strings.Contains(a.Reason, "max_runs 1 per 1h already ran") {
			t.Errorf("second incident's action %+v, want rate_limited", a)
		}
		if evs[3].IncidentID == evs[0].IncidentID || evs[5].Escalation != "engineering-manager" {
			t.Errorf("incidents %s then %s, escalation %q: want a new incident, escalated", evs[0].IncidentID, evs[3].IncidentID, evs[5].Escalation)
		}
		b, err := os.ReadFile(runs)
		if err != nil || strings.Count(string(b), "ran") != 1 {
			t.Errorf("the command ran %d times (%v), want once", strings.Count(string(b), "ran"), err)
		}
		_, body := agent.Get(t, "/metrics")
		for _, want := range []string{
			`tokpulse_action_runs_total{action="act-budget",outcome="rate_limited"} 1`,
			`tokpulse_action_last_run_timestamp_seconds{action="act-budget"} `,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		_, st := agent.Get(t, "/api/v1/status")
		if !strings.Contains(st, `"name": "act-budget"`) || !strings.Contains(st, `"runs_left": 0`) {
			t.Errorf("/api/v1/status does not show act-budget's spent budget:\n%s", st)
		}
	})
}
