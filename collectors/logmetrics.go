package collectors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// This file is the line pipeline shared by file (logs:) and journal
// (journal:) sources: named patterns counted per source, log-derived metrics
// in the spirit of mtail, and the evidence ring of recent matching lines.
//
// It runs once per log line, so it is written for speed: lines stay []byte,
// nothing is allocated per line, and every expression gets a literal
// prefilter (derived with regexp/syntax) so that Go's regexp engine only
// runs on lines that can match at all.

// LogPattern is one named expression counted in
// tokpulse_log_matches_total{source,pattern} and kept as evidence.
type LogPattern struct {
	Name   string       `yaml:"name"`
	Regexp yamlx.Regexp `yaml:"regexp"`
}

// DefaultLogPatterns are the runbook's four greps, used by a source that
// sets no patterns.
func DefaultLogPatterns() []LogPattern {
	return []LogPattern{
		{Name: "error", Regexp: yamlx.MustRegexp(`(?i)error|fail|denied`)},
		{Name: "auth", Regexp: yamlx.MustRegexp(`(?i)auth|login|token`)},
		{Name: "rate_limit", Regexp: yamlx.MustRegexp(`(?i)rate.*limit`)},
		{Name: "webhook", Regexp: yamlx.MustRegexp(`(?i)webhook`)},
	}
}

// LogMetricConfig declares one metric derived from log lines: every line
// that Regexp matches updates it, with the named groups listed in Labels as
// labels (besides source) and the named group Value as the number.
type LogMetricConfig struct {
	// Name is the full metric name, e.g. tokpulse_http_requests_total.
	Name string `yaml:"name"`
	Help string `yaml:"help"`
	// Type is counter, gauge or histogram.
	Type   string       `yaml:"type"`
	Regexp yamlx.Regexp `yaml:"regexp"`
	// Value names the group holding the number. A counter without one
	// counts matching lines; gauges and histograms need one.
	Value string `yaml:"value"`
	// Scale multiplies the captured number (0.001 turns milliseconds into
	// seconds, the base unit Prometheus expects).
	Scale float64 `yaml:"scale"`
	// Labels are named groups whose text becomes a label value.
	Labels []string `yaml:"labels"`
	// Buckets are a histogram's upper bounds, in scaled units.
	Buckets []float64 `yaml:"buckets"`
	// MaxLabelSets caps the series of this metric per source; lines that
	// would create more are dropped and counted.
	MaxLabelSets int `yaml:"max_label_sets"`
}

// DefaultMaxLabelSets bounds a log-derived metric's series per source.
const DefaultMaxLabelSets = 100

// UnmarshalYAML seeds the defaults before decoding.
func (m *LogMetricConfig) UnmarshalYAML(node *yaml.Node) error {
	type plain LogMetricConfig
	*m = LogMetricConfig{Scale: 1, MaxLabelSets: DefaultMaxLabelSets}
	return node.Decode((*plain)(m))
}

// Validate implements yamlx.Validator.
func (m *LogMetricConfig) Validate(c *yamlx.Checker, path string) {
	if !model.LegacyValidation.IsValidMetricName(m.Name) {
		c.Errorf(yamlx.Join(path, "name"), "%q is not a metric name; write letters, digits and underscores, such as myapp_orders_total", m.Name)
	}
	if m.Regexp.IsZero() {
		c.Errorf(yamlx.Join(path, "regexp"), "a log metric needs a regexp with named groups, such as ' (?P<status>\\d{3}) '")
		return
	}
	groups := map[string]bool{}
	for _, n := range m.Regexp.SubexpNames() {
		if n != "" {
			groups[n] = true
		}
	}
	switch m.Type {
	case "counter":
	case "gauge", "histogram":
		if m.Value == "" {
			c.Errorf(yamlx.Join(path, "value"), "a %s needs value: the named group that holds the number", m.Type)
		}
	default:
		c.Errorf(yamlx.Join(path, "type"), "%q is not a metric type; write counter, gauge or histogram", m.Type)
	}
	if m.Value != "" && !groups[m.Value] {
		c.Errorf(yamlx.Join(path, "value"), "the regexp has no group named %q; write (?P<%s>\\d+) in it", m.Value, m.Value)
	}
	for i, l := range m.Labels {
		if !groups[l] {
			c.Errorf(yamlx.Index(yamlx.Join(path, "labels"), i), "the regexp has no group named %q; write (?P<%s>...) in it", l, l)
		}
		if l == "source" || !model.LegacyValidation.IsValidLabelName(l) {
			c.Errorf(yamlx.Index(yamlx.Join(path, "labels"), i), "%q cannot be a label name (source is set by the agent); rename the group", l)
		}
	}
	if m.Type == "histogram" {
		if len(m.Buckets) == 0 {
			c.Errorf(yamlx.Join(path, "buckets"), "a histogram needs buckets, such as [.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10]")
		} else if !slices.IsSorted(m.Buckets) {
			c.Errorf(yamlx.Join(path, "buckets"), "buckets must be in increasing order")
		}
	} else if len(m.Buckets) > 0 {
		c.Errorf(yamlx.Join(path, "buckets"), "buckets apply to histograms only; remove them or write type: histogram")
	}
	if m.MaxLabelSets < 1 {
		c.Errorf(yamlx.Join(path, "max_label_sets"), "must be at least 1")
	}
	if m.Scale == 0 {
		c.Errorf(yamlx.Join(path, "scale"), "must not be 0; write 1 to keep the number as logged")
	}
}

