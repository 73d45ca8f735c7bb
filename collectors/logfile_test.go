package collectors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// fixedNow is the clock of golden tests.
var fixedNow = time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)

// collectorAdapter registers a Collector on its own.
// collectorAdapter registers a Collector; with want, a Selective one is
// gathered as the rules' gather does.
type collectorAdapter struct {
	c    Collector
	want Want
}

func (a collectorAdapter) Describe(chan<- *prometheus.Desc) {}
func (a collectorAdapter) Collect(ch chan<- prometheus.Metric) {
	if sel, ok := a.c.(Selective); ok && a.want != nil {
		_ = sel.UpdateWanted(context.Background(), ch, a.want)
		return
	}
	_ = a.c.Update(context.Background(), ch)
}

// exposition renders what c exports in the text format, sorted.
func exposition(t *testing.T, c Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectorAdapter{c: c})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// readAll follows a LogFile's files once, as one poll of Run.
func readAll(t *testing.T, l *LogFile) {
	t.Helper()
	l.now = l.opts.Now()
	l.tail.Start(nil, false, time.Time{})
	for l.tail.Poll(context.Background()); l.tail.More(); l.tail.Poll(context.Background()) {
	}
	l.flushEvent()
	l.pipe.flush()
}

func compareGolden(t *testing.T, file, got string) {
	t.Helper()
	golden.Compare(t, file, got, "go test ./collectors -run Golden")
}

