package testutil

import (
	"testing"
	"time"
)

// EventuallyState is Eventually for conditions that can say what they saw:
// cond returns whether it holds and, when not, the state it found, which
// the failure message quotes (the last one seen before the deadline).
func EventuallyState(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, what, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