// validateLogMetricsAcross checks that a metric declared by several sources
// is declared the same way, since they share one metric family.
func validateLogMetricsAcross(c *yamlx.Checker, lists map[string][]LogMetricConfig) {
	type seen struct {
		path string
		m    LogMetricConfig
	}
	first := map[string]seen{}
	keys := make([]string, 0, len(lists))
	for k := range lists {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, base := range keys {
		for i, m := range lists[base] {
			p := yamlx.Index(base, i)
			if strings.HasPrefix(m.Name, "tokpulse_log_") {
				c.Errorf(yamlx.Join(p, "name"), "the prefix tokpulse_log_ is the agent's own; choose another name")
			}
			f, ok := first[m.Name]
			if !ok {
				first[m.Name] = seen{p, m}
				continue
			}
			if f.m.Type != m.Type || f.m.Help != m.Help || !slices.Equal(f.m.Labels, m.Labels) || !slices.Equal(f.m.Buckets, m.Buckets) {
				c.Errorf(p, "metric %s is also declared at %s with another type, help, labels or buckets; declare it the same way in every source", m.Name, f.path)
			}
		}
	}
}

// validatePatterns checks a source's patterns.
func validatePatterns(c *yamlx.Checker, path string, ps []LogPattern) {
	names := map[string]bool{}
	for i, p := range ps {
		ip := yamlx.Index(path, i)
		if p.Name == "" || !model.LabelValue(p.Name).IsValid() {
			c.Errorf(yamlx.Join(ip, "name"), "each pattern needs a name, such as error")
		}
		if names[p.Name] {
			c.Errorf(yamlx.Join(ip, "name"), "pattern %q is listed twice; give each a distinct name", p.Name)
		}
		names[p.Name] = true
		if p.Regexp.IsZero() {
			c.Errorf(yamlx.Join(ip, "regexp"), "each pattern needs a regexp, such as '(?i)error|fail'")
		}
	}
}

// matcher is a regexp with a literal prefilter: lit lists literals of
// which at least one occurs in every match. When exact is set the
// expression is nothing but those literals, and the prefilter decides
// alone.
type matcher struct {
	re    *regexp.Regexp
	lits  []literal
	exact bool
}

type literal struct {
	b    []byte
	fold bool // compare with the ASCII-lowercased line
	rare int  // index in b of its rarest byte, searched for first
}

// byteRank orders bytes by how common they are in log text, most common
// first: searching for a literal's rarest byte with bytes.IndexByte (SIMD)
// and verifying around it wastes far fewer checks than starting from its
// first letter ("error" starts with the most common letter of English).
const byteRank = " eE0123456789taoinsrhldcumfpgwybvkxjqzTAOINSRHLDCUMFPGWYBVKXJQZ-./:,[]\"=_'"

func rarestByte(b []byte) int {
	best, bestRank := 0, -1
	for i, c := range b {
		r := strings.IndexByte(byteRank, c)
		if r < 0 {
			r = len(byteRank) // not listed: rarer than anything listed
		}
		if r > bestRank {
			best, bestRank = i, r
		}
	}
	return best
}

// in reports whether the literal occurs in hay.
func (l *literal) in(hay []byte) bool {
	n, r := len(l.b), l.rare
	c := l.b[r]
	for i := r; i < len(hay); {
		j := bytes.IndexByte(hay[i:], c)
		if j < 0 {
			return false
		}
		start := i + j - r
		if start+n > len(hay) {
			return false
		}
		if string(hay[start:start+n]) == string(l.b) {
			return true
		}
		i += j + 1
	}
	return false
}

func newMatcher(re *regexp.Regexp) *matcher {
	m := &matcher{re: re}
	parsed, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return m
	}
	parsed = parsed.Simplify()
	lits, ok := requiredLiterals(parsed)
	if !ok {
		return m
	}
	m.lits = lits
	m.exact = onlyLiterals(parsed)
	return m
}

