package collectors

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// JournalConfig is one entry of "journal:": entries of the systemd journal
// read through `journalctl --output=json --follow`, as one source.
type JournalConfig struct {
	// Name is the source label of every metric of this source.
	Name string `yaml:"name"`
	// Units keeps entries of these units (journalctl -u).
	Units []string `yaml:"units"`
	// Priority keeps entries of this priority or more urgent, or a range:
	// "err", "warning", "0..4" (journalctl -p).
	Priority string `yaml:"priority"`
	// Matches are journal field matches such as _COMM=node or
	// SYSLOG_IDENTIFIER=tokpulse, combined as journalctl combines them.
	Matches []string `yaml:"matches"`
	// Directory reads the journal files in this folder instead of the
	// system journal (journalctl --directory).
	Directory string `yaml:"directory"`
	// StartAt is where the agent's first run starts: "end" (default: new
	// entries only) or "beginning". Later runs resume after the saved cursor.
	StartAt string `yaml:"start_at"`
	// Journalctl is the program to run.
	Journalctl string `yaml:"journalctl"`
	// MaxLineBytes caps a message; a longer one is cut and counted.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// Patterns, Metrics and EvidenceLines work as in logs: sources.
	Patterns      []LogPattern      `yaml:"patterns"`
	Metrics       []LogMetricConfig `yaml:"metrics"`
	EvidenceLines int               `yaml:"evidence_lines"`
	Redact        []yamlx.Regexp    `yaml:"redact"`
}

// DefaultJournalConfig returns the defaults of one journal: entry.
func DefaultJournalConfig() JournalConfig {
	return JournalConfig{StartAt: "end", Journalctl: "journalctl", MaxLineBytes: 64 << 10, EvidenceLines: 10}
}

// UnmarshalYAML seeds the defaults before decoding.
func (j *JournalConfig) UnmarshalYAML(node *yaml.Node) error {
	type plain JournalConfig
	*j = DefaultJournalConfig()
	return node.Decode((*plain)(j))
}

var priorityNames = map[string]bool{"emerg": true, "alert": true, "crit": true, "err": true, "warning": true, "notice": true, "info": true, "debug": true,
	"0": true, "1": true, "2": true, "3": true, "4": true, "5": true, "6": true, "7": true}

// Validate implements yamlx.Validator.
func (j *JournalConfig) Validate(c *yamlx.Checker, path string) {
	validateSourceName(c, path, j.Name)
	if j.Priority != "" {
		lo, hi, isRange := strings.Cut(j.Priority, "..")
		if !priorityNames[lo] || isRange && !priorityNames[hi] {
			c.Errorf(yamlx.Join(path, "priority"), "%q is not a priority; write one of emerg, alert, crit, err, warning, notice, info, debug (or 0-7), or a range such as err..warning", j.Priority)
		}
	}
	for i, m := range j.Matches {
		k, _, ok := strings.Cut(m, "=")
		if !ok || k == "" || strings.ToUpper(k) != k {
			c.Errorf(yamlx.Index(yamlx.Join(path, "matches"), i), "%q is not a journal match; write FIELD=value with an upper-case field, such as SYSLOG_IDENTIFIER=tokpulse", m)
		}
	}
	if j.Directory != "" && !filepath.IsAbs(j.Directory) {
		c.Errorf(yamlx.Join(path, "directory"), "%q is not an absolute path", j.Directory)
	}
	if j.StartAt != "end" && j.StartAt != "beginning" {
		c.Errorf(yamlx.Join(path, "start_at"), "%q is not a start position; write end or beginning", j.StartAt)
	}
	if j.Journalctl == "" {
		c.Errorf(yamlx.Join(path, "journalctl"), "write the journalctl program, e.g. journalctl or /usr/bin/journalctl")
	}
	if j.MaxLineBytes < 256 || j.MaxLineBytes > 16<<20 {
		c.Errorf(yamlx.Join(path, "max_line_bytes"), "%d is out of range; write a size between 256 and 16777216 bytes (default 65536)", j.MaxLineBytes)
	}
	if j.EvidenceLines < 0 || j.EvidenceLines > 1000 {
		c.Errorf(yamlx.Join(path, "evidence_lines"), "write a number between 0 and 1000")
	}
	validatePatterns(c, yamlx.Join(path, "patterns"), j.Patterns)
	for i := range j.Metrics {
		j.Metrics[i].Validate(c, yamlx.Index(yamlx.Join(path, "metrics"), i))
	}
}

