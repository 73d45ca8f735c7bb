package collectors

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/schedule"
)

// Outcome is what every scheduled run reports, whatever it ran (a probe, a
// check): whether it succeeded, why not, and when and how long. The
// result types of the kinds embed it, and the scheduled type below reads
// nothing else of them.
type Outcome struct {
	Time     time.Time
	Success  bool
	Reason   string
	Err      error
	Duration time.Duration
}

// failed is the outcome of a run that failed for reason.
func failed(reason string, err error) Outcome { return Outcome{Reason: reason, Err: err} }

// outcome gives the scheduled type the embedded Outcome of a result.
func (o *Outcome) outcome() *Outcome { return o }

// result is a kind's result type, as a pointer (*ProbeResult,
// *CheckResult): an Outcome and what the kind measures besides.
type result interface {
	comparable
	outcome() *Outcome
}

// scheduled is the one implementation of the collectors that run jobs on
// their own schedule and report each job's last result: probes and checks.
// It owns the state of every job (last result, last failure, failure
// counters), the up/down logic and its log lines, the warm-up, the
// inheritance of results over a reload, and the shape of what Update,
// Evidence and Status report; a kind adds only its run function and what
// its result says beyond the Outcome.
type scheduled[C any, R result] struct {
	// kind is the singular noun of logs and status: "probe", "check".
	kind   string
	jobs   []*job[C, R]
	logger *slog.Logger
	now    func() time.Time
	redact *evidence.Redactor
	warm   warmup
	// ran counts the jobs that have a result.
	ran atomic.Int32
	// maxPhase bounds the delay before a job's first run.
	maxPhase time.Duration

	// reasons lists the failure reasons, in the order the counters are
	// exported; each starts at 0 so that rate() works from the first
	// failure.
	reasons                     []string
	success, duration, failures *prometheus.Desc
}

// job is one configured probe or check and its results.
type job[C any, R result] struct {
	cfg  C
	name string
	// key is the job's identity across reloads: its configuration.
	key      string
	interval time.Duration

	mu          sync.Mutex
	last        R
	lastFailure R
	failures    map[string]float64
}

// snapshot returns the job's last result and last failure (zero when
// none).
func (j *job[C, R]) snapshot() (last, lastFailure R) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last, j.lastFailure
}

// jobSpec is what the scheduled type needs of one configuration.
type jobSpec struct {
	name string
	// key is the job's identity across reloads: its configuration.
	key               string
	interval, timeout time.Duration
}

// kindSpec is what sets one kind of job apart for the scheduled type.
type kindSpec[C any] struct {
	// kind is the singular noun: "probe", "check". It names the
	// collector (kind+"s"), the metrics (tokpulse_<kind>_...) and their
	// label.
	kind string
	// job reads a configuration's name and timing.
	job func(C) jobSpec
	// reasons are the failure reasons, in export order.
	reasons []string
	// durationHelp is the help text of tokpulse_<kind>_duration_seconds.
	durationHelp string
	// warmFactor stretches the warm-up limit (checks wait for a free slot
	// too); 0 means 1.
	warmFactor int
}

// init prepares the jobs of cfgs (in place: the type holds locks).
func (s *scheduled[C, R]) init(k kindSpec[C], cfgs []C, opts Options) {
	kind, l := k.kind, []string{k.kind}
	*s = scheduled[C, R]{
		kind:     kind,
		logger:   opts.Logger.With("collector", kind+"s"),
		now:      opts.Now,
		redact:   opts.Redactor,
		maxPhase: 5 * time.Second,
		reasons:  k.reasons,
		success:  prometheus.NewDesc("tokpulse_"+kind+"_success", fmt.Sprintf("1 if the last run of the %s succeeded, 0 if it failed.", kind), l, nil),
		duration: prometheus.NewDesc("tokpulse_"+kind+"_duration_seconds", k.durationHelp, l, nil),
		failures: prometheus.NewDesc("tokpulse_"+kind+"_failures_total", fmt.Sprintf("Failed %s runs, by reason.", kind), []string{kind, "reason"}, nil),
	}
	var intervals, timeouts []time.Duration
	for _, c := range cfgs {
		sp := k.job(c)
		s.jobs = append(s.jobs, &job[C, R]{cfg: c, name: sp.name, key: sp.key, interval: sp.interval, failures: map[string]float64{}})
		intervals, timeouts = append(intervals, sp.interval), append(timeouts, sp.timeout)
	}
	s.warm.limit = time.Duration(max(k.warmFactor, 1)) * scheduleWarmup(s.maxPhase, intervals, timeouts)
}

// Warm implements Warmer: every job has a result.
func (s *scheduled[C, R]) Warm() bool { return s.warm.warm(s.now()) }