// requiredLiterals returns literals of which at least one occurs in every
// match of re, or false when no such set is known.
func requiredLiterals(re *syntax.Regexp) ([]literal, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		fold := re.Flags&syntax.FoldCase != 0
		s := string(re.Rune)
		if s == "" {
			return nil, false
		}
		if fold {
			// Only ASCII folds are prefiltered. The Unicode folds of
			// ASCII letters (the Kelvin sign for k, the long s) need a
			// non-ASCII line, for which the prefilter is not used.
			for _, r := range re.Rune {
				if r >= utf8.RuneSelf {
					return nil, false
				}
			}
			s = strings.ToLower(s)
		}
		return []literal{{b: []byte(s), fold: fold, rare: rarestByte([]byte(s))}}, true
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiterals(re.Sub[0])
		}
	case syntax.OpConcat:
		var best []literal
		bestScore := 0
		for _, s := range re.Sub {
			l, ok := requiredLiterals(s)
			if !ok {
				continue
			}
			// The shortest literal of a set decides how selective it is.
			score := math.MaxInt
			for _, x := range l {
				score = min(score, len(x.b))
			}
			score = score*8 - len(l)
			if score > bestScore {
				best, bestScore = l, score
			}
		}
		return best, best != nil
	case syntax.OpAlternate:
		var out []literal
		for _, s := range re.Sub {
			l, ok := requiredLiterals(s)
			if !ok {
				return nil, false
			}
			out = append(out, l...)
		}
		return out, len(out) > 0
	}
	return nil, false
}

// onlyLiterals reports whether re matches exactly the lines containing one
// of its literals: a literal or an alternation of literals, unanchored.
func onlyLiterals(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		_, ok := requiredLiterals(re)
		return ok
	case syntax.OpCapture:
		return onlyLiterals(re.Sub[0])
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !onlyLiterals(s) {
				return false
			}
		}
		return true
	}
	return false
}

// match reports whether line matches. lower is line lowercased (ASCII) and
// ascii reports that line holds no byte above 0x7f; the prefilter is only
// trusted for ASCII lines, where ASCII case folding is the whole story.
func (m *matcher) match(line, lower []byte, ascii bool) bool {
	if ascii && m.lits != nil {
		found := false
		for i := range m.lits {
			l := &m.lits[i]
			hay := line
			if l.fold {
				hay = lower
			}
			if l.in(hay) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
		if m.exact {
			return true
		}
	}
	return m.re.Match(line)
}

// passes is the prefilter alone, for expressions whose groups are needed.
func (m *matcher) passes(line, lower []byte, ascii bool) bool {
	if !ascii || m.lits == nil {
		return true
	}
	for i := range m.lits {
		l := &m.lits[i]
		hay := line
		if l.fold {
			hay = lower
		}
		if l.in(hay) {
			return true
		}
	}
	return false
}

// lowerASCII appends line lowercased (ASCII letters only) to dst and reports
// whether line is pure ASCII. It works eight bytes at a time.
func lowerASCII(dst, line []byte) ([]byte, bool) {
	n := len(line)
	dst = slices.Grow(dst[:0], n)[:n]
	const hi = 0x8080808080808080
	var any uint64
	i := 0
	for ; i+8 <= n; i += 8 {
		w := binary.LittleEndian.Uint64(line[i:])
		any |= w
		b := w &^ hi
		ge := b + 0x3f3f3f3f3f3f3f3f // bit 7 set where byte >= 'A'
		gt := b + 0x2525252525252525 // bit 7 set where byte > 'Z'
		mask := ge &^ gt &^ w & hi
		binary.LittleEndian.PutUint64(dst[i:], w|mask>>2)
	}
	for ; i < n; i++ {
		c := line[i]
		any |= uint64(c)
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
	return dst, any&hi == 0
}

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

	lower []byte // scratch: the lowercased line
}

type patternState struct {
	name    string
	m       *matcher
	matches *atomic.Uint64
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
			g = &metricGroup{m: lm.m, lin: compileLinear(mc.Regexp.Regexp)}
			byRE[mc.Regexp.String()] = g
			p.groups = append(p.groups, g)
		}
		g.metrics = append(g.metrics, lm)
	}
	return p
}

