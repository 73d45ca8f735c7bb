package rules

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the rules' metrics about themselves and the alert states.
type metrics struct {
	m *Manager

	evaluations prometheus.Counter
	failures    prometheus.Counter
	duration    prometheus.Gauge
	lastEval    prometheus.Gauge

	rules    *prometheus.Desc
	series   *prometheus.Desc
	samples  *prometheus.Desc
	dropped  *prometheus.Desc
	window   *prometheus.Desc
	maxSerie *prometheus.Desc
}

func newMetrics(m *Manager) *metrics {
	return &metrics{
		m: m,
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokpulse_rule_evaluations_total",
			Help: "Rule evaluation rounds completed.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokpulse_rule_evaluation_failures_total",
			Help: "Rules whose evaluation failed (the error is logged with the rule's file and line).",
		}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokpulse_rule_evaluation_duration_seconds",
			Help: "How long the last rule evaluation round took.",
		}),
		lastEval: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokpulse_rule_last_evaluation_timestamp_seconds",
			Help: "When rules were last evaluated, in unixtime.",
		}),
		rules: prometheus.NewDesc("tokpulse_rules",
			"Rules loaded, by kind (alerting or recording).", []string{"kind"}, nil),
		series: prometheus.NewDesc("tokpulse_rule_store_series",
			"Series held in the rules' in-memory store.", nil, nil),
		samples: prometheus.NewDesc("tokpulse_rule_store_samples",
			"Samples held in the rules' in-memory store.", nil, nil),
		dropped: prometheus.NewDesc("tokpulse_rule_store_series_dropped_total",
			"New series the store refused because it held its maximum number of series.", nil, nil),
		window: prometheus.NewDesc("tokpulse_rule_store_window_seconds",
			"The longest history the store keeps of a series: the longest time a loaded rule reads back, plus two intervals.", nil, nil),
		maxSerie: prometheus.NewDesc("tokpulse_rule_store_max_series",
			"The store's series cap.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (x *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range []prometheus.Collector{x.evaluations, x.failures, x.duration, x.lastEval} {
		c.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{x.rules, x.series, x.samples, x.dropped, x.window, x.maxSerie} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (x *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range []prometheus.Collector{x.evaluations, x.failures, x.duration, x.lastEval} {
		c.Collect(ch)
	}
	kinds := map[string]int{"alerting": 0, "recording": 0}
	m := x.m
	m.mu.Lock()
	for _, g := range m.rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				kinds["recording"]++
			} else {
				kinds["alerting"]++
			}
		}
	}
	m.mu.Unlock()
	for k, n := range kinds {
		ch <- prometheus.MustNewConstMetric(x.rules, prometheus.GaugeValue, float64(n), k)
	}
	st := m.store.Stats()
	ch <- prometheus.MustNewConstMetric(x.series, prometheus.GaugeValue, float64(st.Series))
	ch <- prometheus.MustNewConstMetric(x.samples, prometheus.GaugeValue, float64(st.Samples))
	ch <- prometheus.MustNewConstMetric(x.dropped, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(x.window, prometheus.GaugeValue, m.store.Window().Seconds())
	ch <- prometheus.MustNewConstMetric(x.maxSerie, prometheus.GaugeValue, float64(st.MaxSeries))
}
