package notify

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are delivery's metrics (docs/metrics.md, section "Delivery").
// They outlive a Manager's reloads: create them once per registry.
type Metrics struct {
	notifications *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	dropped       prometheus.Counter
	current       atomic.Pointer[Manager]

	pendingDesc *prometheus.Desc
	deadDesc    *prometheus.Desc
	bytesDesc   *prometheus.Desc
}

// The results counted in tokpulse_notifications_total.
const (
	ResultSuccess    = "success"
	ResultRetry      = "retry"
	ResultDeadLetter = "dead_letter"
)

// NewMetrics registers delivery's metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokpulse_notifications_total",
			Help: "Events per delivery attempt outcome: success (accepted, 2xx), retry (failed, will be retried), dead_letter (refused for good, kept aside).",
		}, []string{"output", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokpulse_notification_latency_seconds",
			Help:    "Time from an event's creation (the rules' hand-over) to its acceptance by the output.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"output"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokpulse_outbox_dropped_total",
			Help: "Events dropped from the full outbox before delivery (oldest of the lowest severity first).",
		}),
		pendingDesc: prometheus.NewDesc("tokpulse_outbox_events", "Events waiting in the outbox for an output.", []string{"output"}, nil),
		deadDesc:    prometheus.NewDesc("tokpulse_outbox_dead_letters", "Events an output refused for good (a 4xx other than 408/429), kept aside; see /api/v1/outbox.", []string{"output"}, nil),
		bytesDesc:   prometheus.NewDesc("tokpulse_outbox_bytes", "Bytes of events held in the outbox (all outputs).", nil, nil),
	}
	if reg != nil {
		reg.MustRegister(m.notifications, m.latency, m.dropped, m)
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.pendingDesc
	ch <- m.deadDesc
	ch <- m.bytesDesc
}

// Collect implements prometheus.Collector: the outbox gauges are read from
// the state file at scrape time, so they can never drift from it.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	mgr := m.current.Load()
	if mgr == nil {
		return
	}
	names := mgr.outputNames()
	pending, dead, err := mgr.box.counts(names)
	if err != nil {
		return
	}
	for _, n := range names {
		ch <- prometheus.MustNewConstMetric(m.pendingDesc, prometheus.GaugeValue, float64(pending[n]), n)
		ch <- prometheus.MustNewConstMetric(m.deadDesc, prometheus.GaugeValue, float64(dead[n]), n)
	}
	if st, err := mgr.box.status(nil); err == nil {
		ch <- prometheus.MustNewConstMetric(m.bytesDesc, prometheus.GaugeValue, float64(st.Bytes))
	}
}

// init creates an output's series at zero so that rate() works from the
// first failure.
func (m *Metrics) init(output string) {
	for _, r := range []string{ResultSuccess, ResultRetry, ResultDeadLetter} {
		m.notifications.WithLabelValues(output, r)
	}
	m.latency.WithLabelValues(output)
}
