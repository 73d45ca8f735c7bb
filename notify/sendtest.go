package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// TestResult is the outcome of "tokpulse-agent notify test" for one output.
type TestResult struct {
	Output   string
	Duration time.Duration
	Err      error
}

// Test sends events (a test incident's firing and resolved events,
// incident.TestEvents) through every output of cfg directly, from this
// process, without the outbox (the running agent holds the state file),
// and reports each output's result: `notify test --direct`.
func Test(ctx context.Context, cfg Config, opts Options, events []alert.Event) ([]TestResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	outs, err := BuildOutputs(cfg, opts)
	if err != nil {
		return nil, err
	}
	return sendTest(ctx, outs.list, events), nil
}

// Test sends events through the outputs the manager delivers to now,
// with the secrets and as the user the agent has, bypassing the outbox
// so that the answer says what each output did with them, and reports
// each output's result: `notify test` asks the running agent for this.
// The outputs' queues are not touched: a test event never waits behind
// (nor delays) a real one, and is never retried.
func (m *Manager) Test(ctx context.Context, events []alert.Event) []TestResult {
	m.mu.Lock()
	outs := slices.Clone(m.outputs)
	m.mu.Unlock()
	return sendTest(ctx, outs, events)
}

// sendTest sends events one at a time through each output, the outputs in
// parallel, and reports per output in their order.
func sendTest(ctx context.Context, outs []Output, events []alert.Event) []TestResult {
	res := make([]TestResult, len(outs))
	var wg sync.WaitGroup
	for i, o := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			var errs []string
			for _, e := range events {
				if err := o.Send(ctx, []alert.Event{e}); err != nil {
					errs = append(errs, fmt.Sprintf("%s event: %v", e.Kind, err))
				}
			}
			res[i] = TestResult{Output: o.Name(), Duration: time.Since(start)}
			if len(errs) > 0 {
				res[i].Err = errors.New(strings.Join(errs, "; "))
			}
		}()
	}
	wg.Wait()
	return res
}
