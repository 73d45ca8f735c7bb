package collectors

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// TestAgentUnreadableLog runs the agent binary as user nobody on a log file
// it may not read: the error must show in tokpulse_log_read_errors_total
// and in a log line that says what to do, and reading must start once the
// file is made readable, without a restart. (The test runs as root, for
// whom permission bits do not apply, hence the real process as nobody.)
func TestAgentUnreadableLog(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test needs root, to run the agent as nobody")
	}
	src := testutil.AgentBinary(t)
	dir, err := os.MkdirTemp("", "tokpulse-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// nobody needs its own copy of the binary, a state directory and
	// a readable configuration.
	bin := filepath.Join(dir, "tokpulse-agent")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	os.Mkdir(stateDir, 0o755)
	if err := os.Chown(stateDir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	logPath := filepath.Join(dir, "secret.log")
	if err := os.WriteFile(logPath, []byte("denied line one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	config := filepath.Join(dir, "agent.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`agent: {interval: 1s, state_dir: %s, log: {format: json}}
web: {listen: %s}
logs:
  - {name: secret, paths: [%s], start_at: beginning}
`, stateDir, addr, logPath)), 0o644)

	a := &agentProc{stderr: &testutil.SyncBuffer{}, addr: addr}
	a.cmd = exec.Command(bin, "run", "--config", config)
	a.cmd.Stderr = a.stderr
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { a.cmd.Process.Kill(); a.cmd.Wait() }()

	metric := func(name string) float64 {
		m, err := a.scrape()
		if err != nil {
			return -1
		}
		return m[name+`{source="secret"}`]
	}
	testutil.Eventually(t, 20*time.Second, "a read error", func() bool { return metric("tokpulse_log_read_errors_total") >= 1 })
	if s := a.stderr.String(); !strings.Contains(s, "Cannot read log file") || !strings.Contains(s, "permission denied") || !strings.Contains(s, "give the agent's user read access") {
		t.Errorf("the log does not say what is wrong and what to do:\n%s", s)
	}
	if got := metric("tokpulse_log_lines_total"); got != 0 {
		t.Errorf("lines %v from an unreadable file", got)
	}
	os.Chmod(logPath, 0o644)
	deadline := time.Now().Add(20 * time.Second)
	for metric("tokpulse_log_lines_total") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the file was not read after it became readable; stderr:\n%s", a.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
