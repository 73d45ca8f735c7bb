package testutil

import (
	"testing"
	"time"
)

// WaitLine reads lines (a child process's output, one line per value)
// until one equals want, failing the test when the channel closes first
// (the process exited) or timeout passes. Lines before want are dropped.
func WaitLine(t testing.TB, lines <-chan string, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the process exited before printing %q", want)
			}
			if l == want {
				return
			}
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for the line %q", timeout, want)
		}
	}
}
