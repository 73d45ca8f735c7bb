package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// writeMeminfo rewrites the fixture's MemAvailable so that usedPercent of
// MemTotal is in use.
func writeMeminfo(t *testing.T, proc string, usedPercent int) {
	t.Helper()
	data, err := os.ReadFile("testdata/rules-e2e/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	avail := 8000000 * (100 - usedPercent) / 100
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "MemAvailable:") {
			l = fmt.Sprintf("MemAvailable:    %d kB", avail)
		}
		out = append(out, l)
	}
	tmp := filepath.Join(proc, "meminfo.tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(proc, "meminfo")); err != nil {
		t.Fatal(err)
	}
}

type apiAlert struct {
	Name             string            `json:"alertname"`
	State            string            `json:"state"`
	Severity         string            `json:"severity"`
	Labels           map[string]string `json:"labels"`
	Annotations      map[string]string `json:"annotations"`
	Value            float64           `json:"value"`
	ActiveAt         time.Time         `json:"active_at"`
	ResponseDeadline time.Time         `json:"response_deadline"`
	Evidence         []struct {
		Title string `json:"title"`
	} `json:"evidence"`
}

func getAlerts(base string) ([]apiAlert, error) {
	resp, err := http.Get(base + "/api/v1/alerts")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Alerts []apiAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	return body.Data.Alerts, nil
}

func getMetrics(base string) (string, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestRulesEndToEnd runs the agent binary on a fixture /proc whose meminfo
// the test rewrites: the memory alert goes pending, fires after `for`, and
// resolves when usage falls back, as /api/v1/alerts and /metrics show.
func TestRulesEndToEnd(t *testing.T) {
	bin := testutil.AgentBinary(t)
	dir := t.TempDir()
	proc := filepath.Join(dir, "proc")
	if err := os.MkdirAll(proc, 0o755); err != nil {
		t.Fatal(err)
	}
	writeMeminfo(t, proc, 85)
	rules, err := filepath.Abs("testdata/rules-e2e/memory.yml")
	if err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`agent:
  interval: 1s
  state_dir: %s
  paths:
    proc: %s
web:
  listen: %s
host:
  cpu: false
  load: false
  boot_time: false
  filesystem: {enabled: false}
  disk: {enabled: false}
  network: {enabled: false}
rule_files:
  - %s
`, filepath.Join(dir, "state"), proc, addr, rules)), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", stderr.String())
		}
	})
	base := "http://" + addr

	state := func(want string) func() (bool, string) {
		return func() (bool, string) {
			as, err := getAlerts(base)
			if err != nil {
				return false, err.Error()
			}
			for _, a := range as {
				if a.Name == "E2EHighMemoryUsage" && a.State == want {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%+v", as)
		}
	}
	metric := func(line string) func() (bool, string) {
		return func() (bool, string) {
			m, err := getMetrics(base)
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(m, line), "tokpulse_alerts lines: " + grepLines(m, "tokpulse_alerts{")
		}
	}
	testutil.EventuallyState(t, 20*time.Second, "the alert to be pending", state("pending"))
	testutil.EventuallyState(t, 20*time.Second, "the alert to fire", state("firing"))
	testutil.EventuallyState(t, 10*time.Second, "tokpulse_alerts to count it firing",
		metric(`tokpulse_alerts{alertname="E2EHighMemoryUsage",alertstate="firing",severity="P2"} 1`))

	as, err := getAlerts(base)
	if err != nil {
		t.Fatal(err)
	}
	a := as[0]
	if a.Severity != "P2" || a.Annotations["runbook"] != "High Memory Usage" || a.Value < 84.9 || a.Value > 85.1 {
		t.Errorf("firing alert %+v: want severity P2, runbook High Memory Usage, value 85", a)
	}
	if !a.ResponseDeadline.Equal(a.ActiveAt.Add(time.Hour)) {
		t.Errorf("response deadline %s, want active_at %s + 1h (P2)", a.ResponseDeadline, a.ActiveAt)
	}
	titles := ""
	for _, e := range a.Evidence {
		titles += e.Title + "; "
	}
	if !strings.Contains(titles, "Memory and swap (free -h)") {
		t.Errorf("evidence lacks the memory snapshot: %s", titles)
	}

	writeMeminfo(t, proc, 50)
	testutil.EventuallyState(t, 20*time.Second, "the alert to resolve", state("resolved"))
	testutil.EventuallyState(t, 10*time.Second, "tokpulse_alerts to drop it",
		metric(`tokpulse_alerts{alertname="E2EHighMemoryUsage",alertstate="firing",severity="P2"} 0`))
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

// TestCheckRuleFiles checks that `check` loads rule files and names the
// file and line of a rule without a valid severity.
func TestCheckRuleFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        labels:\n          severity: high\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		rules string
		code  int
		want  string
		quiet bool // nothing on stderr
	}{
		{"shipped pack", "../../packaging/rules/runbook.yml", 0, "20 rules in 2 rule files", true},
		{"glob into a missing directory", filepath.Join(dir, "none", "*.yml"), 0, `warning: rule_files: "` + filepath.Join(dir, "none", "*.yml") + `": directory ` + filepath.Join(dir, "none") + " does not exist", false},
		{"empty drop-in directory", filepath.Join(dir, "*.yaml"), 0, "3 rules in 1 rule files)\n  builtin:self/agent.yml: OK\n  " + filepath.Join(dir, "*.yaml") + ": no file yet\n", true},
		{"bad severity", bad, 1, bad + `:7:21: group "g", rule 1, "A": tokpulse-agent requires severity P1–P4 on alerting rules (Prometheus does not): severity "high" is not one of them; write P1, P2, P3 or P4`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, _ := filepath.Abs(tc.rules)
			cfg := filepath.Join(t.TempDir(), "agent.yaml")
			if err := os.WriteFile(cfg, []byte("rule_files: ["+rules+"]\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			if code := run([]string{"check", "--config", cfg}, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String()+errb.String(), tc.want) {
				t.Fatalf("output lacks %q:\n%s%s", tc.want, out.String(), errb.String())
			}
			if tc.quiet && errb.Len() > 0 {
				t.Errorf("stderr not empty: %s", errb.String())
			}
		})
	}
}

func TestTestRulesCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"test", "rules", "../../packaging/rules/runbook_test.yml"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	if code := run([]string{"test", "rules", "../../rules/testdata/unittest-fail.yml"}, &out, &errb); code != 1 {
		t.Fatalf("a failing test file: exit %d, want 1", code)
	}
}