// TestLogGolden reads each testdata/logs/NAME.log with the source declared
// in NAME.yml and compares the metrics with NAME.prom and the evidence with
// NAME.evidence.json.
func TestLogGolden(t *testing.T) {
	ymls, _ := filepath.Glob("testdata/logs/*.yml")
	if len(ymls) == 0 {
		t.Fatal("no golden cases under testdata/logs")
	}
	for _, yml := range ymls {
		base := strings.TrimSuffix(yml, ".yml")
		t.Run(filepath.Base(base), func(t *testing.T) {
			cfg := loadTestLogConfig(t, yml)
			lc := cfg.Logs[0]
			abs, _ := filepath.Abs(base + ".log")
			lc.Paths = []string{abs}
			l := NewLogFile(lc, Options{Now: func() time.Time { return fixedNow }})
			readAll(t, l)
			compareGolden(t, base+".prom", exposition(t, l))
			ev, err := json.MarshalIndent(l.Evidence(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, base+".evidence.json", string(ev)+"\n")
		})
	}
}

// TestAccessLogCounts checks the access-log metrics against the ground
// truth the generator printed for testdata/access_sample.log.
func TestAccessLogCounts(t *testing.T) {
	cfg := loadTestLogConfig(t, "testdata/access-metrics.yml")
	lc := cfg.Logs[0]
	abs, _ := filepath.Abs("testdata/access_sample.log")
	lc.Paths, lc.StartAt = []string{abs}, "beginning"
	l := NewLogFile(lc, Options{Now: func() time.Time { return fixedNow }})
	readAll(t, l)
	truth, err := os.ReadFile("testdata/access_sample.truth")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	for _, f := range strings.Fields(string(truth)) {
		k, v, ok := strings.Cut(f, "=")
		if ok {
			var n float64
			_, _ = fmtSscan(v, &n)
			want[k] = n
		}
	}
	got := map[string]float64{}
	reqs := 0.0
	for _, s := range l.pipe.metrics[0].order {
		class := s.labels[1][:1] + "xx"
		got[class] += s.value
		reqs += s.value
		if s.labels[1] == "429" {
			got["429"] += s.value
		}
	}
	for _, k := range []string{"2xx", "3xx", "4xx", "5xx", "429"} {
		if got[k] != want[k] {
			t.Errorf("%s: counted %v, generator says %v", k, got[k], want[k])
		}
	}
	if reqs != want["access"] {
		t.Errorf("requests: counted %v, generator says %v", reqs, want["access"])
	}
	if h := l.pipe.metrics[1].order[0]; float64(h.count) != want["access"] {
		t.Errorf("histogram count %d, generator says %v access lines", h.count, want["access"])
	}
	if n := float64(l.pipe.stats.lines.Load()); n != want["lines"] {
		t.Errorf("lines: %v, generator says %v", n, want["lines"])
	}
	if n := float64(l.pipe.patterns[0].matches.Load()); n != want["error_fail_denied"] {
		t.Errorf("error pattern: %v, generator says %v", n, want["error_fail_denied"])
	}
}

// TestEvidenceRedacted checks that no secret of the app fixture reaches the
// evidence.
func TestEvidenceRedacted(t *testing.T) {
	cfg := loadTestLogConfig(t, "testdata/logs/app.yml")
	lc := cfg.Logs[0]
	abs, _ := filepath.Abs("testdata/logs/app.log")
	lc.Paths = []string{abs}
	lc.EvidenceLines = 100
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := NewLogFile(lc, Options{Now: func() time.Time { return fixedNow }, Logger: logger})
	readAll(t, l)
	l.tail.Close()
	ev, _ := json.Marshal(l.Evidence())
	ev = append(ev, logs.Bytes()...)
	for _, secret := range []string{"hunter2", "3f9a2b7c1d0e5f6a", "eyJhbGciOiJIUzI1NiJ9", "AKIA0000SECRET", "10.0.0.7"} {
		if bytes.Contains(ev, []byte(secret)) {
			t.Errorf("evidence holds the secret %q", secret)
		}
	}
	if !bytes.Contains(ev, []byte("[REDACTED]")) {
		t.Error("evidence shows no redaction at all")
	}
}

func fmtSscan(s string, n *float64) (int, error) {
	v, ok := parseNumber([]byte(s))
	*n = v
	if !ok {
		return 0, os.ErrInvalid
	}
	return 1, nil
}

// TestLinearMatchesRegexp checks the fast matcher against Go's regexp on
// every line of the fixtures, including invalid UTF-8.
func TestLinearMatchesRegexp(t *testing.T) {
	exprs := []string{
		`^\S+ \S+ \S+ \[[^\]]+\] "[^"]*" (?P<status>\d{3}) \d+ "[^"]*" "[^"]*" rt_ms=(?P<rt_ms>\d+)$`,
		`^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+) "[^"]*" "[^"]*" rt_ms=(?P<rt>\d+)$`,
		`^(?P<ts>\S+) (?P<level>[A-Z]+) +(?P<svc>\S+) `,
		`^seq=(?P<n>\d{9}) `,
		`^[^ ]* (?P<x>.*)$`,
	}
	var lines [][]byte
	for _, f := range []string{"testdata/access_sample.log", "testdata/logs/app.log", "testdata/logs/bad.log"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, bytes.Split(data, []byte("\n"))...)
	}
	lines = append(lines, []byte("1.2.3.4 - - [x] \"GET /é HTTP/1.1\" 200 5 \"-\" \"ü\" rt_ms=7"), []byte("seq=12345678 short"))
	for _, e := range exprs {
		re := regexp.MustCompile(e)
		lin := compileLinear(re)
		if lin == nil {
			t.Errorf("%s: expected a linear matcher", e)
			continue
		}
		for _, line := range lines {
			want := re.FindSubmatchIndex(line)
			got := lin.match(line, nil)
			if (want == nil) != (got == nil) || want != nil && !equalInts(want, got) {
				t.Errorf("%s on %q: linear %v, regexp %v", e, line, got, want)
			}
		}
	}
	// U+FFFD: regexp matches it against any invalid byte, which a compare
	// of its bytes would not.
	for _, e := range []string{`a|b`, `^\S*\S`, `^[^"]{3}`, `^(?i)abc`, `^.{2}`, `^\d*\d`, `^a\x{FFFD}b`, "^a\uFFFDb"} {
		if compileLinear(regexp.MustCompile(e)) != nil {
			t.Errorf("%s must not compile to a linear matcher", e)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMatcherPrefilter checks that prefiltered patterns agree with Go's
// regexp, for ASCII and non-ASCII lines.
func TestMatcherPrefilter(t *testing.T) {
	lines := []string{"ERROR x", "Failed", "access DENIED", "token", "toKEN", "to\u212aen", "rate limit", "RATE-LIMIT",
		"limit rate", "webhooks", "WebHook", "nothing here", "", "ſome", "erro r", "déniéd denied", "token=x", "ERRor", "x ERROR", "errorerror faIL",
		"a database CONNECTION timeout here", "connect econnrefused", "connect ECONNREFUSED",
		"Q", "qQ", "a_b", "X=1", "x=1", "w00z", "w69z", "W69Z", "aw65z",
		// Literals at every offset modulo 8 (the scan reads words of eight
		// bytes and, without two-byte literals, only pairs at even offsets),
		// and across the end of the last whole word.
		"xERROR", "xxerror", "xxxError", "xxxxerrOR", "1234567webhook", "12345678webhook", "123456789WEBHOOK",
		"1234567890webhoo", "12345678901234login", "123456789012345Login", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa tokeN"}
	patterns := append(DefaultLogPatterns(), LogPattern{Name: "x", Regexp: mustRE(`(?i)database connection (refused|failed|timed? ?out)|connect ECONNREFUSED`)},
		LogPattern{Name: "y", Regexp: mustRE(`token=\S+|ERROR`)}, LogPattern{Name: "z", Regexp: mustRE(`(?i)qq|_|x=1`)},
		LogPattern{Name: "many", Regexp: mustRE(manyLiterals(70))})
	// Each pattern alone, and all in one set (where literals are shared:
	// "ERROR" folded and not folded are different literals).
	all, shared := matcherSet(patterns)
	for i, p := range patterns {
		m := newMatcher(p.Regexp.Regexp)
		if m.lits == nil {
			t.Errorf("%s: no prefilter derived", p.Regexp)
		}
		var alone litSet
		alone.add(m)
		for _, line := range lines {
			want := p.Regexp.MatchString(line)
			found, ok := alone.scan([]byte(line))
			if got := m.match([]byte(line), found, ok); got != want {
				t.Errorf("%s on %q: %v, regexp says %v", p.Regexp, line, got, want)
			}
			found, ok = all.scan([]byte(line))
			if got := shared[i].match([]byte(line), found, ok); got != want {
				t.Errorf("%s on %q among all patterns: %v, regexp says %v", p.Regexp, line, got, want)
			}
		}
	}
}

// manyLiterals is an alternation of n distinct words, more than a litSet
// holds: the words past its capacity must still match (unfiltered).
func manyLiterals(n int) string {
	var words []string
	for i := range n {
		words = append(words, fmt.Sprintf("w%02dz", i))
	}
	return strings.Join(words, "|")
}

func mustRE(s string) yamlx.Regexp { return yamlx.MustRegexp(s) }

// TestLogFileFolderAppears: a source whose folder does not exist polls it
// every absentPoll only, and once the folder and the file appear reads the
// file from its beginning and goes back to its poll interval.
func TestLogFileFolderAppears(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokpulse")
	lc := DefaultLogConfig()
	lc.Name, lc.Paths = "app", []string{filepath.Join(dir, "app.log")}
	lc.PollInterval = yamlx.Duration(20 * time.Millisecond)
	l := NewLogFile(lc, Options{})
	l.absentPoll = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	lines := func() float64 { return collect(t, l)[`tokpulse_log_lines_total{source="app"}`] }

	time.Sleep(100 * time.Millisecond)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.log"), []byte("one\ntwo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the two lines of a file in a folder that appeared", func() bool { return lines() == 2 })
	// Back at the poll interval (and inotify): new lines come quickly.
	f, err := os.OpenFile(filepath.Join(dir, "app.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("three\n"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "a line appended afterwards", func() bool { return lines() == 3 })
}

// TestLogFileScrapeSeesWholeReads: a file source publishes its work a read
// (64 KiB) at a time, so scrapes taken while it reads a 13 MB file see the
// request counter and the duration histogram of the same lines, never more
// requests than lines, and, once they see all of the file's bytes, all of
// its lines, matches and requests.
func TestLogFileScrapeSeesWholeReads(t *testing.T) {
	sample, err := os.ReadFile("testdata/access_sample.log")
	if err != nil {
		t.Fatal(err)
	}
	const copies = 32 // 3,000 lines, 2,617 requests and 88 error lines each
	path := filepath.Join(t.TempDir(), "access.log")
	data := bytes.Repeat(sample, copies)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := loadTestLogConfig(t, "testdata/access-metrics.yml")
	lc := cfg.Logs[0]
	lc.Paths, lc.StartAt, lc.ShedBacklogBytes = []string{path}, "beginning", 0
	l := NewLogFile(lc, Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectorAdapter{c: l})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	deadline := time.Now().Add(30 * time.Second)
	for scrapes := 0; ; scrapes++ {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var lines, readBytes, errLines, requests, durations float64
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch mf.GetName() {
				case "tokpulse_log_lines_total":
					lines = m.GetCounter().GetValue()
				case "tokpulse_log_bytes_total":
					readBytes = m.GetCounter().GetValue()
				case "tokpulse_log_matches_total":
					if labelValue(m.GetLabel(), "pattern") == "error" {
						errLines = m.GetCounter().GetValue()
					}
				case "tokpulse_http_requests_total":
					requests += m.GetCounter().GetValue()
				case "tokpulse_http_request_duration_seconds":
					durations += float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		if requests != durations || requests > lines {
			t.Fatalf("scrape %d: %v requests counted, %v durations observed, %v lines: not the same lines", scrapes, requests, durations, lines)
		}
		if readBytes == float64(len(data)) {
			if lines != copies*3000 || errLines != copies*88 || requests != copies*2617 {
				t.Fatalf("scrape %d saw all %v bytes but %v lines, %v error matches, %v requests; want %d, %d, %d",
					scrapes, readBytes, lines, errLines, requests, copies*3000, copies*88, copies*2617)
			}
			t.Logf("%d scrapes while the file was read", scrapes)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s, %v of %d bytes read", readBytes, len(data))
		}
	}
}

func labelValue(ls []*dto.LabelPair, name string) string {
	for _, l := range ls {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestLogFileShedsWhenBehind: a source far behind its files still counts
// every line and every pattern match, but leaves out the log-derived
// metrics and the evidence of the lines it reads while behind, and counts
// them; once caught up it does all the work again.
func TestLogFileShedsWhenBehind(t *testing.T) {
	sample, err := os.ReadFile("testdata/access_sample.log")
	if err != nil {
		t.Fatal(err)
	}
	const copies = 8 // 3,000 lines, 2,617 requests and 88 error lines each
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, bytes.Repeat(sample, copies), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := loadTestLogConfig(t, "testdata/access-metrics.yml")
	lc := cfg.Logs[0]
	lc.Paths, lc.StartAt = []string{path}, "beginning"
	// Behind by more than one copy of the sample: the first seven are
	// read while shedding, (at least) the last one in full.
	lc.ShedBacklogBytes = int64(len(sample))
	l := NewLogFile(lc, Options{})
	readAll(t, l)

	requests := func() float64 {
		n := 0.0
		for _, s := range l.pipe.metrics[0].order {
			n += s.value
		}
		return n
	}
	m := collect(t, l)
	if got := m[`tokpulse_log_lines_total{source="access"}`]; got != copies*3000 {
		t.Errorf("lines %v, want %d: shedding lost lines", got, copies*3000)
	}
	if got := m[`tokpulse_log_matches_total{pattern="error",source="access"}`]; got != copies*88 {
		t.Errorf("error matches %v, want %d: patterns are never shed", got, copies*88)
	}
	shed := m[`tokpulse_log_lines_shed_total{source="access",work="metrics"}`]
	if shed < (copies-2)*3000 || shed > (copies-1)*3000 {
		t.Errorf("%v lines shed their metrics, want those of the first %d copies (give or take a 64 KiB read)", shed, copies-1)
	}
	if got := requests(); got < 2617 || got > 2*2617 {
		t.Errorf("%v requests counted by the log-derived metric, want about one copy's 2,617", got)
	}
	if m[`tokpulse_log_lines_shed_total{source="access",work="evidence"}`] == 0 {
		t.Error("no matching line was shed from the evidence")
	}

	// Caught up: a new copy is processed in full.
	before, shedBefore := requests(), shed
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(sample); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l.tail.Poll(context.Background())
	m = collect(t, l)
	if got := requests() - before; got != 2617 {
		t.Errorf("after catching up, %v requests counted of the 2,617 appended", got)
	}
	if got := m[`tokpulse_log_lines_shed_total{source="access",work="metrics"}`]; got != shedBefore {
		t.Errorf("shed %v lines after catching up (was %v)", got, shedBefore)
	}
}

func TestUntilMultiple(t *testing.T) {
	base := time.Unix(1_800_000_000, 0) // a multiple of 10 s
	for _, tc := range []struct {
		name string
		now  time.Time
		d    time.Duration
		want time.Duration
	}{
		{"on a multiple: a whole period", base, 10 * time.Second, 10 * time.Second},
		{"just after", base.Add(time.Millisecond), 10 * time.Second, 10*time.Second - time.Millisecond},
		{"just before", base.Add(-time.Millisecond), 10 * time.Second, time.Millisecond},
		{"zero period", base.Add(3 * time.Second), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UntilMultiple(tc.now, tc.d); got != tc.want {
				t.Errorf("UntilMultiple = %v, want %v", got, tc.want)
			}
		})
	}
}

// matcherSet builds the matchers of patterns and their one literal set,
// as a source does.
func matcherSet(patterns []LogPattern) (*litSet, []*matcher) {
	set := &litSet{}
	var ms []*matcher
	for _, p := range patterns {
		m := newMatcher(p.Regexp.Regexp)
		set.add(m)
		ms = append(ms, m)
	}
	return set, ms
}

// TestLogFileUpdateWanted: the rules' gather gets exactly the families it
// wants of those a scrape gets, with the same series.
func TestLogFileUpdateWanted(t *testing.T) {
	cfg := loadTestLogConfig(t, "testdata/access-metrics.yml")
	lc := cfg.Logs[0]
	abs, _ := filepath.Abs("testdata/access_sample.log")
	lc.Paths = []string{abs}
	l := NewLogFile(lc, Options{Now: func() time.Time { return fixedNow }})
	readAll(t, l)
	gather := func(want Want) map[string]int {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(collectorAdapter{l, want})
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, mf := range mfs {
			out[mf.GetName()] = len(mf.GetMetric())
		}
		return out
	}
	all := gather(nil)
	if len(all) < 8 {
		t.Fatalf("a full gather has %d families: %v", len(all), all)
	}
	for _, wanted := range [][]string{
		{"tokpulse_log_matches_total"},
		{"tokpulse_log_files", "tokpulse_log_lines_total"},
		{lc.Metrics[0].Name, "tokpulse_log_metric_dropped_total"},
		{},
	} {
		t.Run(strings.Join(wanted, ","), func(t *testing.T) {
			got := gather(func(name string) bool { return slices.Contains(wanted, name) })
			for name, n := range all {
				switch w := slices.Contains(wanted, name); {
				case w && got[name] != n:
					t.Errorf("%s: %d series, want %d as in a full gather", name, got[name], n)
				case !w && got[name] != 0:
					t.Errorf("%s: gathered, not wanted", name)
				}
			}
		})
	}
}

// TestAbsentWait: a source without its folders waits for a common
// multiple of the absent-folder period, never less than its poll interval.
func TestAbsentWait(t *testing.T) {
	base := time.Unix(1_800_000_000, 0) // a multiple of 10 s
	for _, tc := range []struct {
		name             string
		now              time.Time
		poll, absentPoll time.Duration
		want             time.Duration
	}{
		{"short poll: the next multiple", base.Add(3 * time.Second), time.Second, 10 * time.Second, 7 * time.Second},
		{"next multiple closer than the poll: the one after", base.Add(9 * time.Second), 5 * time.Second, 10 * time.Second, 11 * time.Second},
		{"poll of a minute: a multiple a minute away at least", base.Add(3 * time.Second), time.Minute, 10 * time.Second, 67 * time.Second},
		{"no absent period: the poll", base.Add(3 * time.Second), time.Minute, 0, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := absentWait(tc.now, tc.poll, tc.absentPoll); got != tc.want {
				t.Errorf("absentWait = %v, want %v", got, tc.want)
			}
		})
	}
}
