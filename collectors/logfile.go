package collectors

import (
	"context"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/tailer"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// LogConfig is one entry of "logs:": a set of files read as one source.
type LogConfig struct {
	// Name is the source label of every metric of this source.
	Name string `yaml:"name"`
	// Paths are files or globs; globs are expanded again at every poll,
	// so files that appear later are followed too. A pattern that matches
	// nothing is not an error: tokpulse_log_files shows 0.
	Paths []string `yaml:"paths"`
	// StartAt is where a file seen for the first time on the agent's first
	// run is read from: "end" (default) or "beginning". Files that appear
	// later are always read from their beginning.
	StartAt string `yaml:"start_at"`
	// MaxLineBytes caps a line; a longer one is cut, counted in
	// tokpulse_log_lines_truncated_total and never held whole in memory.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// ShedBacklogBytes is how far behind its files (unread bytes) the
	// source sheds its optional work (log-derived metrics, evidence);
	// 0 never sheds.
	ShedBacklogBytes int64 `yaml:"shed_backlog_bytes"`
	// PollInterval is how often the files are checked for new lines and
	// rotation.
	PollInterval yamlx.Duration `yaml:"poll_interval"`
	// RotateWait is how long a rotated file is still read, for writers
	// that reopen their log late.
	RotateWait yamlx.Duration `yaml:"rotate_wait"`
	// Multiline joins continuation lines (stack traces) to the line they
	// continue before patterns and metrics see them.
	Multiline MultilineConfig `yaml:"multiline"`
	// Patterns are counted in tokpulse_log_matches_total; empty means the
	// default four (error, auth, rate_limit, webhook).
	Patterns []LogPattern `yaml:"patterns"`
	// Metrics are log-derived metrics.
	Metrics []LogMetricConfig `yaml:"metrics"`
	// EvidenceLines is how many recent matching lines are kept per pattern.
	EvidenceLines int `yaml:"evidence_lines"`
	// Redact lists expressions whose matches are replaced by [REDACTED] in
	// evidence, besides the built-in secrets (tokens, passwords, API keys,
	// Authorization headers).
	Redact []yamlx.Regexp `yaml:"redact"`
}

// MultilineConfig joins lines into events: a line that does not match
// Start continues the event before it.
type MultilineConfig struct {
	// Start matches the first line of an event, e.g. '^\d{4}-\d\d-\d\d'.
	// Empty disables joining.
	Start yamlx.Regexp `yaml:"start"`
	// MaxLines caps an event; more continuation lines start a new event.
	MaxLines int `yaml:"max_lines"`
	// Timeout ends an event when no line followed it for this long.
	Timeout yamlx.Duration `yaml:"timeout"`
}

// DefaultLogConfig returns the defaults of one logs: entry.
func DefaultLogConfig() LogConfig {
	return LogConfig{
		StartAt:          "end",
		MaxLineBytes:     tailer.DefaultMaxLineBytes,
		ShedBacklogBytes: shedBehindBytes,
		PollInterval:     yamlx.Duration(tailer.DefaultPollInterval),
		RotateWait:       yamlx.Duration(tailer.DefaultRotateWait),
		Multiline:        MultilineConfig{MaxLines: 500, Timeout: yamlx.Duration(time.Second)},
		EvidenceLines:    10,
	}
}

// UnmarshalYAML seeds the defaults before decoding.
func (l *LogConfig) UnmarshalYAML(node *yaml.Node) error {
	type plain LogConfig
	*l = DefaultLogConfig()
	return node.Decode((*plain)(l))
}

// Validate implements yamlx.Validator.
func (l *LogConfig) Validate(c *yamlx.Checker, path string) {
	validateSourceName(c, path, l.Name)
	if len(l.Paths) == 0 {
		c.Errorf(yamlx.Join(path, "paths"), "a log source needs paths, such as [/var/log/tokpulse/app.log]")
	}
	for i, p := range l.Paths {
		ip := yamlx.Index(yamlx.Join(path, "paths"), i)
		if !filepath.IsAbs(p) {
			c.Errorf(ip, "%q is not an absolute path; write e.g. /var/log/%s", p, p)
		}
		if _, err := filepath.Match(p, ""); err != nil {
			c.Errorf(ip, "%q is not a valid glob: %v", p, err)
		}
	}
	if l.StartAt != "end" && l.StartAt != "beginning" {
		c.Errorf(yamlx.Join(path, "start_at"), "%q is not a start position; write end or beginning", l.StartAt)
	}
	if l.MaxLineBytes < 256 || l.MaxLineBytes > 16<<20 {
		c.Errorf(yamlx.Join(path, "max_line_bytes"), "%d is out of range; write a size between 256 and 16777216 bytes (default 65536)", l.MaxLineBytes)
	}
	if l.ShedBacklogBytes < 0 {
		c.Errorf(yamlx.Join(path, "shed_backlog_bytes"), "%d is negative; write a size in bytes (default 16777216), or 0 never to shed", l.ShedBacklogBytes)
	}
	if l.PollInterval.D() < 10*time.Millisecond {
		c.Errorf(yamlx.Join(path, "poll_interval"), "must be at least 10ms; the default is 1s")
	}
	if l.Multiline.MaxLines < 1 {
		c.Errorf(yamlx.Join(yamlx.Join(path, "multiline"), "max_lines"), "must be at least 1")
	}
	if l.EvidenceLines < 0 || l.EvidenceLines > 1000 {
		c.Errorf(yamlx.Join(path, "evidence_lines"), "write a number between 0 and 1000")
	}
	validatePatterns(c, yamlx.Join(path, "patterns"), l.Patterns)
	for i := range l.Metrics {
		l.Metrics[i].Validate(c, yamlx.Index(yamlx.Join(path, "metrics"), i))
	}
}

func validateSourceName(c *yamlx.Checker, path, name string) {
	if name == "" {
		c.Errorf(yamlx.Join(path, "name"), "each source needs a name, such as app; it becomes the source label")
	}
}

// validateLogSources checks what spans sources: unique names (files and
// journal share the source label) and consistent metric declarations.
func validateLogSources(c *yamlx.Checker, logs []LogConfig, journals []JournalConfig) {
	names := map[string]string{}
	metrics := map[string][]LogMetricConfig{}
	check := func(p, name string) {
		if prev, ok := names[name]; ok && name != "" {
			c.Errorf(yamlx.Join(p, "name"), "source %q is already defined at %s; each source needs its own name", name, prev)
		}
		names[name] = p
	}
	for i, l := range logs {
		p := yamlx.Index("logs", i)
		check(p, l.Name)
		metrics[yamlx.Join(p, "metrics")] = l.Metrics
	}
	for i, j := range journals {
		p := yamlx.Index("journal", i)
		check(p, j.Name)
		metrics[yamlx.Join(p, "metrics")] = j.Metrics
	}
	validateLogMetricsAcross(c, metrics)
}

func validateLogs(c *Config, v *yamlx.Checker, path string) {
	for i := range c.Logs {
		c.Logs[i].Validate(v, yamlx.Index(yamlx.Join(path, "logs"), i))
	}
}

func buildLogs(cfg Config, opts Options) ([]Named, error) {
	var out []Named
	for _, l := range cfg.Logs {
		out = append(out, Named{Name: "logs/" + l.Name, Collector: NewLogFile(l, opts), Key: configKey(l), Reuse: true})
	}
	return out, nil
}

// logStateBucket holds the read positions of file sources, one key per
// source.
const logStateBucket = "logs"

// logState is what the state file keeps per file source.
type logState struct {
	Positions []tailer.Position `json:"positions"`
	SavedAt   time.Time         `json:"saved_at"`
}

// CheckpointInterval is how often read positions are written to the state
// file (and once more on shutdown). After a crash, at most the lines read
// in the last interval are read again.
const CheckpointInterval = time.Second

// LogFile follows the files of one logs: source.
type LogFile struct {
	cfg   LogConfig
	opts  Options
	pipe  *linePipeline
	tail  *tailer.Tailer
	saved *checkpoint[logState]
	// absentPoll is how often the source looks for its folders while none
	// exists (absentPollInterval; tests shorten it).
	absentPoll time.Duration
	maxLine    int // the tailer's max_line_bytes

	// warm is done after the first read pass (the backlog since the saved
	// position is read).
	warm  warmup
	files *fileStats // carried across reloads

	// multiline state, used by the reader goroutine only
	event      []byte
	eventLines int
	eventTime  time.Time
	now        time.Time // time of the current poll
}

var (
	logFilesDesc = newNamedDesc("tokpulse_log_files",
		"Files the source is following now (rotated files still being read included); 0 means the paths match no file.", []string{"source"}, nil)
	logRotationsDesc = newNamedDesc("tokpulse_log_rotations_total",
		"Followed files replaced at their path (rename, delete, symlink switch).", []string{"source"}, nil)
	logTruncationsDesc = newNamedDesc("tokpulse_log_truncations_total",
		"Followed files found truncated (copytruncate).", []string{"source"}, nil)
	logRecoveredDesc = newNamedDesc("tokpulse_log_copytruncate_recovered_bytes_total",
		"Bytes read from a copytruncate copy because the original was truncated before the agent read them.", []string{"source"}, nil)
)

// fileStats are the counters of file sources only.
type fileStats struct {
	rotations, truncations, recoveredBytes atomic.Uint64
}

// NewLogFile returns the collector of one logs: source. It starts reading
// when Run is called.
func NewLogFile(cfg LogConfig, opts Options) *LogFile {
	opts = opts.withDefaults()
	opts.Logger = opts.Logger.With("source", cfg.Name)
	patterns := cfg.Patterns
	if len(patterns) == 0 {
		patterns = DefaultLogPatterns()
	}
	l := &LogFile{cfg: cfg, opts: opts, warm: warmup{limit: time.Minute}, absentPoll: absentPollInterval, maxLine: cfg.MaxLineBytes}
	if l.maxLine <= 0 {
		l.maxLine = tailer.DefaultMaxLineBytes // as the tailer does
	}
	l.pipe = newLinePipeline(cfg.Name, patterns, cfg.Metrics, cfg.EvidenceLines, opts)
	l.pipe.batched = true // flushed after each read (Handed), each poll and on stop
	l.pipe.redact = cfg.Redact
	l.pipe.carryOver(opts.Counters, "log")
	l.files = carried[fileStats](opts.Counters, "log\x00"+cfg.Name+"\x00files")
	l.tail = tailer.New(tailer.Config{
		Globs:        cfg.Paths,
		StartAtEnd:   cfg.StartAt == "end",
		MaxLineBytes: cfg.MaxLineBytes,
		PollInterval: cfg.PollInterval.D(),
		RotateWait:   cfg.RotateWait.D(),
		Logger:       opts.Logger,
		Now:          opts.Now,
		Lines:        l.lines,
	}, l.line, (*logEvents)(l))
	// The positions are what counts: SavedAt changes at every save.
	l.saved = newCheckpoint(opts, logStateBucket, cfg.Name,
		func(a, b logState) bool { return slices.Equal(a.Positions, b.Positions) },
		"Saved log positions are unreadable; starting as on a first run",
		"Saving log positions failed; a restart may read lines again")
	return l
}

// Update implements Collector.
func (l *LogFile) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	return l.UpdateWanted(ctx, ch, nil)
}

