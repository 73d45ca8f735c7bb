package collectors

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The fast paths of the line pipeline (the literal prefilter with its
// scan, the linear matcher) against Go's regexp, which defines what they
// must answer: the same match, the same submatches, on any line.

// shippedSources are the log and journal sources of the shipped
// configuration (packaging/agent.yaml) with their patterns (the runbook's
// four greps where none are set) and log-derived metrics.
func shippedSources(t testing.TB) map[string][]LogPattern {
	t.Helper()
	data, err := os.ReadFile("../packaging/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Logs    []LogConfig     `yaml:"logs"`
		Journal []JournalConfig `yaml:"journal"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("packaging/agent.yaml: %v", err)
	}
	out := map[string][]LogPattern{}
	add := func(name string, patterns []LogPattern, metrics []LogMetricConfig) {
		if len(patterns) == 0 {
			patterns = DefaultLogPatterns()
		}
		for _, m := range metrics {
			patterns = append(patterns, LogPattern{Name: "metric:" + m.Name, Regexp: m.Regexp})
		}
		out[name] = patterns
	}
	for _, l := range doc.Logs {
		add("log/"+l.Name, l.Patterns, l.Metrics)
	}
	for _, j := range doc.Journal {
		add("journal/"+j.Name, j.Patterns, j.Metrics)
	}
	if len(out) < 3 {
		t.Fatalf("packaging/agent.yaml: %d sources, expected the app, error and access logs and the journal", len(out))
	}
	return out
}

// fixtureLines are the lines of the log fixtures: the access-log sample,
// the app log, and the hostile lines of bad.log.
func fixtureLines(t testing.TB) [][]byte {
	t.Helper()
	var lines [][]byte
	for _, f := range []string{"testdata/access_sample.log", "testdata/logs/app.log", "testdata/logs/bad.log", "testdata/logs/access.log"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, bytes.Split(data, []byte("\n"))...)
	}
	return lines
}

// hostile are strings that a mutation puts into lines: separators of log
// formats, bytes at the edges of the classes (\x01 is in \S, \v is not in
// \s, \x7f and \x80 around ASCII), invalid UTF-8 (alone, truncated, an
// overlong NUL), runes whose case folds to ASCII letters (the Kelvin sign
// folds to k, the long s to s), U+FFFD itself, and the runbook's words in
// odd cases.
var hostile = []string{
	" ", "  ", "\t", "\n", "\r", "\v", "\f", "\x00", "\x01", "\x1f", "\x20", "\x21", "\x7f", "\x80", "\xff", "\xfe",
	"\xc3", "\xc3\x28", "\xe2\x82", "\xf0\x9f\x98", "\xc0\x80", "\xed\xa0\x80", "é", "ü", "\u212a", "\u017f", "\uFFFD", "\U0001F600",
	"\"", "\\\"", "[", "]", "-", "=", ":", "/", "0", "9", "42", "429", "500", "5", "\" 5", "\" 429 ", "rt_ms=", " rt_ms=7",
	"error", "ERROR", "Error", "eRRoR", "fail", "FAIL", "denied", "auth", "AUTH", "login", "token", "toKEN", "to\u212aen",
	"rate", "limit", "rate limit", "RATE-LIMIT", "webhook", "WEBHOOK", "webhooks", "web\u212aook", "database connection refused",
	"connect ECONNREFUSED", "webhook delivery failed", "x=1", "_", "qq",
}

// mutate returns line changed at a few random places: bytes replaced,
// inserted or deleted, hostile strings inserted, the line cut or doubled.
func mutate(r *rand.Rand, line []byte) []byte {
	out := slices.Clone(line)
	for range 1 + r.IntN(3) {
		at := 0
		if len(out) > 0 {
			at = r.IntN(len(out) + 1)
		}
		switch r.IntN(6) {
		case 0: // replace a byte
			if at < len(out) {
				out[at] = byte(r.IntN(256))
			}
		case 1: // delete a few bytes
			out = append(out[:at], out[min(len(out), at+1+r.IntN(3)):]...)
		case 2, 3: // insert a hostile string
			out = slices.Insert(out, at, []byte(hostile[r.IntN(len(hostile))])...)
		case 4: // cut
			out = out[:at]
		case 5: // flip the case of a letter
			if at < len(out) && ('a' <= out[at]|0x20 && out[at]|0x20 <= 'z') {
				out[at] ^= 0x20
			}
		}
	}
	return out
}

// TestShippedExpressionsDifferential runs every source of the shipped
// configuration, as the agent builds it (one literal set per source), and
// one with literals of one to three bytes, over the fixtures and 20,000
// mutations of them: each pattern must count a line exactly when regexp
// matches it, and each linear matcher must find exactly regexp's
// submatches.
func TestShippedExpressionsDifferential(t *testing.T) {
	lines := fixtureLines(t)
	r := rand.New(rand.NewPCG(18, 2026))
	for range 20000 {
		lines = append(lines, mutate(r, lines[r.IntN(len(lines))]))
	}
	sources := shippedSources(t)
	// And a source with literals of every length the scan treats apart:
	// one byte (IndexByte), two (every offset looked up), three (every
	// other offset).
	sources["test/short-literals"] = append(DefaultLogPatterns(),
		LogPattern{Name: "short", Regexp: mustRE(`(?i)qq|_|x=1`)}, LogPattern{Name: "mixed", Regexp: mustRE(`token=\S+|ERROR`)},
		LogPattern{Name: "status", Regexp: mustRE(`" 5\d\d \d+ `)})
	linears := 0
	for name, patterns := range sources {
		t.Run(name, func(t *testing.T) {
			set, ms := matcherSet(patterns)
			var lins []*linear
			for _, p := range patterns {
				lin := compileLinear(p.Regexp.Regexp)
				lins = append(lins, lin)
				if lin != nil {
					linears++
				}
			}
			for _, line := range lines {
				found, ok := set.scan(line)
				for i, p := range patterns {
					if got, want := ms[i].match(line, found, ok), p.Regexp.Regexp.Match(line); got != want {
						t.Fatalf("%s %s on %q: prefiltered match %v, regexp %v", name, p.Regexp, line, got, want)
					}
					if lins[i] == nil {
						continue
					}
					if got, want := lins[i].match(line, nil), p.Regexp.FindSubmatchIndex(line); !slices.Equal(got, want) {
						t.Fatalf("%s %s on %q: linear %v, regexp %v", name, p.Regexp, line, got, want)
					}
				}
			}
		})
	}
	if linears == 0 {
		t.Error("no shipped expression compiled to a linear matcher: the access metrics should")
	}
}

// genExpr builds a random anchored expression of the shapes log formats
// use (and some they do not), with the pieces it is made of, so that lines
// can be made to match it.
type genPiece struct {
	lit   string // a literal, or
	class string // a class, repeated by quant
	quant string
	open  string // "(" or "(?P<name>" before the piece
	close bool   // ")" after it
}

var (
	genLiterals = []string{" ", "\"", " [", "] \"", "\" ", "\" \"", " rt_ms=", "=", ":", "-", "a", "x y", "é", "\uFFFD", "\t", "GET ", "ERROR", " HTTP/1.1\" ", "database connection refused "}
	genClasses  = []string{`\S`, `\d`, `[^"]`, `[^\]]`, `[a-z]`, `[A-Z]`, `[0-9a-f]`, `[0-9]`, `.`, `\w`, `[^ ]`, `\s`, `[^,]`, `[a-zé]`, `[^"\n]`, `[\x00-\x7f]`, `[^\x01]`, `[!-~]`, `\pL`}
	genQuants   = []string{"", "+", "*", "?", "{3}", "{1,3}", "{2,}", "+?", "{0,2}", "{9}"}
)

func genExpr(r *rand.Rand) (string, []genPiece) {
	n := 1 + r.IntN(8)
	var ps []genPiece
	open := 0
	after := "" // the class of a variable run just made
	for i := range n {
		var p genPiece
		switch {
		case after != "" && r.IntN(4) != 0:
			// Mostly what a log format has after a run: a literal the
			// run cannot contain (\S+ then a space, [^"]* then a quote).
			stop := regexp.MustCompile(`^(?:` + after + `)`)
			for p.lit == "" || stop.MatchString(p.lit) && r.IntN(8) != 0 {
				p.lit = genLiterals[r.IntN(len(genLiterals))]
			}
		case r.IntN(3) == 0:
			p.lit = genLiterals[r.IntN(len(genLiterals))]
		default:
			p.class, p.quant = genClasses[r.IntN(len(genClasses))], genQuants[r.IntN(len(genQuants))]
			if strings.HasPrefix(p.class, "[^") || p.class == `\S` || p.class == "." {
				// Mostly the repeats the linear matcher takes for
				// classes of characters that are not all one byte.
				p.quant = []string{"+", "*", "+", "*", "", "?", "{2,}", "+?"}[r.IntN(8)]
			}
		}
		after = ""
		if p.class != "" && p.quant != "" && p.quant != "{3}" && p.quant != "{9}" {
			after = p.class
		}
		if r.IntN(4) == 0 {
			p.open = "("
			if r.IntN(2) == 0 {
				p.open = fmt.Sprintf("(?P<g%d>", i)
			}
			open++
		}
		if open > 0 && r.IntN(2) == 0 {
			p.close = true
			open--
		}
		ps = append(ps, p)
	}
	var b strings.Builder
	b.WriteString("^")
	for _, p := range ps {
		b.WriteString(p.open)
		if p.lit != "" {
			b.WriteString(regexp.QuoteMeta(p.lit))
		} else {
			b.WriteString(p.class + p.quant)
		}
		if p.close {
			b.WriteString(")")
		}
	}
	b.WriteString(strings.Repeat(")", open)) // groups still open end after the last piece
	if r.IntN(2) == 0 {
		b.WriteString("$")
	}
	return b.String(), ps
}

// genPool are the candidate pieces of a class's members: every ASCII
// byte and the hostile non-ASCII ones.
var genPool = func() []string {
	var out []string
	for c := range 128 {
		out = append(out, string(rune(c)))
	}
	return append(out, "é", "\u212a", "\uFFFD", "\xff", "\xc3", "\xe2\x82", "\U0001F600", "\x80")
}()

// genLine makes a line that follows the pieces: members of each class
// (per regexp itself) as many times as the quantifier asks.
func genLine(r *rand.Rand, ps []genPiece, members map[string][]string) []byte {
	var b []byte
	for _, p := range ps {
		if p.lit != "" {
			b = append(b, p.lit...)
			continue
		}
		lo, hi := 1, 1
		switch p.quant {
		case "+", "+?":
			lo, hi = 1, 6
		case "*":
			lo, hi = 0, 6
		case "?":
			lo, hi = 0, 1
		case "{3}":
			lo, hi = 3, 3
		case "{1,3}":
			lo, hi = 1, 3
		case "{2,}":
			lo, hi = 2, 7
		case "{0,2}":
			lo, hi = 0, 2
		case "{9}":
			lo, hi = 9, 9
		}
		ms := members[p.class]
		for range lo + r.IntN(hi-lo+1) {
			b = append(b, ms[r.IntN(len(ms))]...)
		}
	}
	return b
}

// TestLinearDifferential: random expressions of log-format shapes; for
// each that compiles to a linear matcher, lines made to match it and
// mutations of them, plus random hostile lines, must get exactly regexp's
// match and submatches.
func TestLinearDifferential(t *testing.T) {
	members := map[string][]string{}
	for _, c := range genClasses {
		re := regexp.MustCompile(`^(?:` + c + `)$`)
		for _, s := range genPool {
			if re.MatchString(s) {
				members[c] = append(members[c], s)
			}
		}
	}
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 18))
	t.Logf("seed %d", seed)
	var exprs, linears, matched, lines int
	for exprs < 8000 {
		expr, ps := genExpr(r)
		re, err := regexp.Compile(expr)
		if err != nil {
			continue
		}
		exprs++
		lin := compileLinear(re)
		if lin == nil {
			continue
		}
		linears++
		for range 40 {
			line := genLine(r, ps, members)
			switch r.IntN(3) {
			case 0:
				line = mutate(r, line)
			case 1:
				line = append(line, hostile[r.IntN(len(hostile))]...)
			}
			lines++
			want := re.FindSubmatchIndex(line)
			if want != nil {
				matched++
			}
			if got := lin.match(line, nil); !slices.Equal(got, want) {
				t.Fatalf("seed %d: %s on %q: linear %v, regexp %v", seed, expr, line, got, want)
			}
		}
	}
	t.Logf("%d expressions, %d linear; %d lines, %d matching", exprs, linears, lines, matched)
	// The generator must keep exercising the matcher: most of its shapes
	// are linear, and most lines made from them match.
	if linears < exprs/8 || matched < lines/4 {
		t.Errorf("only %d of %d expressions linear, %d of %d lines matching: the test has lost its teeth", linears, exprs, matched, lines)
	}
}