// process handles one line read at time ts.
func (p *linePipeline) process(line []byte, cut bool, ts time.Time) {
	p.count(line, cut, ts)
	p.match(line, ts)
}

// count updates the line counters only (multiline sources match joined
// events, but count physical lines).
func (p *linePipeline) count(line []byte, cut bool, ts time.Time) {
	p.stats.lines.Add(1)
	if p.countBytes {
		p.stats.bytes.Add(uint64(len(line)) + 1)
	}
	if cut {
		p.stats.cut.Add(1)
	}
	p.stats.lastLine.Store(ts.UnixNano())
}

// match runs the patterns and log-derived metrics over one line or event.
func (p *linePipeline) match(line []byte, ts time.Time) {
	var ascii bool
	p.lower, ascii = lowerASCII(p.lower, line)
	for _, pt := range p.patterns {
		if pt.m.match(line, p.lower, ascii) {
			pt.matches.Add(1)
			if p.shed {
				p.stats.shedEvidence.Add(1)
			} else {
				pt.ring.add(ts, line)
			}
		}
	}
	if p.shed {
		if len(p.groups) > 0 {
			p.stats.shedMetrics.Add(1)
		}
		return
	}
	for _, g := range p.groups {
		if !g.m.passes(line, p.lower, ascii) {
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
		for _, m := range g.metrics {
			m.observe(line, idx)
		}
	}
}

var (
	logLinesDesc = prometheus.NewDesc("tokpulse_log_lines_total",
		"Lines read from the log source.", []string{"source"}, nil)
	logBytesDesc = prometheus.NewDesc("tokpulse_log_bytes_total",
		"Bytes read from the log source, line ends included.", []string{"source"}, nil)
	logLastDesc = prometheus.NewDesc("tokpulse_log_last_line_timestamp_seconds",
		"When the agent read the source's last line (Unix time); 0 before the first.", []string{"source"}, nil)
	logErrorsDesc = prometheus.NewDesc("tokpulse_log_read_errors_total",
		"Failed attempts to read the source (unreadable file, directory in place of a file, journalctl failure).", []string{"source"}, nil)
	logCutDesc = prometheus.NewDesc("tokpulse_log_lines_truncated_total",
		"Lines longer than max_line_bytes, of which only the first max_line_bytes were used.", []string{"source"}, nil)
	logMatchesDesc = prometheus.NewDesc("tokpulse_log_matches_total",
		"Lines that matched the source's pattern.", []string{"source", "pattern"}, nil)
	logShedDesc = prometheus.NewDesc("tokpulse_log_lines_shed_total",
		"Optional work the source left out while it was far behind its files (docs/logs.md): work=metrics, lines whose log-derived metrics were not computed; work=evidence, pattern matches whose line was not kept as evidence. Line counts and pattern matches are never shed.",
		[]string{"source", "work"}, nil)
	logMetricDroppedDesc = prometheus.NewDesc("tokpulse_log_metric_dropped_total",
		"Matching lines a log-derived metric could not record: reason label_limit (max_label_sets reached) or bad_value (the value group is not a number).",
		[]string{"source", "metric", "reason"}, nil)
)

// collect sends the source's line metrics.
func (p *linePipeline) collect(ch chan<- prometheus.Metric) {
	c := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	c(logLinesDesc, float64(p.stats.lines.Load()), p.source)
	c(logBytesDesc, float64(p.stats.bytes.Load()), p.source)
	c(logErrorsDesc, float64(p.stats.readErrors.Load()), p.source)
	c(logCutDesc, float64(p.stats.cut.Load()), p.source)
	c(logShedDesc, float64(p.stats.shedMetrics.Load()), p.source, "metrics")
	c(logShedDesc, float64(p.stats.shedEvidence.Load()), p.source, "evidence")
	last := 0.0
	if ns := p.stats.lastLine.Load(); ns > 0 {
		last = float64(ns) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(logLastDesc, prometheus.GaugeValue, last, p.source)
	for _, pt := range p.patterns {
		c(logMatchesDesc, float64(pt.matches.Load()), p.source, pt.name)
	}
	for _, m := range p.metrics {
		m.collect(ch)
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

// evidenceRing keeps the last len(slots) lines; slots reuse their buffers
// so that a busy error pattern does not allocate per line. Lines are kept
// raw and redacted when read, which is rare, instead of per match.
type evidenceRing struct {
	mu    sync.Mutex
	slots []evidenceSlot
	next  int
	n     int
}

type evidenceSlot struct {
	t   time.Time
	buf []byte
}

func (r *evidenceRing) add(t time.Time, line []byte) {
	if len(r.slots) == 0 {
		return
	}
	if len(line) > evidenceLineBytes {
		line = line[:evidenceLineBytes]
	}
	r.mu.Lock()
	s := &r.slots[r.next]
	s.t = t
	s.buf = append(s.buf[:0], line...)
	r.next = (r.next + 1) % len(r.slots)
	r.n = min(r.n+1, len(r.slots))
	r.mu.Unlock()
}

// entries returns the kept lines, oldest first.
func (r *evidenceRing) entries() []evidence.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]evidence.Entry, 0, r.n)
	for i := 0; i < r.n; i++ {
		s := r.slots[(r.next-r.n+i+len(r.slots))%len(r.slots)]
		out = append(out, evidence.Entry{Time: s.t, Text: string(s.buf)})
	}
	return out
}

// logMetric is one log-derived metric of one source.
type logMetric struct {
	cfg      LogMetricConfig
	source   string
	m        *matcher
	valueIdx int   // submatch index of the value group, -1 for none
	labelIdx []int // submatch indexes of the label groups
	desc     *prometheus.Desc

	mu       sync.Mutex
	series   map[string]*logSeries
	order    []*logSeries
	key      []byte
	overflow atomic.Uint64
	badValue atomic.Uint64
}

type logSeries struct {
	labels  []string // source first
	value   float64
	count   uint64
	buckets []uint64
}

func newLogMetric(source string, c LogMetricConfig) *logMetric {
	m := &logMetric{cfg: c, source: source, m: newMatcher(c.Regexp.Regexp), valueIdx: -1, series: map[string]*logSeries{}}
	if c.Value != "" {
		m.valueIdx = c.Regexp.SubexpIndex(c.Value)
	}
	for _, l := range c.Labels {
		m.labelIdx = append(m.labelIdx, c.Regexp.SubexpIndex(l))
	}
	help := c.Help
	if help == "" {
		help = "Log-derived metric declared in agent.yaml."
	}
	m.desc = prometheus.NewDesc(c.Name, help, append([]string{"source"}, c.Labels...), nil)
	return m
}

// metricGroup is the log-derived metrics of a source that share one
// expression.
type metricGroup struct {
	m       *matcher
	lin     *linear // nil when the expression is not linear
	idx     []int   // scratch for submatch positions
	metrics []*logMetric
}

// observe records one matching line; idx are its submatch positions.
func (m *logMetric) observe(line []byte, idx []int) {
	v := 1.0
	if m.valueIdx >= 0 {
		s, e := idx[2*m.valueIdx], idx[2*m.valueIdx+1]
		if s < 0 {
			m.badValue.Add(1)
			return
		}
		var ok bool
		if v, ok = parseNumber(line[s:e]); !ok {
			m.badValue.Add(1)
			return
		}
		v *= m.cfg.Scale
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.key = m.key[:0]
	for _, li := range m.labelIdx {
		if s := idx[2*li]; s >= 0 {
			m.key = append(m.key, line[s:idx[2*li+1]]...)
		}
		m.key = append(m.key, 0xff)
	}
	s := m.series[string(m.key)] // no allocation: the compiler keeps the lookup in place
	if s == nil {
		if len(m.series) >= m.cfg.MaxLabelSets {
			m.overflow.Add(1)
			return
		}
		s = &logSeries{labels: []string{m.source}}
		for _, li := range m.labelIdx {
			val := ""
			if st := idx[2*li]; st >= 0 {
				val = strings.ToValidUTF8(string(line[st:idx[2*li+1]]), "\uFFFD")
			}
			s.labels = append(s.labels, val)
		}
		if m.cfg.Type == "histogram" {
			s.buckets = make([]uint64, len(m.cfg.Buckets))
		}
		m.series[string(m.key)] = s
		m.order = append(m.order, s)
	}
	switch m.cfg.Type {
	case "counter":
		if v > 0 {
			s.value += v
		}
	case "gauge":
		s.value = v
	case "histogram":
		s.value += v
		s.count++
		// Cumulative counts are made at collect time; here only the
		// first bucket that holds v is incremented.
		if i, _ := slices.BinarySearch(m.cfg.Buckets, v); i < len(s.buckets) {
			s.buckets[i]++
		}
	}
}

func (m *logMetric) collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	for _, s := range m.order {
		var metric prometheus.Metric
		var err error
		switch m.cfg.Type {
		case "counter":
			metric, err = prometheus.NewConstMetric(m.desc, prometheus.CounterValue, s.value, s.labels...)
		case "gauge":
			metric, err = prometheus.NewConstMetric(m.desc, prometheus.GaugeValue, s.value, s.labels...)
		case "histogram":
			cum := make(map[float64]uint64, len(s.buckets))
			var acc uint64
			for i, b := range m.cfg.Buckets {
				acc += s.buckets[i]
				cum[b] = acc
			}
			metric, err = prometheus.NewConstHistogram(m.desc, s.count, s.value, cum, s.labels...)
		}
		if err == nil {
			ch <- metric
		}
	}
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(logMetricDroppedDesc, prometheus.CounterValue, float64(m.overflow.Load()), m.source, m.cfg.Name, "label_limit")
	ch <- prometheus.MustNewConstMetric(logMetricDroppedDesc, prometheus.CounterValue, float64(m.badValue.Load()), m.source, m.cfg.Name, "bad_value")
}

// parseNumber reads a decimal number without allocating; integers (the
// common case: milliseconds, bytes, status codes) take the fast path.
func parseNumber(b []byte) (float64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if len(b) <= 15 {
		var n int64
		i := 0
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
			n = n*10 + int64(b[i]-'0')
		}
		if i == len(b) {
			return float64(n), true
		}
	}
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil
}

