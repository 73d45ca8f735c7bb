package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// TestLogCountersAreBytesReadAndSurviveReload: a 20 MB line counted 65,549
// in tokpulse_log_bytes_total (documented as bytes read), and every reload
// reset the log counters, read_errors_total included.
func TestLogCountersAreBytesReadAndSurviveReload(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "app.log")
	long := append(bytes.Repeat([]byte("x"), 20<<20), '\n')
	if err := os.WriteFile(logf, append(long, "short line\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "notafile.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.yaml")
	body := func(interval string) string {
		return fmt.Sprintf(`agent:
  interval: %[1]s
  state_dir: %[2]s/state
web:
  listen: %[3]s
host: {cpu: false, filesystem: {enabled: false}, disk: {enabled: false}, network: {enabled: false}}
logs:
  - name: app
    paths: [%[4]s]
    start_at: beginning
    poll_interval: 100ms
  - name: broken
    paths: [%[2]s/notafile.log]
    poll_interval: 100ms
`, interval, dir, addr, logf)
	}
	writeConfig(t, cfg, body("1s"))
	a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Addr: addr})
	a.WaitReady(t, 1, 15*time.Second)

	value := func(metrics, series string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(metrics)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	want := float64(len(long) + len("short line\n"))
	var before string
	testutil.Eventually(t, 20*time.Second, "both lines read and a read error counted", func() bool {
		_, before = a.Get(t, "/metrics")
		return value(before, `tokpulse_log_lines_total{source="app"}`) == 2 &&
			value(before, `tokpulse_log_read_errors_total{source="broken"}`) >= 1
	})
	if got := value(before, `tokpulse_log_bytes_total{source="app"}`); got != want {
		t.Errorf("tokpulse_log_bytes_total = %v, want %v (every byte read, the cut-off rest of the long line included)", got, want)
	}
	if got := value(before, `tokpulse_log_lines_truncated_total{source="app"}`); got != 1 {
		t.Errorf("tokpulse_log_lines_truncated_total = %v, want 1", got)
	}
	errsBefore := value(before, `tokpulse_log_read_errors_total{source="broken"}`)

	writeConfig(t, cfg, body("2s"))
	a.Signal(t, syscall.SIGHUP)
	a.WaitReady(t, 2, 10*time.Second)
	_, after := a.Get(t, "/metrics")
	if !strings.Contains(after, "tokpulse_agent_config_last_reload_successful 1") {
		t.Fatalf("reload failed:\n%s", a.Output())
	}
	for series, min := range map[string]float64{
		`tokpulse_log_lines_total{source="app"}`:           2,
		`tokpulse_log_bytes_total{source="app"}`:           want,
		`tokpulse_log_lines_truncated_total{source="app"}`: 1,
		`tokpulse_log_read_errors_total{source="broken"}`:  errsBefore,
	} {
		if got := value(after, series); got < min {
			t.Errorf("after the reload %s = %v, want at least %v (counters must not reset)", series, got, min)
		}
	}
	a.Signal(t, syscall.SIGTERM)
	a.WaitExit(t, 10*time.Second)
}
