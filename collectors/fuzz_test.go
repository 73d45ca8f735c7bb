package collectors

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzLinePipeline feeds arbitrary lines through a source with the default
// patterns and the access-log metrics: nothing may panic, each pattern
// must count the line exactly when Go's regexp matches it (the literal
// prefilter decides most lines alone), and the fast matcher of each metric
// must find exactly what Go's regexp finds. Seeds:
// the access-log sample and hostile lines (binary, invalid UTF-8, huge
// numbers). `make fuzz` runs it for a while; `make test` runs the seeds.
func FuzzLinePipeline(f *testing.F) {
	cfg := loadTestLogConfig(f, "testdata/access-metrics.yml")
	data, err := os.ReadFile("testdata/access_sample.log")
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range bytes.Split(data, []byte("\n"))[:20] {
		f.Add(l)
	}
	for _, s := range []string{
		"", "\x00\xff\xfe", "ERROR token=abc Authorization: Bearer x",
		`1.2.3.4 - - [27/Nov/2026:05:00:00 +0000] "GET / HTTP/1.1" 500 12 "-" "-" rt_ms=99999999999999999999999`,
		`1.2.3.4 - - [27/Nov/2026:05:00:00 +0000] "GET / HTTP/1.1" 200 12 "-" "-" rt_ms=-1`,
		`a b c [x] "" 200 1 "" "" rt_ms=1`, "\xc3\x28 rate limit webhook", "RATE\u212aLIMIT",
	} {
		f.Add([]byte(s))
	}
	p := newLinePipeline("access", DefaultLogPatterns(), cfg.Logs[0].Metrics, 10, Options{}.withDefaults())
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, line []byte) {
		before := make([]uint64, len(p.patterns))
		for i, pt := range p.patterns {
			before[i] = pt.matches.Load()
		}
		p.process(line, false, now)
		for i, pt := range p.patterns {
			got, want := pt.matches.Load()-before[i] == 1, pt.m.re.Match(line)
			if got != want {
				t.Fatalf("pattern %s on %q: counted %v, regexp matches %v", pt.name, line, got, want)
			}
		}
		for _, g := range p.groups {
			if g.lin == nil {
				continue
			}
			want := g.m.re.FindSubmatchIndex(line)
			got := g.lin.match(line, nil)
			if !slices.Equal(got, want) {
				t.Fatalf("fast matcher of %q on %q = %v, regexp = %v", g.m.re, line, got, want)
			}
		}
		_ = p.evidence("log")
	})
}

// FuzzLinearMatcher: for any expression the fast matcher accepts, and any
// line, it must agree with Go's regexp on the match and every submatch.
func FuzzLinearMatcher(f *testing.F) {
	for _, s := range []struct{ re, line string }{
		{`^\S+ \S+ \S+ \[[^\]]+\] "[^"]*" (?P<status>\d{3}) \d+ "[^"]*" "[^"]*" rt_ms=(?P<rt_ms>\d+)$`,
			`1.2.3.4 - - [27/Nov/2026:05:00:00 +0000] "GET / HTTP/1.1" 200 12 "-" "curl" rt_ms=3`},
		{`^(?P<level>[A-Z]+) `, "ERROR x"},
		{`^\S+ (?P<level>[A-Z]+) `, "2026 WARN y"},
		{`^a\d{2,4}b`, "a123b"},
		{`^x=(?P<n>\d+) y=(?P<m>[^ ]*) `, "x=1 y= z"},
		{`^[^"]*"(?P<q>[^"]*)"`, `ab"cd"`},
		{`^\d+$`, "123\n"},
		// Nested, empty and adjacent groups (foldCaptures).
		{`^((a+))b`, "aab"}, {`^()a(b)(c)$`, "abc"}, {`^((\d+) )x(y)?`, "12 xy"}, {`^(a(b(c)))$`, "abc"},
		// Runs found eight bytes at a time: a range (\d{3} is \d\d\d
		// merged), a stop byte, bytes below a bound with \x01 inside
		// \S; a literal U+FFFD against an invalid byte.
		{`^(\d{3})\d* [a-z]+=(?P<v>[0-9]{2,})$`, "123456 abc=4200"}, {`^[^"]*"(\S+) x`, "ab\xff\xc3\"\x01\x01y x"},
		{"^a\uFFFDb", "a\xffb"}, {`^\S+ \S+ \S+ \[`, "\x01\x01\x01\x01\x01\x01\x01\x01\x01 - - ["},
	} {
		f.Add(s.re, []byte(s.line))
	}
	for _, m := range shippedMetricsOf(f) {
		for _, l := range fixtureLines(f)[:50] {
			f.Add(m, l)
		}
	}
	f.Fuzz(func(t *testing.T, expr string, line []byte) {
		if len(expr) > 200 {
			return
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		l := compileLinear(re)
		if l == nil {
			return
		}
		want := re.FindSubmatchIndex(line)
		got := l.match(line, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("fast matcher of %q on %q = %v, regexp = %v", expr, line, got, want)
		}
	})
}

// shippedMetricsOf returns the expressions of the shipped configuration's
// log-derived metrics (the linear matcher's main use).
func shippedMetricsOf(tb testing.TB) []string {
	var out []string
	for _, patterns := range shippedSources(tb) {
		for _, p := range patterns {
			if strings.HasPrefix(p.Name, "metric:") {
				out = append(out, p.Regexp.String())
			}
		}
	}
	return out
}

// FuzzJournalEntry feeds arbitrary lines to the journal source's JSON
// reader (what journalctl --output=json prints): nothing may panic,
// whatever MESSAGE holds (a string, a byte array, null, nothing).
func FuzzJournalEntry(f *testing.F) {
	for _, s := range []string{
		`{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1800000000000000","MESSAGE":"error: webhook failed","_SYSTEMD_UNIT":"tokpulse.service","PRIORITY":"3"}`,
		`{"__CURSOR":"c","MESSAGE":[104,105,0,255]}`,
		`{"MESSAGE":null}`, `{"MESSAGE":12}`, `{}`, `[]`, `!`, `{"MESSAGE":"\ud800"}`,
		`{"__REALTIME_TIMESTAMP":"-99999999999999999999","MESSAGE":"x"}`,
		`{"MESSAGE":[1,2,3,-1,256,"a"]}`, "{\"MESSAGE\":\"" + string(bytes.Repeat([]byte("a"), 70000)) + "\"}",
	} {
		f.Add([]byte(s))
	}
	cfg := DefaultJournalConfig()
	cfg.Name = "fuzz"
	j := NewJournal(cfg, Options{})
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(line) == 0 {
			return // the reader skips blank lines before entry
		}
		_ = j.entry(line, nil)
	})
}
