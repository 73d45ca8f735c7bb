package actions

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// shippedDir holds the polkit rule the packages ship.
const shippedDir = "../packaging/polkit"

func TestReadPolicy(t *testing.T) {
	t.Run("shipped", func(t *testing.T) {
		p := ReadPolicy([]string{"testdata/absent", shippedDir})
		want := []string{"postgresql.service", "redis-server.service", "redis.service", "tokpulse.service"}
		if !reflect.DeepEqual(p.Units, want) || !p.Known() || len(p.Files) != 1 || filepath.Base(p.Files[0]) != PolicyFile {
			t.Errorf("policy %+v, want the shipped file's units %q", p, want)
		}
	})
	t.Run("extended", func(t *testing.T) {
		p := ReadPolicy([]string{"testdata/etc-rules.d", shippedDir})
		if !reflect.DeepEqual(p.Units, []string{"nginx.service", "postgresql.service", "redis-server.service", "redis.service", "tokpulse.service"}) {
			t.Errorf("units %q, want the shipped ones and the local nginx.service (not the other file's sshd.service)", p.Units)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		// Root reads anything; a directory in a file's place is what
		// cannot be read here.
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "60-tokpulse-agent.rules"), 0o755); err != nil {
			t.Fatal(err)
		}
		p := ReadPolicy([]string{dir, shippedDir})
		if p.Known() || len(p.Unreadable) != 1 || len(p.Units) != 4 {
			t.Errorf("policy %+v, want the shipped units, and unknown because of the unreadable file", p)
		}
	})
	t.Run("no list", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "50-tokpulse-agent.rules"), []byte("polkit.addRule(function () {});\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if p := ReadPolicy([]string{dir}); p.Known() || len(p.Unreadable) != 1 || !strings.Contains(p.Unreadable[0], "var units") {
			t.Errorf("policy %+v, want the file reported as not understood", p)
		}
	})
}

func TestCheck(t *testing.T) {
	src := []byte(`rule_files: [rules.yml]
actions:
  - name: restart-app
    match: {alertname: TokPulseHealthCheckFailed}
    restart_unit: tokpulse.service
  - name: restart-nginx
    match: {alertname: TokPulseHealthCheckFailed}
    restart_unit: nginx
  - name: flush
    match: {alertname: TokPulseWebhookFailurez}
    command: [/usr/local/bin/flush-queue]
  - name: any-db
    match_re: {alertname: 'TokPulseDatabase.*'}
    restart_unit: postgresql
`)
	var cfg struct {
		Actions yamlx.List[Config] `yaml:"actions"`
		Rules   []string           `yaml:"rule_files"`
	}
	if err := yamlx.Decode("agent.yaml", src, &cfg); err != nil {
		t.Fatal(err)
	}
	names := []string{"TokPulseHealthCheckFailed", "TokPulseWebhookFailures"}
	format := func(fs []Finding) string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Key+"@"+strconv.Itoa(f.Line)+": "+f.Msg)
		}
		return strings.Join(out, "\n")
	}
	for _, tc := range []struct {
		name                     string
		dirs                     []string
		problems, warnings, note string
	}{
		{
			name:     "policy known",
			dirs:     []string{shippedDir},
			problems: "actions[1].restart_unit@8: nginx.service is not among the units the polkit policy lets the agent restart (postgresql.service, redis-server.service, redis.service, tokpulse.service, in ../packaging/polkit/50-tokpulse-agent.rules): polkit would refuse it; add it to a policy file as docs/actions.md shows, or restart another unit",
			warnings: "actions[2].match@10: no loaded rule has an alert named \"TokPulseWebhookFailurez\"; the action flush would never run (check rule_files and the name)\n" +
				"actions[3].match_re@13: no loaded rule has an alert name matching \"TokPulseDatabase.*\"; the action any-db would never run",
		},
		{
			name: "extended by the operator",
			dirs: []string{"testdata/etc-rules.d", shippedDir},
			warnings: "actions[2].match@10: no loaded rule has an alert named \"TokPulseWebhookFailurez\"; the action flush would never run (check rule_files and the name)\n" +
				"actions[3].match_re@13: no loaded rule has an alert name matching \"TokPulseDatabase.*\"; the action any-db would never run",
		},
		{
			name: "no policy installed",
			dirs: []string{"testdata/absent"},
			warnings: "actions[2].match@10: no loaded rule has an alert named \"TokPulseWebhookFailurez\"; the action flush would never run (check rule_files and the name)\n" +
				"actions[3].match_re@13: no loaded rule has an alert name matching \"TokPulseDatabase.*\"; the action any-db would never run",
			note: "actions@2: no polkit policy for tokpulse-agent is installed (50-tokpulse-agent.rules); polkit decides at each restart whether the agent's user may restart the unit",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, w, n := Check(cfg.Actions, names, ReadPolicy(tc.dirs), src)
			if got := format(p); got != tc.problems {
				t.Errorf("problems:\n%s\nwant:\n%s", got, tc.problems)
			}
			if got := format(w); got != tc.warnings {
				t.Errorf("warnings:\n%s\nwant:\n%s", got, tc.warnings)
			}
			if got := format(n); got != tc.note {
				t.Errorf("notes:\n%s\nwant:\n%s", got, tc.note)
			}
		})
	}
}

// TestPolicyDocumented: docs/actions.md shows the shipped rule's code as it
// is, so that an operator who copies it to extend the policy copies what
// the package installs.
func TestPolicyDocumented(t *testing.T) {
	rule, err := os.ReadFile(filepath.Join(shippedDir, PolicyFile))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/actions.md")
	if err != nil {
		t.Fatal(err)
	}
	code := string(rule[strings.Index(string(rule), "polkit.addRule"):])
	if !strings.Contains(string(doc), code) {
		t.Errorf("docs/actions.md does not show the code of %s as shipped:\n%s", PolicyFile, code)
	}
}
