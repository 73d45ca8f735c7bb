package collectors

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// This file is the line pipeline shared by file (logs:) and journal
// (journal:) sources: named patterns counted per source, log-derived metrics
// in the spirit of mtail (logmetrics.go), and the evidence ring of recent
// matching lines (logevidence.go); the expressions are compiled in
// logmatch.go, configured in logconfig.go.
//
// It runs once per log line, so it is written for speed: lines stay []byte
// and nothing is allocated per line.

// lineStats are the per-source counters every source reports.
type lineStats struct {
	lines, bytes, cut, readErrors atomic.Uint64
	lastLine                      atomic.Int64 // unix nanoseconds
	// shedMetrics counts lines whose log-derived metrics were not
	// computed, shedEvidence matching lines not kept as evidence, while
	// the source was shedding (linePipeline.shed).
	shedMetrics, shedEvidence atomic.Uint64
}

// linePipeline counts and matches the lines of one source. process is
// called from one goroutine (the source's reader); the rest is safe for
// concurrent use with it.
type linePipeline struct {
	source string
	stats  *lineStats
	// countBytes: count() adds each line's bytes (journal sources). File
	// sources count the bytes the tailer reads instead, which includes
	// the part of a long line that was cut off.
	countBytes bool
	patterns   []*patternState
	metrics    []*logMetric
	groups     []*metricGroup
	redactor   *evidence.Redactor
	redact     []yamlx.Regexp // the source's own expressions
	now        func() time.Time
	// shed is set by the reader while the source is far behind its files:
	// lines are still counted and matched against the patterns, but the
	// optional work (log-derived metrics, evidence) is left out and
	// counted, so that the source catches up without losing a line.
	shed bool

	lits   litSet    // every pattern's and metric's literals, searched in one pass
	lastTS time.Time // what stats.lastLine holds: the lines of one read share a time
	// patSet has the literal bits of every prefiltered pattern; when a
	// pattern is not prefiltered, patAll is set. A line whose scan finds
	// none of patSet's literals matches no pattern.
	patSet uint64
	patAll bool

	// batched: the reader calls flush itself, after a batch of lines (a
	// file source: after each read of 64 KiB, each poll, and on stop).
	// Until then the line counters wait in pend and the reader keeps the
	// locks of the metric groups it took (held): a locked instruction per
	// counter and two per metric line cost more than the rest of a
	// line's metric work, and a scrape waits at most one batch. Other
	// sources (the journal, tests) publish every line.
	batched bool
	pend    struct{ lines, bytes, cut, shedMetrics, shedEvidence uint64 }
	held    []*metricGroup
}

type patternState struct {
	name    string
	m       *matcher
	matches *atomic.Uint64
	pending uint64 // matches not yet added to matches (batched)
	ring    evidenceRing
}

// evidenceLineBytes caps one line kept as evidence.
const evidenceLineBytes = 2048

func newLinePipeline(source string, patterns []LogPattern, metrics []LogMetricConfig, evidenceLines int, opts Options) *linePipeline {
	p := &linePipeline{source: source, stats: &lineStats{}, redactor: opts.Redactor, now: opts.Now}
	for _, pt := range patterns {
		p.patterns = append(p.patterns, &patternState{name: pt.Name, m: newMatcher(pt.Regexp.Regexp), matches: &atomic.Uint64{},
			ring: evidenceRing{slots: make([]evidenceSlot, evidenceLines)}})
	}
	byRE := map[string]*metricGroup{}
	for _, mc := range metrics {
		lm := newLogMetric(source, mc)
		p.metrics = append(p.metrics, lm)
		// Metrics declared with the same expression share one match per
		// line (requests by status and their durations, typically).
		g := byRE[mc.Regexp.String()]
		if g == nil {
			g = &metricGroup{mu: lm.mu, m: lm.m, lin: compileLinear(mc.Regexp.Regexp)}
			byRE[mc.Regexp.String()] = g
			p.groups = append(p.groups, g)
		}
		lm.mu = g.mu
		g.metrics = append(g.metrics, lm)
	}
	for _, pt := range p.patterns {
		p.lits.add(pt.m)
		p.patSet |= pt.m.set
		p.patAll = p.patAll || pt.m.set == 0
	}
	for _, g := range p.groups {
		// A linear matcher rejects a line of another shape within its
		// first fields, for less than verifying its literal would cost
		// on every line of the right shape.
		if g.lin == nil {
			p.lits.add(g.m)
		}
	}
	return p
}

// process handles one line read at time ts.
func (p *linePipeline) process(line []byte, cut bool, ts time.Time) {
	p.countLine(line, cut, ts)
	p.matchLine(line, ts)
	if !p.batched {
		p.flush()
	}
}

