package agent

import (
	"context"
	"testing"
	"time"
)

// runAgent builds an agent from opts and runs it until the test ends; an
// error from Run fails the test.
func runAgent(t *testing.T, opts Options) *Agent {
	t.Helper()
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return a
}

// TestUntilGather: gathers fall on multiples of the interval since the
// epoch; a multiple closer than a tenth of the interval is skipped.
func TestUntilGather(t *testing.T) {
	at := func(sec int64, ms int64) time.Time { return time.Unix(sec, ms*int64(time.Millisecond)) }
	for _, tc := range []struct {
		name     string
		now      time.Time
		interval time.Duration
		want     time.Duration
	}{
		{"on a multiple", at(1_700_000_000, 0), 10 * time.Second, 10 * time.Second},
		{"just after one (a late timer)", at(1_700_000_000, 2), 10 * time.Second, 9998 * time.Millisecond},
		{"between two", at(1_700_000_004, 0), 10 * time.Second, 6 * time.Second},
		{"just before one (a clock stepped back)", at(1_700_000_009, 500), 10 * time.Second, 10500 * time.Millisecond},
		{"a tenth before one", at(1_700_000_009, 0), 10 * time.Second, time.Second},
		{"15 s interval", at(1_700_000_000, 0), 15 * time.Second, 10 * time.Second},
		{"no interval: never spins", at(1_700_000_004, 0), 0, 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := untilGather(tc.now, tc.interval); got != tc.want {
				t.Errorf("untilGather = %v, want %v", got, tc.want)
			}
		})
	}
}
