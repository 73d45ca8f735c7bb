package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// selfMetrics are the agent's metrics about itself.
type selfMetrics struct {
	reloadSuccess prometheus.Gauge
	reloadTime    prometheus.Gauge
	lastGood      prometheus.Gauge
	problems      *prometheus.GaugeVec
}

// maxProblemSeries bounds tokpulse_agent_config_problem: the first problems
// say enough, and the log has them all.
const (
	maxProblemSeries = 10
	maxProblemBytes  = 300
)

// setLastGood records whether the agent runs on its last good
// configuration, and why.
func (m *selfMetrics) setLastGood(on bool, problems []string) {
	m.problems.Reset()
	if !on {
		m.lastGood.Set(0)
		return
	}
	m.lastGood.Set(1)
	for i, p := range problems {
		if i == maxProblemSeries {
			break
		}
		if len(p) > maxProblemBytes {
			p = p[:maxProblemBytes] + "…"
		}
		m.problems.WithLabelValues(p).Set(1)
	}
}

func newSelfMetrics(reg prometheus.Registerer, b BuildInfo) *selfMetrics {
	f := promauto.With(reg)
	f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tokpulse_agent_build_info",
		Help: "A metric with a constant '1' value labelled by version, revision and goversion of the running agent.",
	}, []string{"version", "revision", "goversion"}).WithLabelValues(b.Version, b.Commit, b.GoVersion).Set(1)
	m := &selfMetrics{
		reloadSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "tokpulse_agent_config_last_reload_successful",
			Help: "1 if the last configuration reload succeeded (or none was tried), 0 if it failed and the previous configuration is still in force.",
		}),
		reloadTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "tokpulse_agent_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully, in unixtime.",
		}),
	}
	m.lastGood = f.NewGauge(prometheus.GaugeOpts{
		Name: "tokpulse_agent_config_last_good_in_use",
		Help: "1 while the agent runs on the last good copy of its configuration because the file on disk did not load at start; the agent's own alert TokPulseAgentConfigInvalid fires on it.",
	})
	m.problems = f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tokpulse_agent_config_problem",
		Help: "One series (value 1) per problem of the configuration on disk, while the agent runs on the last good copy (the first 10, each cut at 300 bytes).",
	}, []string{"problem"})
	m.reloadSuccess.Set(1)
	m.reloadTime.SetToCurrentTime()
	return m
}
