package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokpulse/tokpulse-agent/agent"
)

// TestCheckActions: `check` judges actions against the rules the file
// loads and the installed polkit policy (here the package's own file):
// a restart_unit the policy does not allow fails the file, with its line;
// an alert no rule defines is a warning; without a policy installed a
// note says polkit decides.
func TestCheckActions(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	writeConfig(t, rules, `groups:
  - name: app
    rules:
      - alert: TokPulseHealthCheckFailed
        expr: tokpulse_probe_success == 0
        labels: {severity: P1}
`)
	cfg := filepath.Join(dir, "agent.yaml")
	body := `rule_files: [` + rules + `]
actions:
  - name: restart-app
    match: {alertname: TokPulseHealthCheckFailed}
    restart_unit: tokpulse.service
  - name: flush
    match: {alertname: TokPulseWebhookFailurez}
    command: [/usr/local/bin/flush-queue, --safe]
`
	writeConfig(t, cfg, body)
	check := func(policyDirs []string) (int, string, string) {
		var out, errOut bytes.Buffer
		nobody := agent.ServiceAccount{User: "nobody", Hidden: map[string]string{}}
		code := (&cli{stdout: &out, stderr: &errOut, service: nobody, policyDirs: policyDirs}).main([]string{"check", cfg})
		return code, out.String(), errOut.String()
	}
	shipped := []string{"../../packaging/polkit"}

	code, out, errOut := check(shipped)
	if code != 0 || !strings.Contains(out, "action restart-app: restart of tokpulse.service, after 0s, at most 1 per 1h per alert, verified within 1m") {
		t.Errorf("check exited %d:\n%s%s", code, out, errOut)
	}
	if want := cfg + `:7: actions[1].match: no loaded rule has an alert named "TokPulseWebhookFailurez"`; !strings.Contains(errOut, "warning: "+want) {
		t.Errorf("stderr lacks the warning %q:\n%s", want, errOut)
	}
	if strings.Contains(out, "note:") {
		t.Errorf("a note with the policy installed:\n%s", out)
	}

	_, out, _ = check(nil)
	if !strings.Contains(out, "note: "+cfg+":2: actions: no polkit policy for tokpulse-agent is installed") {
		t.Errorf("without a policy, no note says so:\n%s", out)
	}

	writeConfig(t, cfg, strings.Replace(body, "restart_unit: tokpulse.service", "restart_unit: nginx", 1))
	code, out, errOut = check(shipped)
	if want := cfg + ":5: actions[0].restart_unit: nginx.service is not among the units the polkit policy lets the agent restart"; code != 1 || !strings.Contains(errOut, want) || strings.Contains(out, "OK") {
		t.Errorf("check of a restart the policy refuses exited %d, want 1 and %q:\n%s%s", code, want, out, errOut)
	}
}