// count updates the line counters only (multiline sources match joined
// events, but count physical lines).
func (p *linePipeline) count(line []byte, cut bool, ts time.Time) {
	p.countLine(line, cut, ts)
	if !p.batched {
		p.flush()
	}
}

// match runs the patterns and log-derived metrics over one line or event.
func (p *linePipeline) match(line []byte, ts time.Time) {
	p.matchLine(line, ts)
	if !p.batched {
		p.flush()
	}
}

func (p *linePipeline) countLine(line []byte, cut bool, ts time.Time) {
	p.pend.lines++
	if p.countBytes {
		p.pend.bytes += uint64(len(line)) + 1
	}
	if cut {
		p.pend.cut++
	}
	// An atomic store is a locked instruction on amd64; the lines of one
	// read share their time, so most lines need none (and comparing the
	// time itself is cheaper than converting it).
	if ts != p.lastTS {
		p.stats.lastLine.Store(ts.UnixNano())
		p.lastTS = ts
	}
}

func (p *linePipeline) matchLine(line []byte, ts time.Time) {
	found, ok := p.lits.scan(line)
	// Most lines hold none of the patterns' literals: then no pattern
	// can match, and none is looked at.
	if !ok || p.patAll || found&p.patSet != 0 {
		for _, pt := range p.patterns {
			if pt.m.match(line, found, ok) {
				pt.pending++
				if p.shed {
					p.pend.shedEvidence++
				} else {
					pt.ring.add(ts, line)
				}
			}
		}
	}
	if p.shed {
		if len(p.groups) > 0 {
			p.pend.shedMetrics++
		}
		return
	}
	for _, g := range p.groups {
		if !g.m.passes(found, ok) {
			continue
		}
		var idx []int
		if g.lin != nil {
			idx = g.lin.match(line, g.idx)
		} else {
			idx = g.m.re.FindSubmatchIndex(line)
		}
		if idx == nil {
			continue
		}
		g.idx = idx[:0]
		if !g.locked {
			g.mu.Lock()
			g.locked = true
			p.held = append(p.held, g)
		}
		for _, m := range g.metrics {
			m.observe(line, idx)
		}
	}
}

// flush publishes the counted lines and matches, then releases the metric
// groups' locks, so that a scrape sees everything handled so far, and the
// lines of any metrics it sees (see collect).
func (p *linePipeline) flush() {
	add := func(c *atomic.Uint64, n *uint64) {
		if *n > 0 {
			c.Add(*n)
			*n = 0
		}
	}
	add(&p.stats.lines, &p.pend.lines)
	add(&p.stats.cut, &p.pend.cut)
	add(&p.stats.shedMetrics, &p.pend.shedMetrics)
	add(&p.stats.shedEvidence, &p.pend.shedEvidence)
	for _, pt := range p.patterns {
		add(pt.matches, &pt.pending)
	}
	add(&p.stats.bytes, &p.pend.bytes) // journal sources: after their lines
	for _, g := range p.held {
		g.locked = false
		g.mu.Unlock()
	}
	p.held = p.held[:0]
}

// namedDesc is a Desc with its metric's name, so that a gather can leave
// out a family nobody reads before building its metrics.
type namedDesc struct {
	name string
	*prometheus.Desc
}

func newNamedDesc(name, help string, labels []string, constLabels prometheus.Labels) namedDesc {
	return namedDesc{name: name, Desc: prometheus.NewDesc(name, help, labels, constLabels)}
}

var (
	logLinesDesc = newNamedDesc("tokpulse_log_lines_total",
		"Lines read from the log source.", []string{"source"}, nil)
	logBytesDesc = newNamedDesc("tokpulse_log_bytes_total",
		"Bytes read from the log source, line ends included.", []string{"source"}, nil)
	logLastDesc = newNamedDesc("tokpulse_log_last_line_timestamp_seconds",
		"When the agent read the source's last line (Unix time); 0 before the first.", []string{"source"}, nil)
	logErrorsDesc = newNamedDesc("tokpulse_log_read_errors_total",
		"Failed attempts to read the source (unreadable file, directory in place of a file, journalctl failure).", []string{"source"}, nil)
	logCutDesc = newNamedDesc("tokpulse_log_lines_truncated_total",
		"Lines longer than max_line_bytes, of which only the first max_line_bytes were used.", []string{"source"}, nil)
	logMatchesDesc = newNamedDesc("tokpulse_log_matches_total",
		"Lines that matched the source's pattern.", []string{"source", "pattern"}, nil)
	logShedDesc = newNamedDesc("tokpulse_log_lines_shed_total",
		"Optional work the source left out while it was far behind its files (docs/logs.md): work=metrics, lines whose log-derived metrics were not computed; work=evidence, pattern matches whose line was not kept as evidence. Line counts and pattern matches are never shed.",
		[]string{"source", "work"}, nil)
	logMetricDroppedDesc = newNamedDesc("tokpulse_log_metric_dropped_total",
		"Matching lines a log-derived metric could not record: reason label_limit (max_label_sets reached) or bad_value (the value group is not a number).",
		[]string{"source", "metric", "reason"}, nil)
)

