package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// reportStateFile says whether the state file was found damaged at start
// and replaced by an empty one: at error level in the log (with what was
// lost and where the damaged file is) and as the gauge
// tokpulse_agent_state_file_recovered, on which a builtin rule raises a
// P2 alert.
func (a *Agent) reportStateFile() {
	g := promauto.With(a.reg).NewGauge(prometheus.GaugeOpts{
		Name: "tokpulse_agent_state_file_recovered",
		Help: "1 if the state file was found damaged at this start, moved aside and replaced by an empty one (log positions, alert states and undelivered events lost); 0 otherwise.",
	})
	rec := a.store.Recovered()
	if rec == nil {
		g.Set(0)
		return
	}
	g.Set(1)
	a.logger.Error("The state file was damaged; it was moved aside and the agent starts with empty state",
		"moved_to", rec.MovedTo, "reason", rec.Reason, "lost", state.Lost)
}
