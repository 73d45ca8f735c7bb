package collectors

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// alive reports whether pid runs (a zombie does not) and is the program
// the test started (the pid was not reused).
func alive(pid int, comm string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && strings.Contains(s[:i], "("+comm) && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

func readPIDs(t *testing.T, file string) []int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the check never wrote its children's pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p)
	}
	return pids
}

// TestCheckLeavesNothingBehind: a check that forked a child and exited 0
// left the child running (one more per run), and a child that called
// setsid survived even the timeout's kill of the process group. Every
// way of leaving something behind is tried; after RunCheck returns,
// nothing the command started may still run.
func TestCheckLeavesNothingBehind(t *testing.T) {
	for _, tc := range []struct {
		name    string
		script  string // writes the pids to $PIDS
		timeout time.Duration
		reason  string
	}{
		{"background child, exit 0", `sleep 300 & echo $! >> $PIDS; exit 0`, 10 * time.Second, ""},
		{"background child with its output closed, exit 0", `sleep 300 </dev/null >/dev/null 2>&1 & echo $! >> $PIDS; exit 0`, 10 * time.Second, ""},
		{"setsid child, exit 0", `setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! >> $PIDS; exit 0`, 10 * time.Second, ""},
		{"setsid child, exit 1", `setsid sleep 300 & echo $! >> $PIDS; exit 1`, 10 * time.Second, CheckReasonExit},
		{"setsid child that forks and dies (a daemon)", `setsid sh -c 'sleep 300 </dev/null >/dev/null 2>&1 & echo $! >> $PIDS' ; sleep 0.2; exit 0`, 10 * time.Second, ""},
		{"setsid child, timeout", `setsid sleep 300 & echo $! >> $PIDS; sleep 300`, 500 * time.Millisecond, CheckReasonTimeout},
		{"nested groups, timeout", `(setsid sh -c 'sleep 300 & echo $! >> $PIDS; wait' &) ; sleep 300 & echo $! >> $PIDS; wait`, 500 * time.Millisecond, CheckReasonTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pids := filepath.Join(t.TempDir(), "pids")
			c := DefaultCheckConfig()
			c.Name = "c"
			// $ is the argv expansion's; $$ passes one to the shell.
			c.Command = []string{"sh", "-c", strings.ReplaceAll(tc.script, "$", "$$")}
			c.Env = map[string]string{"PIDS": pids}
			c.Timeout = yamlx.Duration(tc.timeout)
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			r := RunCheck(ctx, c)
			if r.Reason != tc.reason {
				t.Fatalf("reason %q (err %v), want %q", r.Reason, r.Err, tc.reason)
			}
			// The reaper has killed and reaped them before RunCheck
			// returned; a short grace only for the kernel to clean up.
			for _, pid := range readPIDs(t, pids) {
				testutil.Eventually(t, 2*time.Second, "pid "+strconv.Itoa(pid)+" gone", func() bool { return !alive(pid, "sleep") })
			}
		})
	}
}

// TestCheckStartErrorThroughTheReaper: a command that does not exist is
// still reported as reason start, with the reason, not as an exit status.
func TestCheckStartErrorThroughTheReaper(t *testing.T) {
	c := DefaultCheckConfig()
	c.Name = "c"
	c.Command = []string{"tokpulse-no-such-command"}
	r := RunCheck(context.Background(), c)
	if r.Reason != CheckReasonStart || !strings.Contains(r.Err.Error(), `starting tokpulse-no-such-command: exec: "tokpulse-no-such-command": executable file not found in $PATH`) {
		t.Fatalf("reason %q, err %v", r.Reason, r.Err)
	}
}