// UpdateWanted implements Selective: only the families want wants (all
// when want is nil).
func (l *LogFile) UpdateWanted(_ context.Context, ch chan<- prometheus.Metric, want Want) error {
	l.pipe.collect(ch, want)
	for _, m := range []struct {
		d namedDesc
		t prometheus.ValueType
		v float64
	}{
		{logFilesDesc, prometheus.GaugeValue, float64(l.tail.Files())},
		{logRotationsDesc, prometheus.CounterValue, float64(l.files.rotations.Load())},
		{logTruncationsDesc, prometheus.CounterValue, float64(l.files.truncations.Load())},
		{logRecoveredDesc, prometheus.CounterValue, float64(l.files.recoveredBytes.Load())},
	} {
		if want == nil || want(m.d.name) {
			ch <- prometheus.MustNewConstMetric(m.d.Desc, m.t, m.v, l.cfg.Name)
		}
	}
	return nil
}

// Evidence implements evidence.Provider.
func (l *LogFile) Evidence() []evidence.Section { return l.pipe.evidence("log") }

// Warm implements Warmer: the first read pass is over.
func (l *LogFile) Warm() bool { return l.warm.warm(l.opts.Now()) }

// Families implements Warmer.
func (l *LogFile) Families() []string {
	return append(l.pipe.families(), "tokpulse_log_files", "tokpulse_log_rotations_total", "tokpulse_log_truncations_total")
}

