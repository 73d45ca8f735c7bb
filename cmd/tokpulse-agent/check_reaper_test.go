package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// TestChecksLeaveNoProcessBehind: a check whose command starts a child
// that calls setsid and exits 0 left one more process per run, piling up
// under the running agent. Now, while the agent keeps running, every
// child of every finished run is gone.
func TestChecksLeaveNoProcessBehind(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	addr := testutil.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfg, fmt.Sprintf(`agent:
  interval: 1s
  state_dir: %[1]s/state
web:
  listen: %[2]s
host: {cpu: false, filesystem: {enabled: false}, disk: {enabled: false}, network: {enabled: false}}
checks:
  - name: leaky
    command: [sh, -c, 'setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $$! >> %[3]s; sleep 300 & echo $$! >> %[3]s; exit 0']
    interval: 1s
    timeout: 1s
`, dir, addr, pids))
	a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Addr: addr})
	a.WaitReady(t, 1, 15*time.Second)
	testutil.Eventually(t, 20*time.Second, "three runs of the check", func() bool {
		b, _ := os.ReadFile(pids)
		return len(strings.Fields(string(b))) >= 6
	})
	// The runs that wrote these pids exit at once; their reapers then kill
	// what they left. A run lasts well under the 5 s allowed here.
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(b))[:6] {
		pid, _ := strconv.Atoi(f)
		testutil.Eventually(t, 5*time.Second, fmt.Sprintf("pid %d (sleep, started by a finished check run) gone", pid), func() bool {
			st, err := os.ReadFile("/proc/" + f + "/stat")
			return err != nil || !strings.Contains(string(st), "(sleep)") || strings.Contains(string(st), ") Z")
		})
	}
	if _, body := a.Get(t, "/metrics"); !strings.Contains(body, `tokpulse_check_success{check="leaky"} 1`) {
		t.Errorf("the check did not succeed:\n%s", a.Output())
	}
	a.Signal(t, syscall.SIGTERM)
	if code := a.WaitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
