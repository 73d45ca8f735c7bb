package incident

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/metriccache"
)

// metrics are the tracker's metrics: the alerts by state, and its own
// failures.
type metrics struct {
	t *Tracker

	handoverFailures prometheus.Counter
	stateFailures    prometheus.Counter
	alerts           *prometheus.Desc
	held             *prometheus.Desc
	actionRuns       *prometheus.Desc
	actionLastRun    *prometheus.Desc
	// labels keeps the label pairs of the series between gathers.
	labels metriccache.Cache
}

func newMetrics(t *Tracker) *metrics {
	return &metrics{
		t: t,
		handoverFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokpulse_rule_handover_failures_total",
			Help: "Evaluations whose events delivery did not accept; they are offered again at the next evaluation.",
		}),
		stateFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokpulse_rule_state_write_failures_total",
			Help: "Failed writes of incidents to the state file.",
		}),
		alerts: prometheus.NewDesc("tokpulse_alerts",
			"Alerts by rule, severity and state (pending or firing): the number of alert instances; 0 for loaded rules with none.",
			[]string{"alertname", "severity", "alertstate"}, nil),
		held: prometheus.NewDesc("tokpulse_alerts_held",
			"Alerts restored at start or kept over a reload whose rule has not yet been evaluated over freshly collected data; their state is held, neither confirmed nor resolved.",
			nil, nil),
		actionRuns: prometheus.NewDesc("tokpulse_action_runs_total",
			"Automated actions (actions: of agent.yaml) by outcome: succeeded, no_effect, failed, rate_limited (refused, budget spent), dry_run. Counted when the outcome is known.",
			[]string{"action", "outcome"}, nil),
		actionLastRun: prometheus.NewDesc("tokpulse_action_last_run_timestamp_seconds",
			"Unix time at which the action last really ran (dry runs and refusals excluded); absent before its first run.",
			[]string{"action"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (x *metrics) Describe(ch chan<- *prometheus.Desc) {
	x.handoverFailures.Describe(ch)
	x.stateFailures.Describe(ch)
	ch <- x.alerts
	ch <- x.held
	ch <- x.actionRuns
	ch <- x.actionLastRun
}

// Collect implements prometheus.Collector.
func (x *metrics) Collect(ch chan<- prometheus.Metric) {
	x.labels.Begin()
	x.handoverFailures.Collect(ch)
	x.stateFailures.Collect(ch)
	type key struct{ name, sev string }
	counts := map[key][2]int{} // pending, firing
	held := 0
	t := x.t
	t.mu.Lock()
	for _, r := range t.rules {
		counts[key{r.Name, string(r.Severity)}] = [2]int{}
	}
	t.each(func(inc *incident) {
		k := key{inc.AlertName, string(inc.Severity)}
		c := counts[k]
		switch inc.State {
		case alert.StatePending:
			c[0]++
		case alert.StateFiring:
			c[1]++
		}
		counts[k] = c
		if inc.held {
			held++
		}
	})
	runs := map[[2]string]float64{}
	last := map[string]float64{}
	for _, a := range t.act.actions {
		for _, o := range alert.Outcomes() {
			runs[[2]string{a.Name, string(o)}] = 0
		}
		if at, ok := t.act.lastRun[a.Name]; ok {
			last[a.Name] = float64(at.UnixNano()) / 1e9
		}
	}
	for k, n := range t.act.counts {
		runs[k] = n
	}
	t.mu.Unlock()
	for k, n := range runs {
		ch <- x.labels.MustNew(x.actionRuns, prometheus.CounterValue, n, k[0], k[1])
	}
	for name, at := range last {
		ch <- x.labels.MustNew(x.actionLastRun, prometheus.GaugeValue, at, name)
	}
	for k, c := range counts {
		ch <- x.labels.MustNew(x.alerts, prometheus.GaugeValue, float64(c[0]), k.name, k.sev, "pending")
		ch <- x.labels.MustNew(x.alerts, prometheus.GaugeValue, float64(c[1]), k.name, k.sev, "firing")
	}
	ch <- x.labels.MustNew(x.held, prometheus.GaugeValue, float64(held))
}
