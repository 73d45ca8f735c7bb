package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

type nopNotifier struct{}

func (nopNotifier) Notify(string) error             { return nil }
func (nopNotifier) WatchdogInterval() time.Duration { return 0 }

func TestRulesConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"bad glob", "rule_files: ['/etc/[x']\n", `rule_files[0]: "/etc/[x" is not a valid glob`},
		{"zero response", "severities:\n  P2:\n    response: 0s\n", "severities.P2.response: must be positive; the runbook's value for P2 is 1h"},
		{"unknown key", "severities:\n  P5: {}\n", "P5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("agent.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	cfg, err := Parse("agent.yaml", []byte("severities:\n  P1:\n    response: 10m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Severities.P1.Response.D() != 10*time.Minute || len(cfg.Severities.P1.Escalate) != 2 || cfg.Severities.P2.Response.D() != time.Hour {
		t.Fatalf("a partial severities section must keep the runbook's other values: %+v", cfg.Severities)
	}
}

// TestRulesReload checks that a reload re-reads the rule files, keeps the
// running rules when they became invalid, and that relative rule_files
// resolve against the configuration file's directory.
func TestRulesReload(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rule := func(name, sev string) string {
		return "groups:\n  - name: g\n    rules:\n      - alert: " + name + "\n        expr: vector(1)\n        labels:\n          severity: " + sev + "\n"
	}
	write(rules, rule("First", "P3"))
	cfgFile := filepath.Join(dir, "agent.yaml")
	write(cfgFile, "agent:\n  state_dir: "+filepath.Join(dir, "state")+"\nrule_files: [rules.yml]\n")
	a, err := New(Options{ConfigFile: cfgFile, Notifier: nopNotifier{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.store.Close() })
	a.gather()
	alerts := a.tracker.Alerts()
	if len(alerts) != 1 || alerts[0].Name != "First" || alerts[0].State != alert.StateFiring {
		t.Fatalf("alerts %+v, want First firing", alerts)
	}
	if got := testutil.ToFloat64(a.metrics.reloadSuccess); got != 1 {
		t.Fatalf("reload gauge %v", got)
	}

	write(rules, rule("Second", "P9"))
	if a.Reload() {
		t.Fatal("a rule file with severity P9 was accepted on reload")
	}
	write(rules, rule("Second", "P4"))
	if !a.Reload() {
		t.Fatal("reload failed")
	}
	a.gather()
	names := map[string]alert.State{}
	for _, x := range a.tracker.Alerts() {
		names[x.Name] = x.State
	}
	if names["First"] != alert.StateResolved || names["Second"] != alert.StateFiring {
		t.Fatalf("after reload: %v, want First resolved and Second firing", names)
	}
}
