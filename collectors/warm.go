package collectors

import (
	"sync"
	"sync/atomic"
	"time"
)

// Warmer is implemented by collectors whose series come from work on their
// own schedule (a probe, a check, a log source's first read): until their
// first run after the agent starts or reloads, their families hold nothing
// fresh, and an absent series says nothing about the host. The rule engine
// holds the alerts of rules that read those families until Warm reports
// true (docs/rules.md, "Restarts, upgrades and reloads").
type Warmer interface {
	// Warm reports whether every part has completed a run since the
	// collector started, or its warm-up limit has passed.
	Warm() bool
	// Families lists the metric families the collector's runs produce.
	Families() []string
}

// MaxWarmup bounds any collector's warm-up, whatever its intervals: after
// this long a rule is evaluated normally even if a source never completed
// a run (a check that hangs beyond its timeout, say).
const MaxWarmup = 10 * time.Minute

// warmup tracks one collector's first run: started when Run begins,
// done when the first run of every part has completed.
type warmup struct {
	once  sync.Once
	start atomic.Int64 // unix nanoseconds; 0 until Run began
	done  atomic.Bool
	// limit is how long after the start the collector counts as warm
	// even without a completed run.
	limit time.Duration
}

// begin records the start of Run (once: a reused collector keeps its
// first start).
func (w *warmup) begin(now time.Time) {
	w.once.Do(func() { w.start.Store(now.UnixNano()) })
}

// warm reports whether the collector is warm at now.
func (w *warmup) warm(now time.Time) bool {
	if w.done.Load() {
		return true
	}
	s := w.start.Load()
	return s != 0 && now.Sub(time.Unix(0, s)) >= min(w.limit, MaxWarmup)
}

// scheduleWarmup is the warm-up limit of jobs run by internal/schedule with
// a first-run phase of at most maxPhase: the longest phase plus timeout,
// and a second for the result to be recorded.
func scheduleWarmup(maxPhase time.Duration, intervals, timeouts []time.Duration) time.Duration {
	var limit time.Duration
	for i := range intervals {
		limit = max(limit, min(intervals[i], maxPhase)+timeouts[i])
	}
	return limit + time.Second
}