// Run follows the files until ctx is cancelled. It saves the read
// positions every CheckpointInterval and once more after the last read.
func (l *LogFile) Run(ctx context.Context) {
	var st logState
	resumed := l.saved.load(&st)
	l.warm.begin(l.opts.Now())
	l.tail.Start(st.Positions, resumed, st.SavedAt)
	l.checkpoint() // from now on a restart is a resumption

	// One timer per source, for the next poll or the next checkpoint,
	// whichever comes first: an idle source wakes the process once per
	// poll interval, and a source whose folders do not exist once per
	// absentPollInterval.
	timer := time.NewTimer(l.cfg.PollInterval.D())
	defer timer.Stop()
	wake := l.tail.Watch(ctx)
	var last, saved time.Time
	for {
		last = time.Now()
		l.now = l.opts.Now()
		moved := l.tail.Poll(ctx)
		l.pipe.flush() // the lines of a file finished during the poll
		dirty := l.saved.dirty(logState{Positions: l.tail.Positions()})
		if moved || (dirty && last.Sub(saved) >= CheckpointInterval) {
			l.checkpoint()
			saved, dirty = last, false
		}
		l.warm.done.Store(true)
		if len(l.event) > 0 && l.now.Sub(l.eventTime) >= l.cfg.Multiline.Timeout.D() {
			l.flushEvent()
		}
		next := l.cfg.PollInterval.D()
		if l.tail.Absent() {
			next = absentWait(last, next, l.absentPoll)
		}
		if dirty {
			next = min(next, CheckpointInterval-last.Sub(saved))
		}
		if len(l.event) > 0 {
			next = min(next, l.cfg.Multiline.Timeout.D())
		}
		if l.tail.More() {
			next = 0 // behind its files: read on at once
		}
		timer.Reset(next)
		select {
		case <-ctx.Done():
			l.stop()
			return
		case <-timer.C:
		case <-wake:
			// A busy file wakes us at every write; poll at most every
			// minWakeGap so that following it stays cheap.
			if gap := minWakeGap - time.Since(last); gap > 0 && !l.tail.More() {
				select {
				case <-ctx.Done():
					l.stop()
					return
				case <-time.After(gap):
				}
			}
		}
	}
}

