package fleet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestWriteScaledRules compresses the shipped central rules as the fleet
// test does, and checks what changed and what did not.
func TestWriteScaledRules(t *testing.T) {
	src := filepath.Join(repoRoot(t), CentralRules)
	for _, tc := range []struct {
		scale    int
		contains []string
		down     time.Duration
	}{
		{1, []string{"for: 2m", "[15m]", "offset 15m"}, 2 * time.Minute},
		{60, []string{"for: 2s", "[15s]", "offset 15s", `up{job="tokpulse-agent"} == 0`, "severity: P1"}, 2 * time.Second},
	} {
		t.Run(fmt.Sprintf("scale %d", tc.scale), func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "central.yml")
			fors, err := WriteScaledRules(src, dst, tc.scale)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.contains {
				if !strings.Contains(string(b), want) {
					t.Errorf("scale %d: %q missing from\n%s", tc.scale, want, b)
				}
			}
			if fors["TokPulseAgentDown"] != tc.down {
				t.Errorf("scale %d: TokPulseAgentDown for %s, want %s", tc.scale, fors["TokPulseAgentDown"], tc.down)
			}
			// What the fleet's Prometheus loads must load.
			if out, err := exec.Command("promtool", "check", "rules", dst).CombinedOutput(); err != nil {
				t.Errorf("promtool check rules: %v\n%s", err, out)
			}
		})
	}
}

// TestParseNotices parses what Alertmanager's own renderer (amtool
// template render, with its example alerts) makes of the shipped template.
func TestParseNotices(t *testing.T) {
	if _, err := exec.LookPath("amtool"); err != nil {
		t.Fatal("amtool is required (Debian's prometheus-alertmanager): run ./.ci/deps as root")
	}
	out, err := exec.Command("amtool", "template", "render", "--template.glob="+filepath.Join(repoRoot(t), TemplateFile),
		`--template.text={{ template "tokpulse.text" . }}`).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool template render: %v\n%s", err, out)
	}
	ns := parseNotices("slack #alerts", string(out), time.Now())
	if len(ns) != 2 {
		t.Fatalf("%d notices, want amtool's 2 example alerts, from\n%s", len(ns), out)
	}
	for i, want := range []Notice{
		{Status: "resolved", Incident: "fingerprint1", Host: "foo.bar:1234", Labels: map[string]string{"label1": "value1", "label2": "value2"}},
		{Status: "resolved", Incident: "fingerprint2", Labels: map[string]string{"foo": "bar", "baz": "qux"}},
	} {
		n := ns[i]
		if n.Status != want.Status || n.Incident != want.Incident || n.Host != want.Host || n.Channel != "slack #alerts" {
			t.Errorf("notice %d: %+v, want %+v", i, n, want)
		}
		for k, v := range want.Labels {
			if n.Labels[k] != v {
				t.Errorf("notice %d: label %s=%q, want %q (labels %v)", i, k, n.Labels[k], v, n.Labels)
			}
		}
		if !strings.Contains(n.Text, "Prevention: review runbook section") {
			t.Errorf("notice %d lacks the runbook's resolution template:\n%s", i, n.Text)
		}
	}
}
