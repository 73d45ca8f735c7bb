package agent

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// timeoutGatherer bounds a /metrics gather in time without buffering the
// response. http.TimeoutHandler, which bounded it before, copies the whole
// exposition (about 100 KB with the default configuration) into a growing
// buffer at every scrape, a third of the bytes a scrape allocated; here
// only the gather waits against the clock, and promhttp encodes straight to
// the connection.
//
// A gather that outlives the timeout keeps running in its goroutine (a
// collector stuck in the kernel cannot be interrupted); at most slots of
// them run at once, so that scrapes of a hung agent do not pile up
// goroutines.
type timeoutGatherer struct {
	g       prometheus.Gatherer
	timeout time.Duration
	slots   chan struct{}
}

func newTimeoutGatherer(g prometheus.Gatherer, timeout time.Duration, slots int) *timeoutGatherer {
	return &timeoutGatherer{g: g, timeout: timeout, slots: make(chan struct{}, slots)}
}

type gathered struct {
	mfs []*dto.MetricFamily
	err error
}

// Gather implements prometheus.TransactionalGatherer. On timeout it returns
// no families and an error, which promhttp (ContinueOnError) answers with
// HTTP 500 and the error's text.
func (t *timeoutGatherer) Gather() ([]*dto.MetricFamily, func(), error) {
	select {
	case t.slots <- struct{}{}:
	default:
		return nil, func() {}, fmt.Errorf("%d earlier gathers are still running after %s; see the agent's log for the collector that hangs (tokpulse_collector_duration_seconds)", cap(t.slots), t.timeout)
	}
	done := make(chan gathered, 1)
	go func() {
		defer func() { <-t.slots }()
		mfs, err := t.g.Gather()
		done <- gathered{mfs, err}
	}()
	timer := time.NewTimer(t.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.mfs, func() {}, r.err
	case <-timer.C:
		return nil, func() {}, fmt.Errorf("gathering the metrics took longer than %s; see the agent's log for the collector that hangs (tokpulse_collector_duration_seconds)", t.timeout)
	}
}