// inherit gives the jobs whose configuration did not change the last
// result and failure counters of their predecessor in o.
func (s *scheduled[C, R]) inherit(o *scheduled[C, R]) {
	var zero R
	prev := map[string]*job[C, R]{}
	for _, j := range o.jobs {
		prev[j.key] = j
	}
	for _, j := range s.jobs {
		oj, ok := prev[j.key]
		if !ok {
			continue
		}
		oj.mu.Lock()
		j.last, j.lastFailure, j.failures = oj.last, oj.lastFailure, maps.Clone(oj.failures)
		oj.mu.Unlock()
		if j.last != zero {
			s.recordRan()
		}
	}
}

// recordRan counts a job's first result; the last one makes the
// collector warm.
func (s *scheduled[C, R]) recordRan() {
	if int(s.ran.Add(1)) >= len(s.jobs) {
		s.warm.done.Store(true)
	}
}

// run runs every job on its own interval with a random phase until ctx
// is cancelled; runOnce runs job i.
func (s *scheduled[C, R]) run(ctx context.Context, runOnce func(ctx context.Context, i int)) {
	jobs := make([]schedule.Job, len(s.jobs))
	for i, j := range s.jobs {
		jobs[i] = schedule.Job{Name: j.name, Interval: j.interval, Run: func(ctx context.Context) { runOnce(ctx, i) }}
	}
	// The first results arrive within a few seconds of a start or reload,
	// whatever the intervals.
	s.warm.begin(s.now())
	schedule.Run(ctx, jobs, schedule.Options{MaxPhase: s.maxPhase})
}

// record stores r as job i's last result and logs the job going down or
// coming back.
func (s *scheduled[C, R]) record(i int, r R) {
	var zero R
	j := s.jobs[i]
	o := r.outcome()
	j.mu.Lock()
	first := j.last == zero
	wasUp := first || j.last.outcome().Success
	j.last = r
	if !o.Success {
		j.failures[o.Reason]++
		j.lastFailure = r
	}
	j.mu.Unlock()
	if first {
		s.recordRan()
	}
	switch {
	case !o.Success && wasUp:
		s.logger.Warn(titleCase(s.kind)+" failing", s.kind, j.name, "reason", o.Reason, "err", s.redact.Redact(fmt.Sprint(o.Err)))
	case o.Success && !wasUp:
		s.logger.Info(titleCase(s.kind)+" recovered", s.kind, j.name)
	}
}

// update reports every job's failure counters and, once it has run, its
// success and duration; more adds what the kind's result says besides.
func (s *scheduled[C, R]) update(ch chan<- prometheus.Metric, more func(j *job[C, R], r R)) {
	var zero R
	for _, j := range s.jobs {
		j.mu.Lock()
		for _, reason := range s.reasons {
			ch <- prometheus.MustNewConstMetric(s.failures, prometheus.CounterValue, j.failures[reason], j.name, reason)
		}
		if r := j.last; r != zero {
			o := r.outcome()
			ch <- prometheus.MustNewConstMetric(s.success, prometheus.GaugeValue, b2f(o.Success), j.name)
			ch <- prometheus.MustNewConstMetric(s.duration, prometheus.GaugeValue, o.Duration.Seconds(), j.name)
			more(j, r)
		}
		j.mu.Unlock()
	}
}

// evidence returns a section for each job that failed at least once:
// title heads it (what the job is and why it failed) and entries are what
// the failure left; the section says whether the job has succeeded since.
func (s *scheduled[C, R]) evidence(kind string, title func(j *job[C, R], f R) string, entries func(f R) []evidence.Entry) []evidence.Section {
	var zero R
	var out []evidence.Section
	for _, j := range s.jobs {
		last, f := j.snapshot()
		if f == zero {
			continue
		}
		t := title(j, f)
		if last != zero && last.outcome().Success {
			t += "; it has succeeded since"
		}
		out = append(out, evidence.Section{
			Source: s.kind + "/" + j.name, Kind: kind, Title: t,
			Labels: map[string]string{s.kind: j.name}, Entries: entries(f),
		})
	}
	return out
}

// status returns one line per job with its last result; detail prefixes
// what the kind's result says to the error or the time the run took.
func (s *scheduled[C, R]) status(detail func(r R, d string) string) []Status {
	var zero R
	out := make([]Status, 0, len(s.jobs))
	for _, j := range s.jobs {
		last, _ := j.snapshot()
		st := Status{Kind: s.kind, Name: j.name}
		if last == zero {
			st.Detail = "not run yet"
		} else {
			o := last.outcome()
			st.LastRun, st.OK, st.Reason = o.Time, o.Success, o.Reason
			st.Detail = detail(last, resultDetail(o.Err, o.Duration))
		}
		st.Detail = s.redact.Redact(st.Detail)
		out = append(out, st)
	}
	return out
}

// titleCase capitalises a kind for the start of a log message.
func titleCase(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// resultDetail is the error of a failed run, or how long a good one took.
func resultDetail(err error, d time.Duration) string {
	if err != nil {
		return err.Error()
	}
	return "took " + d.Round(time.Millisecond).String()
}
