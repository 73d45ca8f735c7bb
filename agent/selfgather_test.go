package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRulesGatherReadsWhatRulesRead: the agent's own gather for its rules
// leaves out the Go runtime's and the process's metrics, the host
// families and the agent's collectors whose metrics no rule selects, and
// keeps every family a rule reads (the shipped packs' node_* and
// tokpulse_agent_* series); /metrics still has everything.
func TestRulesGatherReadsWhatRulesRead(t *testing.T) {
	for _, tc := range []struct {
		name, rules string
		want        []string // families the rules' gather must have
		notWant     []string // families it must leave out
	}{
		{"shipped packs", "", []string{"node_memory_MemAvailable_bytes", "node_cpu_seconds_total", "tokpulse_agent_config_last_good_in_use", "tokpulse_agent_state_file_recovered"},
			[]string{"go_goroutines", "process_resident_memory_bytes", "tokpulse_rule_evaluations_total", "node_network_receive_bytes_total"}},
		{"a rule on the rules' own metrics", "rate(tokpulse_rule_evaluations_total[5m]) == 0", []string{"tokpulse_rule_evaluations_total"},
			[]string{"go_goroutines"}},
		{"a rule on the agent's goroutines", "go_goroutines > 1000", []string{"go_goroutines", "node_cpu_seconds_total"},
			[]string{"process_resident_memory_bytes"}},
		{"a selector without a name", `count({job="x"}) > 0`, []string{"go_goroutines", "process_resident_memory_bytes"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := "agent:\n  state_dir: " + filepath.Join(dir, "state") + "\nhost:\n  filesystem:\n    enabled: true\nrule_files: [\"builtin:runbook.yml\""
			if tc.rules != "" {
				rf := filepath.Join(dir, "r.yml")
				body := "groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: '" + tc.rules + "'\n        labels: {severity: P4}\n"
				if err := os.WriteFile(rf, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg += ", " + rf
			}
			cfg += "]\n"
			file := filepath.Join(dir, "agent.yaml")
			if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			a, err := New(Options{ConfigFile: file, Notifier: nopNotifier{}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.closeState)
			got := gatheredNames(t, a.rulesReg)
			all := gatheredNames(t, a.registry)
			for _, n := range tc.want {
				if !got[n] {
					t.Errorf("the rules' gather lacks %s", n)
				}
			}
			for _, n := range tc.notWant {
				if got[n] {
					t.Errorf("the rules' gather has %s, which no rule reads", n)
				}
				if !all[n] {
					t.Errorf("/metrics lacks %s", n)
				}
			}
		})
	}
}

func gatheredNames(t *testing.T, g prometheus.Gatherer) map[string]bool {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		out[mf.GetName()] = true
	}
	return out
}
