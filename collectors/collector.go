// Package collectors holds the agent's sources of metrics, one file per
// collector. Each collector is self-describing: its configuration type (with
// defaults and validation) and its metrics live beside its code. The agent
// builds them through Build, wraps them in a Set and registers the Set in its
// registry, so that what the rules evaluate is exactly what Prometheus scrapes.
package collectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/metriccache"
)

// Collector produces the metrics of one concern. Update is called at every
// gather (a Prometheus scrape or the agent's own rule evaluation), so it must
// be cheap: work that is slow or must not repeat per scrape (HTTP probes,
// reading logs, running commands) belongs in Run, and Update only reports
// what Run found.
type Collector interface {
	Update(ctx context.Context, ch chan<- prometheus.Metric) error
}

// Runner is implemented by collectors that work on their own schedule. Run
// blocks until ctx is cancelled and must return promptly afterwards.
type Runner interface {
	Run(ctx context.Context)
}

// Want tells a gather which metrics its reader needs: it reports whether
// some metric whose name starts with prefix may be read. The agent's own
// gather for its rules passes what the rules read; a Prometheus scrape
// reads everything. (An alias, so that collectors in packages of their
// own implement Selective without importing this one.)
type Want = func(prefix string) bool

// Selective is implemented by collectors that can leave out the parts
// whose metrics nobody reads in a gather (the host collector's families).
type Selective interface {
	UpdateWanted(ctx context.Context, ch chan<- prometheus.Metric, want Want) error
}

// ErrNoData tells the Set that a collector had nothing to report this time;
// it is logged at debug level and does not count as a failure.
var ErrNoData = errors.New("collector returned no data")

// Status is one line of `tokpulse-agent status`: how the last run of a
// collector, or of one of its parts (a probe, a check, a log source), went.
type Status struct {
	// Kind is "collector" for a Set member, or the part's kind ("probe",
	// "check", "log", "journal", "process", "unit").
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	LastRun time.Time `json:"last_run"`
	OK      bool      `json:"ok"`
	// Reason is a short machine-friendly cause of failure ("timeout").
	Reason string `json:"reason,omitempty"`
	// Detail is the error text or a one-line summary.
	Detail string `json:"detail,omitempty"`
}

// StatusProvider is implemented by collectors whose parts each have a
// status of their own (one per probe, check or log source).
type StatusProvider interface {
	Status() []Status
}

// Inheritor is implemented by collectors that carry their history (last
// results, failure counters) over a reload from the collector of the same
// name they replace, for the parts whose configuration did not change.
type Inheritor interface {
	Inherit(old Collector)
}

// Named is a collector with the name it is reported under.
type Named struct {
	Name string
	Collector
	// Key is the collector's identity: its configuration. A reload keeps
	// the running collector of the same name when Reuse is set and the
	// key did not change (its counters and read positions stay, nothing
	// restarts); otherwise the new collector is built and, when it is an
	// Inheritor, takes over the old one's history. Collectors that read
	// files named in their configuration (secrets, CA files) do not set
	// Reuse, so that a reload reads those files again.
	Key   string
	Reuse bool
}

// configKey is the identity of a configuration: its YAML form.
func configKey(cfg any) string {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Sprintf("unmarshallable %T: %v", cfg, err)
	}
	return string(b)
}

// Set runs a group of collectors concurrently at each gather and reports for
// each one tokpulse_collector_duration_seconds and tokpulse_collector_success.
// It implements prometheus.Collector as an unchecked collector, because what
// its members export depends on the configuration and may change on reload.
type Set struct {
	members []Named
	logger  *slog.Logger
	timeout time.Duration

	durationDesc *prometheus.Desc
	successDesc  *prometheus.Desc

	mu   sync.Mutex
	last map[string]Status // by member name

	// labels keeps the label pairs of the Set's own series between
	// gathers.
	labels metriccache.Cache
}

// NewSet returns a Set over members. timeout bounds each gather so that one
// stuck collector (a hung NFS mount under statfs, say) cannot hold a scrape.
func NewSet(members []Named, timeout time.Duration, logger *slog.Logger) *Set {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Set{
		members: members,
		logger:  logger,
		timeout: timeout,
		last:    map[string]Status{},
		durationDesc: prometheus.NewDesc("tokpulse_collector_duration_seconds",
			"How long the collector took in the last gather.", []string{"collector"}, nil),
		successDesc: prometheus.NewDesc("tokpulse_collector_success",
			"1 if the collector succeeded in the last gather, 0 if it failed.", []string{"collector"}, nil),
	}
}

// Members returns the collectors of the set.
func (s *Set) Members() []Named { return s.members }

// Describe sends nothing: the Set is an unchecked collector.
func (s *Set) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (s *Set) Collect(ch chan<- prometheus.Metric) { s.CollectWanted(ch, nil) }

// CollectWanted is Collect for a reader that needs only what want asks
// for (nil: everything): Selective members leave out the rest.
func (s *Set) CollectWanted(ch chan<- prometheus.Metric, want Want) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	s.labels.Begin()
	var wg sync.WaitGroup
	for _, m := range s.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.collectOne(ctx, m, ch, want)
		}()
	}
	wg.Wait()
}

func (s *Set) collectOne(ctx context.Context, m Named, ch chan<- prometheus.Metric, want Want) {
	start := time.Now()
	var err error
	if sel, ok := m.Collector.(Selective); ok && want != nil {
		err = sel.UpdateWanted(ctx, ch, want)
	} else {
		err = m.Update(ctx, ch)
	}
	success := 1.0
	switch {
	case err == nil:
	case errors.Is(err, ErrNoData):
		s.logger.Debug("Collector returned no data", "collector", m.Name, "err", err)
	default:
		success = 0
		s.logger.Error("Collector failed", "collector", m.Name, "err", err)
	}
	st := Status{Kind: "collector", Name: m.Name, LastRun: start, OK: success == 1}
	if success == 0 {
		st.Detail = err.Error()
	}
	s.mu.Lock()
	s.last[m.Name] = st
	s.mu.Unlock()
	ch <- s.labels.MustNew(s.durationDesc, prometheus.GaugeValue, time.Since(start).Seconds(), m.Name)
	ch <- s.labels.MustNew(s.successDesc, prometheus.GaugeValue, success, m.Name)
}

// Status returns the last gather's result of every member, followed by the
// statuses of the members' own parts.
func (s *Set) Status() []Status {
	var out []Status
	s.mu.Lock()
	for _, m := range s.members {
		st, ok := s.last[m.Name]
		if !ok {
			st = Status{Kind: "collector", Name: m.Name, Detail: "not gathered yet"}
		}
		out = append(out, st)
	}
	s.mu.Unlock()
	for _, m := range s.members {
		if p, ok := m.Collector.(StatusProvider); ok {
			out = append(out, p.Status()...)
		}
	}
	return out
}