// minWakeGap spaces polls triggered by inotify.
const minWakeGap = 20 * time.Millisecond

// shedBehindBytes is the default shed_backlog_bytes: 16 MiB is about
// 120,000 access-log lines, some 60 ms of full processing on one core; a
// burst that the source keeps up with never comes near it.
const shedBehindBytes = 16 << 20

// absentPollInterval is how often a source whose folders do not exist
// looks for them (inotify cannot watch a folder that is not there). Files
// that appear later are read from their beginning, so waiting loses no
// line.
const absentPollInterval = 10 * time.Second

// absentWait is how long a source whose folders are absent waits from
// now: to the first common multiple of absentPoll (UntilMultiple) that is
// at least poll away, so that the sources wake together and never more
// often than their poll_interval says. absentPoll 0 leaves poll.
func absentWait(now time.Time, poll, absentPoll time.Duration) time.Duration {
	if absentPoll <= 0 {
		return poll
	}
	u := UntilMultiple(now, absentPoll)
	for u < poll {
		u += absentPoll
	}
	return u
}

// UntilMultiple is the time from now to the next multiple of d since the
// epoch (d when now is one). Sources whose folders are absent look for
// them on the same instants, and the agent gathers on them, so that the
// process wakes once for all of them rather than once for each.
func UntilMultiple(now time.Time, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - time.Duration(now.UnixNano()%int64(d))
}

