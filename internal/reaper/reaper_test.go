package reaper

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	Main() // the reaper of Command is this test binary started again
	os.Exit(m.Run())
}

// TestParentOfReadsOddNames: a process name may hold spaces and
// parentheses; the parent PID is read after the last ')'.
func TestParentOfReadsOddNames(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(t.TempDir(), "x) (y 1")
	if err := os.WriteFile(odd, src, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if pp, err := parentOf(cmd.Process.Pid); err != nil || pp != os.Getpid() {
		t.Fatalf("parentOf = %d, %v; want %d", pp, err, os.Getpid())
	}
	found := false
	for _, c := range Children(os.Getpid()) {
		found = found || c == cmd.Process.Pid
	}
	if !found {
		t.Errorf("Children(self) lacks %d", cmd.Process.Pid)
	}
}

// TestCommandKillsWhatTheCommandLeft: the reaper passes the exit status
// on, and a child that called setsid does not survive the command.
func TestCommandKillsWhatTheCommandLeft(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	c, err := Command(context.Background(), []string{"sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > " + pidFile + "; exit 3"}, os.Environ(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run()
	if c.ProcessState == nil || c.ProcessState.ExitCode() != 3 {
		t.Fatalf("Run = %v, exit %v; want the command's status 3", err, c.ProcessState)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || !strings.Contains(string(st), "(sleep)") || strings.Contains(string(st), ") Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("setsid child %s still runs after the command ended", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCommandStartError: a command that does not exist comes back as a
// *StartError with the reason, not as an exit status.
func TestCommandStartError(t *testing.T) {
	c, err := Command(context.Background(), []string{"/nonexistent/tokpulse-x"}, os.Environ(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run()
	se, ok := err.(*StartError)
	if !ok || !strings.Contains(se.Msg, "/nonexistent/tokpulse-x") {
		t.Fatalf("Run = %v (%T); want a StartError naming the command", err, err)
	}
}