func validateJournal(c *Config, v *yamlx.Checker, path string) {
	for i := range c.Journal {
		c.Journal[i].Validate(v, yamlx.Index(yamlx.Join(path, "journal"), i))
	}
}

func buildJournal(cfg Config, opts Options) ([]Named, error) {
	var out []Named
	for _, j := range cfg.Journal {
		out = append(out, Named{Name: "journal/" + j.Name, Collector: NewJournal(j, opts), Key: configKey(j), Reuse: true})
	}
	return out, nil
}

// journalStateBucket holds the cursor of each journal source.
const journalStateBucket = "journal"

type journalState struct {
	Cursor string `json:"cursor"`
	// Since is when the source first started; a source restarted before
	// it read any entry resumes from there instead of the tail.
	Since time.Time `json:"since"`
}

// Journal backoff bounds for restarting journalctl.
const (
	journalMinBackoff = time.Second
	journalMaxBackoff = 30 * time.Second
	// journalHealthyRun resets the backoff: a journalctl that ran this
	// long was not crash-looping.
	journalHealthyRun = time.Minute
)

// Journal follows the systemd journal for one journal: source through a
// supervised journalctl.
type Journal struct {
	cfg   JournalConfig
	opts  Options
	pipe  *linePipeline
	saved *checkpoint[journalState]

	mu     sync.Mutex
	st     journalState
	minBO  time.Duration
	maxBO  time.Duration
	up     atomic.Bool
	starts atomic.Uint64
	resets *atomic.Uint64 // carried across reloads
	// bootIDFile is where the current boot ID is read, as journalctl
	// itself reads it.
	bootIDFile string
	// warm: journalctl has printed its backlog, which it does at once
	// and then waits; a second without an entry means it is through.
	warm         warmup
	lastActivity atomic.Int64 // unix nanoseconds of the last entry or start
}

// journalQuiet is how long journalctl must be silent for its backlog to
// count as read.
const journalQuiet = time.Second

// Warm implements Warmer: journalctl ran and has been quiet for a moment.
func (j *Journal) Warm() bool {
	now := j.opts.Now()
	if !j.warm.done.Load() {
		if last := j.lastActivity.Load(); last != 0 && j.up.Load() && now.Sub(time.Unix(0, last)) >= journalQuiet {
			j.warm.done.Store(true)
		}
	}
	return j.warm.warm(now)
}

// Families implements Warmer.
func (j *Journal) Families() []string {
	return append(j.pipe.families(), "tokpulse_journal_up")
}

var (
	journalUpDesc = prometheus.NewDesc("tokpulse_journal_up",
		"1 while the source's journalctl is running.", []string{"source"}, nil)
	journalRestartsDesc = prometheus.NewDesc("tokpulse_journal_restarts_total",
		"Times journalctl exited and was started again (with capped exponential backoff).", []string{"source"}, nil)
	journalCursorResetsDesc = prometheus.NewDesc("tokpulse_journal_cursor_resets_total",
		"Saved cursors journalctl rejected; the source then started at the journal's tail.", []string{"source"}, nil)
)

// NewJournal returns the collector of one journal: source.
func NewJournal(cfg JournalConfig, opts Options) *Journal {
	opts = opts.withDefaults()
	// warm-up limit: a journalctl that never starts or never goes quiet
	// (a unit logging without pause) does not hold rules for long.
	opts.Logger = opts.Logger.With("source", cfg.Name)
	patterns := cfg.Patterns
	if len(patterns) == 0 {
		patterns = DefaultLogPatterns()
	}
	j := &Journal{cfg: cfg, opts: opts, minBO: journalMinBackoff, maxBO: journalMaxBackoff,
		bootIDFile: "/proc/sys/kernel/random/boot_id", warm: warmup{limit: 30 * time.Second}}
	j.pipe = newLinePipeline(cfg.Name, patterns, cfg.Metrics, cfg.EvidenceLines, opts)
	j.pipe.redact = cfg.Redact
	j.pipe.countBytes = true
	j.pipe.carryOver(opts.Counters, "journal")
	j.resets = carried[atomic.Uint64](opts.Counters, "journal\x00"+cfg.Name+"\x00resets")
	// The cursor is what counts: Since changes only with it.
	j.saved = newCheckpoint(opts, journalStateBucket, cfg.Name,
		func(a, b journalState) bool { return a.Cursor == b.Cursor },
		"Saved journal cursor is unreadable; starting as on a first run",
		"Saving the journal cursor failed; a restart may read entries again")
	return j
}

