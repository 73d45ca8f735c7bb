package collectors

import (
	"sync"
	"sync/atomic"
)

// Counters keeps the counters of log and journal sources across reloads.
// A reload builds every collector anew; without it each source's
// counters (tokpulse_log_lines_total, tokpulse_log_read_errors_total, …)
// fell to 0 at every SIGHUP, which rate() can absorb but an operator
// reading the raw value, or increase() over a reload, cannot. The agent
// holds one Counters for its lifetime and hands it to every build; a
// source of the same kind and name continues the counts of the one it
// replaces. Log-derived metrics (metrics:) are not carried: their
// declaration may have changed. A nil *Counters carries nothing.
type Counters struct {
	mu sync.Mutex
	m  map[string]any
}

// NewCounters returns an empty Counters.
func NewCounters() *Counters { return &Counters{m: map[string]any{}} }

// carried returns the value kept under key, creating a zero one on first
// use; with a nil Counters, always a new one.
func carried[T any](c *Counters, key string) *T {
	if c == nil {
		return new(T)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[key].(*T); ok {
		return v
	}
	v := new(T)
	c.m[key] = v
	return v
}

// carryOver makes the pipeline count into the counters kept for the
// source (kind "log" or "journal"), so that they survive a reload.
func (p *linePipeline) carryOver(c *Counters, kind string) {
	p.stats = carried[lineStats](c, kind+"\x00"+p.source)
	for _, pt := range p.patterns {
		pt.matches = carried[atomic.Uint64](c, kind+"\x00"+p.source+"\x00pattern\x00"+pt.name)
	}
}