// linear is a fast matcher for the common shape of log-format expressions:
// anchored at the start, a sequence of literals and ASCII character classes
// with repeats, where every variable-length part is followed by something
// it cannot contain (`\S+ `, `[^"]*"`, `\d+ `). For such expressions the
// greedy choice is the only one, so one pass without backtracking finds
// exactly the match (and submatches) Go's regexp would, several times
// faster. Other expressions return nil from compileLinear and use regexp.
type linear struct {
	elems []linElem
	ncap  int
}

type linElem struct {
	kind     byte // 'l' literal, 'c' class, '(' capture start, ')' capture end, '$' end of text
	lit      []byte
	class    *[256]bool
	min, max int // repeats of class; max < 0 is unbounded
	cap      int
	// stop is the one byte outside class, or -1: a run of such a class
	// ends at the next stop byte, which bytes.IndexByte finds with SIMD.
	stop int
}

func compileLinear(re *regexp.Regexp) *linear {
	parsed, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	parsed = parsed.Simplify()
	if parsed.Op != syntax.OpConcat || len(parsed.Sub) == 0 || parsed.Sub[0].Op != syntax.OpBeginText {
		return nil
	}
	l := &linear{ncap: re.NumSubexp() + 1}
	for _, s := range parsed.Sub[1:] {
		if !l.add(s) {
			return nil
		}
	}
	// Every variable part must be followed by something disjoint from it.
	for i, e := range l.elems {
		if e.kind != 'c' || e.min == e.max {
			continue
		}
		j := i + 1
		for j < len(l.elems) && (l.elems[j].kind == '(' || l.elems[j].kind == ')') {
			j++
		}
		if j == len(l.elems) {
			continue // runs to the end of the line: greedy takes it all
		}
		n := l.elems[j]
		switch n.kind {
		case '$':
		case 'l':
			if e.class[n.lit[0]] {
				return nil
			}
		case 'c':
			if n.min < 1 {
				return nil
			}
			for b := 0; b < 256; b++ {
				if e.class[b] && n.class[b] {
					return nil
				}
			}
		}
	}
	return l
}

