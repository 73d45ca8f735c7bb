package schedule

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

func TestRun(t *testing.T) {
	t.Run("a blocked job does not hold the others", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{})
		var fast atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			Run(ctx, []Job{
				{Name: "stuck", Interval: time.Millisecond, Run: func(ctx context.Context) {
					select {
					case <-release:
					case <-ctx.Done():
					}
				}},
				{Name: "fast", Interval: time.Millisecond, Run: func(context.Context) { fast.Add(1) }},
			}, Options{})
		}()
		testutil.Eventually(t, 10*time.Second, "the fast job to run 20 times", func() bool { return fast.Load() >= 20 })
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		close(release)
	})

	t.Run("first runs are spread by the jitter", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var mu sync.Mutex
		var asked []time.Duration
		var ran atomic.Int64
		jobs := make([]Job, 5)
		for i := range jobs {
			jobs[i] = Job{Interval: time.Hour, Run: func(context.Context) { ran.Add(1) }}
		}
		go Run(ctx, jobs, Options{
			MaxPhase: 30 * time.Second,
			Jitter: func(n time.Duration) time.Duration {
				mu.Lock()
				asked = append(asked, n)
				mu.Unlock()
				return time.Millisecond
			},
		})
		testutil.Eventually(t, 10*time.Second, "every job's first run", func() bool { return ran.Load() == 5 })
		mu.Lock()
		defer mu.Unlock()
		for _, n := range asked {
			if n != 30*time.Second {
				t.Errorf("phase bound = %v, want MaxPhase 30s", n)
			}
		}
	})

	t.Run("a job with no interval runs once", func(t *testing.T) {
		var ran atomic.Int64
		Run(context.Background(), []Job{{Run: func(context.Context) { ran.Add(1) }}}, Options{})
		if ran.Load() != 1 {
			t.Fatalf("ran %d times, want 1", ran.Load())
		}
	})
}
