package collectors_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// TestAgentRunsProbesAndChecks runs the real binary with probes, checks, a
// process group and a unit where there is no system bus: the
// scheduled work shows up in /metrics, promtool accepts the exposition, the
// missing bus is reported once and the agent carries on.
func TestAgentRunsProbesAndChecks(t *testing.T) {
	promtool := testutil.Require(t, "promtool")
	srv := httptest.NewServer(nil)
	defer srv.Close()
	dir := t.TempDir()
	sleep, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tpk-e2e-proc")
	if err := os.WriteFile(bin, sleep, 0o755); err != nil {
		t.Fatal(err)
	}
	proc := exec.Command(bin, "300")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Process.Kill(); proc.Wait() })

	addr := testutil.FreeAddr(t)
	cfg := fmt.Sprintf(`agent:
  interval: 1s
  state_dir: %[1]s/state
web:
  listen: %[2]s
probes:
- name: health
  url: %[3]s/health
  interval: 1s
  timeout: 1s
  expect: {status: [404]}
- name: live
  url: %[3]s/live
  interval: 1s
  timeout: 1s
checks:
- name: webhook_queue
  command: [echo, "(integer) 5"]
  value: stdout
  interval: 1s
  timeout: 1s
processes:
- name: tpk-e2e-proc
units: [tokpulse.service]
`, dir, addr, srv.URL)
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a := testutil.StartAgent(t, testutil.AgentOptions{
		Args: []string{"--config", cfgPath},
		// No system bus, whether or not this machine runs one.
		Env:  []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + dir + "/no_bus_socket"},
		Addr: addr,
	})
	a.WaitReady(t, 1, 15*time.Second)

	want := []string{
		`tokpulse_probe_success{probe="health"} 1`,
		`tokpulse_probe_success{probe="live"} 0`,
		`tokpulse_probe_http_status_code{probe="live"} 404`,
		`tokpulse_check_value{check="webhook_queue"} 5`,
		`tokpulse_process_count{process="tpk-e2e-proc"} 1`,
		`tokpulse_systemd_up 0`,
		`tokpulse_collector_success{collector="probes"} 1`,
		`tokpulse_collector_success{collector="systemd"} 1`,
	}
	var body string
	testutil.Eventually(t, 20*time.Second, "probe, check, process and unit series", func() bool {
		_, body = a.Get(t, "/metrics")
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
	if !regexp.MustCompile(`tokpulse_probe_failures_total\{probe="live",reason="status"\} [1-9]`).MatchString(body) {
		t.Errorf("the live probe's failures are not counted:\n%s", grepLines(body, "tokpulse_probe_failures_total"))
	}

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(grepLines(body, "tokpulse_"))
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// tokpulse_process_count is the name the rule pack and the
		// contract use (as process-exporter's num_procs is a count, not a
		// summary); promtool's lint against a _count suffix is accepted
		// for it alone.
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, `tokpulse_process_count non-histogram and non-summary metrics should not have "_count" suffix`) {
			t.Errorf("promtool check metrics: %s", line)
		}
	}
	if n := strings.Count(a.Output(), "Cannot reach systemd"); n != 1 {
		t.Errorf("the missing bus was reported %d times, want once:\n%s", n, a.Output())
	}
}

// grepLines keeps the lines of an exposition that mention s, with their
// HELP and TYPE lines.
func grepLines(body, s string) string {
	var b strings.Builder
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, s) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
