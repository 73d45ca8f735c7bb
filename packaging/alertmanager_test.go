package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The fleet's central configuration, as shipped: the Alertmanager routing
// file with its template, and the central Prometheus configuration. They
// run for real in e2e/fleet_test.go and bench/fleet.sh; here Debian's own
// checkers read them.

// relocated copies the /etc/prometheus/ files of the fleet into a
// temporary directory with every /etc/prometheus/ path rewritten to it,
// so that the checkers find the template and the rule file.
func relocated(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	copyTo := func(src, dst string, rewrite bool) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		if rewrite {
			b = []byte(strings.ReplaceAll(string(b), "/etc/prometheus/", dir+"/"))
		}
		dst = filepath.Join(dir, dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyTo("packaging/alertmanager/tokpulse-routing.yml", "alertmanager.yml", true)
	copyTo("packaging/alertmanager/tokpulse.tmpl", "alertmanager_templates/tokpulse.tmpl", false)
	copyTo("packaging/prometheus/prometheus.yml", "prometheus.yml", true)
	copyTo("packaging/prometheus/tokpulse-agent-central.yml", "tokpulse-agent-central.yml", false)
	return dir
}

func TestRoutingFileChecks(t *testing.T) {
	for _, cmd := range []string{"amtool", "promtool"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Fatalf("%s is required (Debian's prometheus-alertmanager and prometheus): run ./.ci/deps as root", cmd)
		}
	}
	dir := relocated(t)
	root := repoRoot(t)
	// As shipped, and in place with its template (which amtool then parses).
	run(t, root, nil, "amtool", "check-config", "packaging/alertmanager/tokpulse-routing.yml")
	out := run(t, root, nil, "amtool", "check-config", filepath.Join(dir, "alertmanager.yml"))
	if !strings.Contains(out, "1 templates") {
		t.Errorf("amtool did not load the template:\n%s", out)
	}
	run(t, root, nil, "promtool", "check", "config", filepath.Join(dir, "prometheus.yml"))

	// The runbook's channel matrix.
	for _, tc := range []struct {
		labels   []string
		receiver string
	}{
		{[]string{"severity=P1", "host=web-1", "alertname=TokPulseHealthCheckFailed"}, "runbook-p1-p2"},
		{[]string{"severity=P2", "host=web-1", "alertname=TokPulseHighMemoryUsage"}, "runbook-p1-p2"},
		{[]string{"severity=P3", "host=web-1", "alertname=TokPulseLowDiskSpace"}, "runbook-p3-p4"},
		{[]string{"severity=P4", "host=web-1"}, "runbook-p3-p4"},
		{[]string{"alertname=NoSeverity", "host=web-1"}, "runbook-p3-p4"},
		{[]string{"severity=P1", "job=tokpulse-agent", "alertname=TokPulseAgentDown", "host=web-1"}, "runbook-p1-p2"},
	} {
		t.Run(strings.Join(tc.labels, ","), func(t *testing.T) {
			args := append([]string{"config", "routes", "test", "--config.file=packaging/alertmanager/tokpulse-routing.yml",
				"--verify.receivers=" + tc.receiver}, tc.labels...)
			run(t, root, nil, "amtool", args...)
		})
	}
}