// Update implements Collector.
func (j *Journal) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	j.pipe.collect(ch, nil)
	up := 0.0
	if j.up.Load() {
		up = 1
	}
	restarts := j.starts.Load()
	if restarts > 0 {
		restarts--
	}
	ch <- prometheus.MustNewConstMetric(journalUpDesc, prometheus.GaugeValue, up, j.cfg.Name)
	ch <- prometheus.MustNewConstMetric(journalRestartsDesc, prometheus.CounterValue, float64(restarts), j.cfg.Name)
	ch <- prometheus.MustNewConstMetric(journalCursorResetsDesc, prometheus.CounterValue, float64(j.resets.Load()), j.cfg.Name)
	return nil
}

// Evidence implements evidence.Provider.
func (j *Journal) Evidence() []evidence.Section { return j.pipe.evidence("journal") }

// Run keeps journalctl running until ctx is cancelled, restarting it with
// capped exponential backoff, and saves the cursor every
// CheckpointInterval and on return.
func (j *Journal) Run(ctx context.Context) {
	j.warm.begin(j.opts.Now())
	j.saved.load(&j.st)
	first := j.st.Since.IsZero()
	if first {
		j.st.Since = j.opts.Now()
		j.checkpoint(true)
	}

	saveCtx, stopSaving := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(CheckpointInterval)
		defer t.Stop()
		for {
			select {
			case <-saveCtx.Done():
				return
			case <-t.C:
				j.checkpoint(false)
			}
		}
	}()
	defer func() {
		stopSaving()
		wg.Wait()
		j.checkpoint(false)
		j.opts.Logger.Info("Journal source stopped", "lines", j.pipe.stats.lines.Load())
	}()

	backoff := restartBackoff(j.minBO, j.maxBO)
	for ctx.Err() == nil {
		started := time.Now()
		stderr, err := j.runOnce(ctx, first)
		first = false
		if ctx.Err() != nil {
			return
		}
		if strings.Contains(stderr, "cursor") && j.cursor() != "" {
			j.resets.Add(1)
			j.opts.Logger.Warn("journalctl rejected the saved cursor; continuing from the journal's tail", "stderr", stderr)
			j.mu.Lock()
			j.st.Cursor = ""
			j.st.Since = time.Time{} // tail, not a time: the journal may have been replaced
			j.mu.Unlock()
			j.pipe.stats.readErrors.Add(1)
			continue
		}
		j.pipe.stats.readErrors.Add(1)
		if time.Since(started) >= journalHealthyRun {
			backoff.Reset()
		}
		wait := backoff.NextBackOff()
		j.opts.Logger.Warn("journalctl exited; restarting", "err", err, "stderr", stderr, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (j *Journal) cursor() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.st.Cursor
}

// args builds journalctl's command line.
func (j *Journal) args(first bool) []string {
	a := []string{"--output=json", "--follow", "--no-pager", "--all", "--quiet"}
	if j.cfg.Directory != "" {
		a = append(a, "--directory="+j.cfg.Directory)
	}
	j.mu.Lock()
	st := j.st
	j.mu.Unlock()
	switch {
	case st.Cursor != "":
		// Without --no-tail, journalctl --follow shows only the first 10
		// entries after the cursor, then waits for the next write to the
		// journal before it shows the rest: a backlog stalls on a quiet
		// journal.
		a = append(a, "--no-tail", "--after-cursor="+st.Cursor)
		// journalctl --follow reading the local journal skips every entry
		// already written after a cursor of another boot, of either boot
		// (systemd 252; a reboot while the agent was down). --merge, which
		// reads the journal without that restriction, shows them. Only
		// until an entry of this boot is read: --merge also takes remote
		// journals in.
		if j.cfg.Directory == "" && cursorBoot(st.Cursor) != "" && cursorBoot(st.Cursor) != j.bootID() {
			a = append(a, "--merge")
		}
	case first && j.cfg.StartAt == "beginning":
		a = append(a, "--no-tail")
	case !first && !st.Since.IsZero():
		// Restarted before reading any entry: nothing since the first
		// start is lost.
		us := st.Since.UnixMicro()
		a = append(a, "--no-tail", fmt.Sprintf("--since=@%d.%06d", us/1e6, us%1e6))
	default:
		a = append(a, "--lines=0")
	}
	for _, u := range j.cfg.Units {
		a = append(a, "--unit="+u)
	}
	if j.cfg.Priority != "" {
		a = append(a, "--priority="+j.cfg.Priority)
	}
	return append(a, j.cfg.Matches...)
}

// cursorBoot returns the boot ID of a journal cursor (its "b=" field).
func cursorBoot(cursor string) string {
	for f := range strings.SplitSeq(cursor, ";") {
		if b, ok := strings.CutPrefix(f, "b="); ok {
			return b
		}
	}
	return ""
}

// bootID returns the current boot ID as cursors write it (no dashes), or
// "" when it cannot be read.
func (j *Journal) bootID() string {
	b, err := os.ReadFile(j.bootIDFile)
	if err != nil {
		return ""
	}
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
}

// runOnce runs journalctl until it exits or ctx is cancelled, and returns
// the end of its stderr. journalctl is always waited for, so that it never
// lingers as a zombie.
func (j *Journal) runOnce(ctx context.Context, first bool) (string, error) {
	cmd := exec.CommandContext(ctx, j.cfg.Journalctl, j.args(first)...)
	// On shutdown ask journalctl to stop, and read what it already wrote
	// so that the saved cursor covers every handled entry.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	stderr := &tailBuffer{max: 2048}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w (install systemd's journalctl or set journal[].journalctl)", j.cfg.Journalctl, err)
	}
	j.starts.Add(1)
	j.lastActivity.Store(j.opts.Now().UnixNano())
	j.up.Store(true)
	defer j.up.Store(false)
	j.read(out)
	err = cmd.Wait()
	return strings.TrimSpace(stderr.String()), err
}