// collect sends the source's line metrics. It reads in the opposite order
// of flush's writes (the metric groups, then the bytes, then the line
// counters), so that a scrape never sees a line's metrics without the
// line, nor a read's bytes without its lines and matches.
//
// want, when not nil, leaves out the families it does not want (the
// agent's gather for its rules asks only for what some rule reads).
func (p *linePipeline) collect(ch chan<- prometheus.Metric, want Want) {
	wanted := func(name string) bool { return want == nil || want(name) }
	// One lock per group for all its metrics: a scrape sees the requests
	// counted and their durations observed by the same lines.
	for _, g := range p.groups {
		// A gather that wants none of the group's metrics does not wait
		// for the reader holding its lock.
		if slices.ContainsFunc(g.metrics, func(m *logMetric) bool { return wanted(m.cfg.Name) }) {
			g.mu.Lock()
			for _, m := range g.metrics {
				if wanted(m.cfg.Name) {
					m.collectSeries(ch)
				}
			}
			g.mu.Unlock()
		}
		if wanted(logMetricDroppedDesc.name) {
			for _, m := range g.metrics {
				m.collectDropped(ch)
			}
		}
	}
	c := func(d namedDesc, v float64, lv ...string) {
		if wanted(d.name) {
			ch <- prometheus.MustNewConstMetric(d.Desc, prometheus.CounterValue, v, lv...)
		}
	}
	c(logBytesDesc, float64(p.stats.bytes.Load()), p.source)
	c(logLinesDesc, float64(p.stats.lines.Load()), p.source)
	c(logErrorsDesc, float64(p.stats.readErrors.Load()), p.source)
	c(logCutDesc, float64(p.stats.cut.Load()), p.source)
	c(logShedDesc, float64(p.stats.shedMetrics.Load()), p.source, "metrics")
	c(logShedDesc, float64(p.stats.shedEvidence.Load()), p.source, "evidence")
	last := 0.0
	if ns := p.stats.lastLine.Load(); ns > 0 {
		last = float64(ns) / 1e9
	}
	if wanted(logLastDesc.name) {
		ch <- prometheus.MustNewConstMetric(logLastDesc.Desc, prometheus.GaugeValue, last, p.source)
	}
	for _, pt := range p.patterns {
		c(logMatchesDesc, float64(pt.matches.Load()), p.source, pt.name)
	}
}

// families lists the metric families the pipeline fills: its counters and
// the log-derived metrics, with the _bucket/_sum/_count series a histogram
// becomes in the rules' store.
func (p *linePipeline) families() []string {
	out := []string{"tokpulse_log_lines_total", "tokpulse_log_bytes_total", "tokpulse_log_last_line_timestamp_seconds",
		"tokpulse_log_read_errors_total", "tokpulse_log_lines_truncated_total", "tokpulse_log_matches_total", "tokpulse_log_lines_shed_total"}
	for _, m := range p.metrics {
		n := m.cfg.Name
		out = append(out, n, n+"_bucket", n+"_sum", n+"_count")
	}
	return out
}

// evidence returns the recent matching lines, one section per pattern that
// matched, redacted.
func (p *linePipeline) evidence(kind string) []evidence.Section {
	var out []evidence.Section
	for _, pt := range p.patterns {
		entries := pt.ring.entries()
		if len(entries) == 0 {
			continue
		}
		for i := range entries {
			text := p.redactor.Redact(cleanText(entries[i].Text))
			for _, re := range p.redact {
				text = re.ReplaceAllString(text, evidence.Redacted)
			}
			entries[i].Text = text
		}
		out = append(out, evidence.Section{
			Source:  kind + "/" + p.source,
			Kind:    "log_matches",
			Title:   fmt.Sprintf("Last %d lines of %s matching %s", len(entries), p.source, pt.name),
			Labels:  map[string]string{"source": p.source, "pattern": pt.name},
			Entries: entries,
		})
	}
	return out
}

// cleanText makes a raw log line safe to ship: valid UTF-8, and control
// characters (NUL, escape sequences) shown as U+FFFD.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, s)
}
