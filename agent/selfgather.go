package agent

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	tpcollectors "github.com/tokpulse/tokpulse-agent/collectors"
)

// The agent gathers its own metrics every interval for its rules. That
// gather reads what the rules may read and leaves out the rest: the Go
// runtime's and the process's metrics unless a rule selects go_* or
// process_* series, and the parts of Selective collectors (the host
// collector's families) whose metrics no selector can match. A Prometheus
// scrape of /metrics still gathers everything. What a rule sees is
// unchanged: every series a selector can match is gathered, exactly as a
// scrape sees it (docs/performance.md, "Where the idle agent's time goes").

// teeRegisterer registers every collector in both of the agent's
// registries: the one /metrics serves and the one the rules gather.
type teeRegisterer []prometheus.Registerer

func (t teeRegisterer) Register(c prometheus.Collector) error {
	var errs []error
	for _, r := range t {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}

func (t teeRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, r := range t {
		r.MustRegister(cs...)
	}
}

func (t teeRegisterer) Unregister(c prometheus.Collector) bool {
	ok := true
	for _, r := range t {
		ok = r.Unregister(c) && ok
	}
	return ok
}

// wantedCollector collects c for the rules only when they may read a
// metric named with prefix.
type wantedCollector struct {
	c      prometheus.Collector
	prefix string
	want   tpcollectors.Want
}

func (w wantedCollector) Describe(chan<- *prometheus.Desc) {}

func (w wantedCollector) Collect(ch chan<- prometheus.Metric) {
	if w.want(w.prefix) {
		w.c.Collect(ch)
	}
}

// wantedSet is swappable for the rules' gather: the running collectors,
// each leaving out what the rules cannot read.
type wantedSet struct{ a *Agent }

func (s wantedSet) Describe(chan<- *prometheus.Desc) {}

func (s wantedSet) Collect(ch chan<- prometheus.Metric) {
	s.a.currentPipeline().set.CollectWanted(ch, s.a.engine.Reads)
}