// journalEntry holds the fields the source uses. MESSAGE is a string, or
// an array of bytes when it is not valid UTF-8, or null when too large.
type journalEntry struct {
	Cursor   string          `json:"__CURSOR"`
	Realtime string          `json:"__REALTIME_TIMESTAMP"`
	Message  json.RawMessage `json:"MESSAGE"`
}

func (j *Journal) read(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	// JSON escaping can grow a message several times; entries longer
	// than this are skipped (and counted as cut) rather than buffered.
	limit := 6*j.cfg.MaxLineBytes + 64<<10
	var line, msg []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) <= limit {
			line = append(line, chunk...)
		} else {
			line = append(line[:0], "!"...) // marks an oversized entry
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(bytes.TrimSpace(line)) > 0 {
			msg = j.entry(line, msg[:0])
		}
		line = line[:0]
		if err != nil {
			return
		}
	}
}

// entry handles one JSON line; msg is a reusable buffer.
func (j *Journal) entry(line, msg []byte) []byte {
	now := j.opts.Now()
	j.lastActivity.Store(now.UnixNano())
	if line[0] == '!' {
		j.pipe.count(nil, true, now)
		return msg
	}
	var e journalEntry
	if err := json.Unmarshal(line, &e); err != nil {
		j.opts.Logger.Warn("journalctl wrote a line that is not JSON; skipping it", "err", err)
		j.pipe.stats.readErrors.Add(1)
		return msg
	}
	ts := now
	if us, err := strconv.ParseInt(e.Realtime, 10, 64); err == nil {
		ts = time.UnixMicro(us)
	}
	switch {
	case len(e.Message) > 0 && e.Message[0] == '"':
		var s string
		if json.Unmarshal(e.Message, &s) == nil {
			msg = append(msg, s...)
		}
	case len(e.Message) > 0 && e.Message[0] == '[':
		var bs []byte
		var ints []int
		if json.Unmarshal(e.Message, &ints) == nil {
			for _, b := range ints {
				bs = append(bs, byte(b))
			}
		}
		msg = append(msg, bs...)
	}
	cut := len(msg) > j.cfg.MaxLineBytes
	if cut {
		msg = msg[:j.cfg.MaxLineBytes]
	}
	// A multi-line message counts as one line: it is one journal entry.
	j.pipe.process(msg, cut, ts)
	if e.Cursor != "" {
		j.mu.Lock()
		j.st.Cursor = e.Cursor
		j.mu.Unlock()
	}
	return msg
}

// checkpoint saves the cursor when it moved (force: whatever it is).
func (j *Journal) checkpoint(force bool) {
	j.mu.Lock()
	st := j.st
	j.mu.Unlock()
	j.saved.save(st, force)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

var _ evidence.Provider = (*Journal)(nil)
