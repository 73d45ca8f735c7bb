package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// selfMetrics are the agent's metrics about itself.
type selfMetrics struct {
	reloadSuccess prometheus.Gauge
	reloadTime    prometheus.Gauge
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
	m.reloadSuccess.Set(1)
	m.reloadTime.SetToCurrentTime()
	return m
}