// stop ends reading: the last event, the files, the final checkpoint.
func (l *LogFile) stop() {
	l.flushEvent()
	l.tail.Close()
	l.pipe.flush()
	l.checkpoint()
	l.opts.Logger.Info("Log source stopped", "lines", l.pipe.stats.lines.Load(), "bytes", l.pipe.stats.bytes.Load())
}

// checkpoint saves the read positions (always: SavedAt tells a restart
// how old they are).
func (l *LogFile) checkpoint() {
	l.saved.save(logState{Positions: l.tail.Positions(), SavedAt: l.opts.Now()}, true)
}

// lines is the tailer's Lines: the complete lines of a read, handed to
// the pipeline in one loop rather than through a call per line.
func (l *LogFile) lines(path string, data []byte) {
	if !l.cfg.Multiline.Start.IsZero() {
		for len(data) > 0 {
			line, rest, cut := tailer.NextLine(data, l.maxLine)
			l.line(path, line, cut)
			data = rest
		}
		return
	}
	ts := l.now
	if ts.IsZero() {
		ts = l.opts.Now()
	}
	for len(data) > 0 {
		line, rest, cut := tailer.NextLine(data, l.maxLine)
		l.pipe.process(line, cut, ts)
		data = rest
	}
}

// line is the tailer's Handler.
func (l *LogFile) line(_ string, line []byte, cut bool) {
	ts := l.now
	if ts.IsZero() {
		ts = l.opts.Now()
	}
	if l.cfg.Multiline.Start.IsZero() {
		l.pipe.process(line, cut, ts)
		return
	}
	l.pipe.count(line, cut, ts)
	if len(l.event) > 0 && (l.cfg.Multiline.Start.Regexp.Match(line) || l.eventLines >= l.cfg.Multiline.MaxLines) {
		l.flushEvent()
	}
	if len(l.event) > 0 {
		l.event = append(l.event, '\n')
	}
	room := l.cfg.MaxLineBytes - len(l.event)
	if room > 0 {
		l.event = append(l.event, line[:min(len(line), room)]...)
	}
	l.eventLines++
	l.eventTime = ts
}

func (l *LogFile) flushEvent() {
	if len(l.event) == 0 {
		return
	}
	l.pipe.match(l.event, l.eventTime)
	l.pipe.flush() // also called outside a read (the multiline timeout, stop)
	l.event, l.eventLines = l.event[:0], 0
}

// logEvents adapts LogFile to tailer.Events.
type logEvents LogFile

func (e *logEvents) ReadError(path string, err error) { e.pipe.stats.readErrors.Add(1) }
func (e *logEvents) Rotated(path, how string)         { e.files.rotations.Add(1) }
func (e *logEvents) Truncated(path string, n int64) {
	e.files.truncations.Add(1)
	e.files.recoveredBytes.Add(uint64(n))
}

// Read makes the lines of the bytes read shed their optional work while
// the source is more than shed_backlog_bytes behind its files.
func (e *logEvents) Read(path string, n int, behind int64) {
	e.pipe.shed = e.cfg.ShedBacklogBytes > 0 && behind > e.cfg.ShedBacklogBytes
}

// Handed publishes what the lines of a read did, then counts its bytes
// (tokpulse_log_bytes_total includes the part of a long line that was
// cut off and skipped): a scrape that sees the bytes of a file also sees
// its lines.
func (e *logEvents) Handed(path string, n int) {
	e.pipe.flush()
	e.pipe.stats.bytes.Add(uint64(n))
}

var _ evidence.Provider = (*LogFile)(nil)
