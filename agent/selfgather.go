package agent

import (
	"slices"
	"strings"
	"sync"

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
// registries: as it is in the one /metrics serves, and in the one the
// rules gather behind a describedCollector, so that the rules' gather
// skips the collectors none of whose metrics a rule reads (the outbox's
// counts, read from the state file, for one).
type teeRegisterer struct {
	all, rules *prometheus.Registry
	want       tpcollectors.Want
	mu         sync.Mutex
	wrapped    map[prometheus.Collector]prometheus.Collector
}

func newTeeRegisterer(all, rules *prometheus.Registry, want tpcollectors.Want) *teeRegisterer {
	return &teeRegisterer{all: all, rules: rules, want: want, wrapped: map[prometheus.Collector]prometheus.Collector{}}
}

func (t *teeRegisterer) Register(c prometheus.Collector) error {
	if err := t.all.Register(c); err != nil {
		return err
	}
	w := describe(c, t.want)
	if err := t.rules.Register(w); err != nil {
		t.all.Unregister(c)
		return err
	}
	t.mu.Lock()
	t.wrapped[c] = w
	t.mu.Unlock()
	return nil
}

func (t *teeRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *teeRegisterer) Unregister(c prometheus.Collector) bool {
	t.mu.Lock()
	w, ok := t.wrapped[c]
	delete(t.wrapped, c)
	t.mu.Unlock()
	if ok {
		t.rules.Unregister(w)
	}
	return t.all.Unregister(c)
}

// describedCollector collects c for the rules only when they may read one
// of the metrics c describes. A collector that describes nothing (an
// unchecked one) is always collected.
type describedCollector struct {
	c     prometheus.Collector
	names []string
	want  tpcollectors.Want
}

// describe wraps c for the rules' registry.
func describe(c prometheus.Collector, want tpcollectors.Want) prometheus.Collector {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	var names []string
	for d := range ch {
		// Desc has no accessor for its name; its String() starts with it.
		_, rest, ok := strings.Cut(d.String(), `fqName: "`)
		name, _, ok2 := strings.Cut(rest, `"`)
		if !ok || !ok2 {
			return c // cannot tell: always collected
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return c
	}
	return describedCollector{c: c, names: names, want: want}
}

// Describe sends nothing: in the rules' registry the collector is
// unchecked, since it may leave everything out.
func (d describedCollector) Describe(chan<- *prometheus.Desc) {}

func (d describedCollector) Collect(ch chan<- prometheus.Metric) {
	if slices.ContainsFunc(d.names, d.want) {
		d.c.Collect(ch)
	}
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
