// Package schedule runs jobs each on its own interval, in its own goroutine,
// with a random phase, so that a hundred probes configured with the same
// interval do not fire in the same millisecond and a slow job never delays
// another one or the agent's rule loop.
package schedule

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Job is one piece of periodic work.
type Job struct {
	// Name identifies the job in logs.
	Name string
	// Interval is the time between the starts of two runs. A run that
	// overruns its interval delays the next run of the same job only; the
	// missed ticks are dropped, not queued.
	Interval time.Duration
	// Run does the work. It should honour ctx; it is never called
	// concurrently with itself.
	Run func(ctx context.Context)
}

// Options tune the scheduler. The zero value is usable.
type Options struct {
	// Jitter returns a random duration in [0, n). It defaults to
	// math/rand/v2; tests inject a deterministic one.
	Jitter func(n time.Duration) time.Duration
	// MaxPhase bounds the random delay before a job's first run; 0 means
	// one interval. A bound keeps the first results of a long-interval job
	// from arriving minutes after the agent starts.
	MaxPhase time.Duration
	// NewTicker makes the ticker of a job; tests inject one. It defaults
	// to time.NewTicker.
	NewTicker func(d time.Duration) Ticker
}

// Ticker is the part of *time.Ticker the scheduler uses.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Run runs every job until ctx is cancelled, then waits for the runs in
// progress to return. Jobs with a non-positive interval run once.
func Run(ctx context.Context, jobs []Job, opts Options) {
	if opts.Jitter == nil {
		opts.Jitter = func(n time.Duration) time.Duration {
			if n <= 0 {
				return 0
			}
			return rand.N(n)
		}
	}
	if opts.NewTicker == nil {
		opts.NewTicker = func(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx, j, opts)
		}()
	}
	wg.Wait()
}

func loop(ctx context.Context, j Job, opts Options) {
	phase := j.Interval
	if opts.MaxPhase > 0 && opts.MaxPhase < phase {
		phase = opts.MaxPhase
	}
	if d := opts.Jitter(phase); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	if ctx.Err() != nil {
		return
	}
	j.Run(ctx)
	if j.Interval <= 0 {
		return
	}
	// The ticker starts after the first run, so the phase chosen above is
	// kept: time.Ticker drops ticks a slow run misses instead of bunching
	// them.
	t := opts.NewTicker(j.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			if ctx.Err() != nil {
				return
			}
			j.Run(ctx)
		}
	}
}