func (l *linear) add(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return false
		}
		var b []byte
		for _, r := range re.Rune {
			b = utf8.AppendRune(b, r)
		}
		l.elems = append(l.elems, linElem{kind: 'l', lit: b})
	case syntax.OpCharClass, syntax.OpAnyCharNotNL:
		return l.addClass(re, 1, 1)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		lo, hi := 0, -1
		if re.Op == syntax.OpPlus {
			lo = 1
		}
		if re.Op == syntax.OpQuest {
			hi = 1
		}
		if re.Flags&syntax.NonGreedy != 0 {
			return false
		}
		return l.addClass(re.Sub[0], lo, hi)
	case syntax.OpRepeat:
		if re.Flags&syntax.NonGreedy != 0 {
			return false
		}
		return l.addClass(re.Sub[0], re.Min, re.Max)
	case syntax.OpCapture:
		l.elems = append(l.elems, linElem{kind: '(', cap: re.Cap})
		if !l.add(re.Sub[0]) {
			return false
		}
		l.elems = append(l.elems, linElem{kind: ')', cap: re.Cap})
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !l.add(s) {
				return false
			}
		}
	case syntax.OpEndText:
		l.elems = append(l.elems, linElem{kind: '$'})
	default:
		return false
	}
	return true
}

// addClass adds a class repeated lo..hi times. Only classes that are
// decided by single bytes qualify: ASCII ranges, or the negation of ASCII
// ranges (\S, [^"], .), since every byte of a multi-byte character (and
// every invalid byte, read as U+FFFD) lies outside ASCII.
func (l *linear) addClass(re *syntax.Regexp, lo, hi int) bool {
	var set [256]bool
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) != 1 || re.Rune[0] >= utf8.RuneSelf || re.Flags&syntax.FoldCase != 0 {
			return false
		}
		set[re.Rune[0]] = true
	case syntax.OpAnyCharNotNL:
		if hi >= 0 || lo > 1 {
			return false
		}
		for b := range set {
			set[b] = b != '\n'
		}
	case syntax.OpCharClass:
		r := re.Rune
		// Negated ASCII class: the last range runs to the top of Unicode.
		neg := len(r) >= 2 && r[len(r)-1] == unicode.MaxRune && r[len(r)-2] < utf8.RuneSelf
		for i := 0; i+1 < len(r); i += 2 {
			lo, hi := r[i], r[i+1]
			if hi >= utf8.RuneSelf && !(neg && i+2 == len(r)) {
				return false
			}
			for c := lo; c <= hi && c < 256; c++ {
				set[c] = true
			}
		}
		if neg {
			// Bytes and characters only count alike for "one or more"
			// and "any number": a multi-byte character is several bytes.
			if hi >= 0 || lo > 1 {
				return false
			}
			for b := 0x80; b < 256; b++ {
				set[b] = true
			}
		}
	default:
		return false
	}
	stop, outside := -1, 0
	for b := range set {
		if !set[b] {
			stop = b
			outside++
		}
	}
	if outside != 1 {
		stop = -1
	}
	l.elems = append(l.elems, linElem{kind: 'c', class: &set, min: lo, max: hi, stop: stop})
	return true
}

// match returns the submatch positions as regexp.FindSubmatchIndex does,
// appended to dst, or nil.
func (l *linear) match(line []byte, dst []int) []int {
	n := 2 * l.ncap
	dst = slices.Grow(dst[:0], n)[:n]
	for i := range dst {
		dst[i] = -1
	}
	pos := 0
	for i := range l.elems {
		e := &l.elems[i]
		switch e.kind {
		case 'l':
			if !bytes.HasPrefix(line[pos:], e.lit) {
				return nil
			}
			pos += len(e.lit)
		case 'c':
			k := 0
			if e.stop >= 0 && e.max < 0 {
				if k = bytes.IndexByte(line[pos:], byte(e.stop)); k < 0 {
					k = len(line) - pos
				}
			} else {
				for pos+k < len(line) && (e.max < 0 || k < e.max) && e.class[line[pos+k]] {
					k++
				}
			}
			if k < e.min {
				return nil
			}
			pos += k
		case '(':
			dst[2*e.cap] = pos
		case ')':
			dst[2*e.cap+1] = pos
		case '$':
			if pos != len(line) {
				return nil
			}
		}
	}
	dst[0], dst[1] = 0, pos
	return dst
}