// FuzzShippedExpressions feeds arbitrary lines to every source of the
// shipped configuration: each pattern must count the line exactly when
// regexp matches it, and each linear matcher must find regexp's
// submatches. Seeds: the fixtures and hostile strings. `make fuzz` runs it
// for a while; `make test` runs the seeds.
func FuzzShippedExpressions(f *testing.F) {
	// Every 25th fixture line (about 130): the rest are alike, and a
	// fuzzing run first measures the coverage of every seed.
	for i, l := range fixtureLines(f) {
		if i%25 == 0 {
			f.Add(l)
		}
	}
	for _, s := range hostile {
		f.Add([]byte(s))
		f.Add([]byte(`1.2.3.4 - - [27/Nov/2026:05:00:00 +0000] "GET /` + s + ` HTTP/1.1" 200 12 "-" "` + s + `" rt_ms=3`))
	}
	type source struct {
		set  litSet
		ms   []*matcher
		lins []*linear
		res  []*regexp.Regexp
	}
	var sources []*source
	for _, patterns := range shippedSources(f) {
		s := &source{}
		for _, p := range patterns {
			m := newMatcher(p.Regexp.Regexp)
			s.set.add(m)
			s.ms = append(s.ms, m)
			s.lins = append(s.lins, compileLinear(p.Regexp.Regexp))
			s.res = append(s.res, p.Regexp.Regexp)
		}
		sources = append(sources, s)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, s := range sources {
			found, ok := s.set.scan(line)
			for i, re := range s.res {
				if got, want := s.ms[i].match(line, found, ok), re.Match(line); got != want {
					t.Fatalf("%s on %q: prefiltered match %v, regexp %v", re, line, got, want)
				}
				if s.lins[i] != nil {
					if got, want := s.lins[i].match(line, nil), re.FindSubmatchIndex(line); !slices.Equal(got, want) {
						t.Fatalf("%s on %q: linear %v, regexp %v", re, line, got, want)
					}
				}
			}
		}
	})
}
