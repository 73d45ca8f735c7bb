package promtest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/util/junitxml"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// upstream returns a copy of Prometheus' own promtool and rulefmt test
// files (testdata/upstream, see PROVENANCE.md there) with severity.patch
// applied: every alerting rule given the runbook class the agent
// requires.
func upstream(t *testing.T) string {
	t.Helper()
	return testutil.PatchedCopy(t, "testdata/upstream", "testdata/upstream/severity.patch")
}

// runFiles runs TestRules on files under dir/promtool and returns the
// exit code and both streams.
func runFiles(t *testing.T, dir string, opts Options, files ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	opts.Stdout, opts.Stderr = &out, &errb
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = filepath.Join(dir, "promtool", f)
	}
	return TestRules(opts, paths...), out.String() + errb.String()
}

// TestUpstreamRulesUnitTest is upstream's TestRulesUnitTest
// (cmd/promtool/unittest_test.go of Prometheus 3.16), case by case, with
// upstream's expected exit code. Upstream calls its Go function with
// engine options the promtool binary cannot set; where that matters the
// case asserts what the binary does, which the agent matches (its engine,
// like the promtool binary's, always has @ and negative offsets, and has
// no experimental functions), and says why.
func TestUpstreamRulesUnitTest(t *testing.T) {
	dir := upstream(t)
	for _, tc := range []struct {
		name     string
		file     string
		upstream int // upstream's expected code
		want     int // the agent's, which is the promtool binary's
		why      string
	}{
		{name: "Long evaluation interval", file: "long-period.yml", upstream: 0, want: 0},
		{name: "Bad input series", file: "bad-input-series.yml", upstream: 1, want: 1},
		{name: "Bad PromQL", file: "bad-promql.yml", upstream: 1, want: 1},
		{name: "Bad rules (syntax error)", file: "bad-rules-syntax-test.yml", upstream: 1, want: 1},
		{name: "Bad rules (error evaluating)", file: "bad-rules-error-test.yml", upstream: 1, want: 1},
		{name: "Simple failing test", file: "failing.yml", upstream: 1, want: 1},
		{name: "Disabled feature (@ modifier)", file: "at-modifier-test.yml", upstream: 1, want: 0,
			why: "the promtool binary enables the @ modifier always (main.go: EnableAtModifier: true), as the agent's engine does"},
		{name: "Enabled feature (@ modifier)", file: "at-modifier-test.yml", upstream: 0, want: 0},
		{name: "Disabled feature (negative offset)", file: "negative-offset-test.yml", upstream: 1, want: 0,
			why: "the promtool binary enables negative offsets always, as the agent's engine does"},
		{name: "Enabled feature (negative offset)", file: "negative-offset-test.yml", upstream: 0, want: 0},
		{name: "Disabled feature (experimental functions)", file: "experimental-functions-test.yml", upstream: 1, want: 1},
		{name: "Enabled feature (experimental functions)", file: "experimental-functions-test.yml", upstream: 0, want: 1,
			why: "promtool needs --enable-feature=promql-experimental-functions for it; the agent's daemon has no such switch, so test rules refuses the flag (cmd/tokpulse-agent tests that) rather than pass a rule the host would reject"},
		{name: "No test group interval", file: "no-test-group-interval.yml", upstream: 0, want: 0},
		{name: "Start time tests", file: "start-time-test.yml", upstream: 0, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runFiles(t, dir, Options{}, tc.file)
			if code != tc.want {
				t.Fatalf("exit %d, want %d (upstream's test expects %d; %s)\n%s", code, tc.want, tc.upstream, tc.why, out)
			}
		})
	}
	// Upstream runs the files of its @-modifier and negative-offset cases
	// once more with a JUnit report and checks its shape: one testsuite
	// per file, each with test cases, failures counted. Upstream's run
	// fails (its engine has both features off); the binary's passes.
	t.Run("Junit xml output", func(t *testing.T) {
		files := []string{"at-modifier-test.yml", "at-modifier-test.yml", "negative-offset-test.yml", "negative-offset-test.yml", "no-test-group-interval.yml", "start-time-test.yml"}
		var report bytes.Buffer
		code, out := runFiles(t, dir, Options{JUnit: &report}, files...)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		var j junitxml.JUnitXML
		if err := xml.Unmarshal(report.Bytes(), &j); err != nil {
			t.Fatalf("JUnit XML does not parse: %v\n%s", err, report.String())
		}
		if len(j.Suites) != len(files) {
			t.Fatalf("%d testsuites, want %d", len(j.Suites), len(files))
		}
		for i, s := range j.Suites {
			if s.Name != filepath.Join(dir, "promtool", files[i]) || len(s.Cases) == 0 || s.FailureCount != 0 || s.TestCount != len(s.Cases) {
				t.Errorf("suite %d: %+v", i, s)
			}
		}
	})
}

// TestUpstreamRulesUnitTestRun is upstream's TestRulesUnitTestRun: --run,
// --ignore-unknown-fields and fuzzy_compare, each with upstream's
// expected code.
func TestUpstreamRulesUnitTestRun(t *testing.T) {
	dir := upstream(t)
	for _, tc := range []struct {
		name   string
		run    []string
		file   string
		ignore bool
		want   int
	}{
		{name: "Test all without run arg", file: "rules_run.yml", want: 1},
		{name: "Test all with run arg", run: []string{"correct", "wrong"}, file: "rules_run.yml", want: 1},
		{name: "Test correct", run: []string{"correct"}, file: "rules_run.yml", want: 0},
		{name: "Test wrong", run: []string{"wrong"}, file: "rules_run.yml", want: 1},
		{name: "Test all with extra fields", file: "rules_run_extrafields.yml", ignore: true, want: 0},
		// Not upstream's: the same file without the flag fails, or the
		// flag above would prove nothing.
		{name: "Test all with extra fields, flag not given", file: "rules_run_extrafields.yml", want: 1},
		{name: "Test precise floating point comparison expected failure", file: "rules_run_no_fuzzy.yml", want: 1},
		{name: "Test fuzzy floating point comparison correct match", run: []string{"correct"}, file: "rules_run_fuzzy.yml", want: 0},
		{name: "Test fuzzy floating point comparison wrong match", run: []string{"wrong"}, file: "rules_run_fuzzy.yml", want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runFiles(t, dir, Options{Run: tc.run, IgnoreUnknownFields: tc.ignore}, tc.file)
			if code != tc.want {
				t.Fatalf("exit %d, want %d\n%s", code, tc.want, out)
			}
		})
	}
}

// TestUpstreamCheckRules is upstream's TestCheckRules and
// TestCheckRulesWithRuleFiles (cmd/promtool/main_test.go) plus every good
// and bad file of rulefmt's own tests: the exit codes of `promtool check
// rules` on each.
func TestUpstreamCheckRules(t *testing.T) {
	dir := upstream(t)
	rulefmtFiles, _ := filepath.Glob(filepath.Join(dir, "rulefmt", "*.yaml"))
	if len(rulefmtFiles) != 16 {
		t.Fatalf("%d rulefmt fixtures, want 16", len(rulefmtFiles))
	}
	type tcase struct {
		name      string
		file      string
		lintFatal bool
		want      int
	}
	cases := []tcase{
		{name: "rules-good", file: "promtool/rules.yml", want: ExitSuccess},
		{name: "rules-bad", file: "promtool/rules-bad.yml", want: ExitFailure},
		{name: "rules-lint-fatal", file: "promtool/prometheus-rules.lint.yml", lintFatal: true, want: ExitLint},
		{name: "rules-lint", file: "promtool/prometheus-rules.lint.yml", want: ExitSuccess},
		{name: "duplicates", file: "promtool/rules_duplicates.yml", want: ExitSuccess},
		{name: "duplicates-lint-fatal", file: "promtool/rules_duplicates.yml", lintFatal: true, want: ExitLint},
	}
	for _, f := range rulefmtFiles {
		// rulefmt's tests call a file bad that fails under one of the
		// name validation schemes; promtool checks with UTF-8 names, under
		// which legacy_validation_annotation.bad.yaml is valid.
		want := ExitSuccess
		if strings.HasSuffix(f, ".bad.yaml") && !strings.HasSuffix(f, "legacy_validation_annotation.bad.yaml") {
			want = ExitFailure
		}
		cases = append(cases, tcase{name: filepath.Base(f), file: strings.TrimPrefix(f, dir+"/"), want: want})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := CheckRules(CheckOptions{Stdout: &out, Stderr: &errb, Lint: "duplicate-rules", LintFatal: tc.lintFatal}, filepath.Join(dir, tc.file))
			if code != tc.want {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.want, out.String(), errb.String())
			}
		})
	}
	t.Run("standard input", func(t *testing.T) {
		for _, tc := range []struct {
			file string
			want int
		}{{"promtool/rules.yml", ExitSuccess}, {"promtool/rules-bad.yml", ExitFailure}} {
			data := readFile(t, filepath.Join(dir, tc.file))
			var out, errb bytes.Buffer
			code := CheckRules(CheckOptions{Stdin: bytes.NewReader(data), Stdout: &out, Stderr: &errb, Lint: "duplicate-rules"})
			if code != tc.want || !strings.HasPrefix(out.String(), "Checking standard input\n") {
				t.Fatalf("%s: exit %d, want %d\n%s%s", tc.file, code, tc.want, out.String(), errb.String())
			}
		}
	})
}

// TestUpstreamUnittestWithAlertsSeries runs upstream's unittest.yml, whose
// promql_expr_test reads ALERTS (count(ALERTS) by (alertname,
// alertstate)) and ALERTS_FOR_STATE, which the engine writes as Prometheus
// does. The agent refuses native histograms (docs/rules.md), and the file's
// first group mixes them with the ALERTS test; a mechanical edit drops the
// native-histogram input series (values in {{...}}) and the tests that
// expect histograms, and the rest must pass, as upstream's
// TestRulesUnitTest expects of the whole file.
func TestUpstreamUnittestWithAlertsSeries(t *testing.T) {
	dir := upstream(t)
	path := filepath.Join(dir, "promtool", "unittest.yml")
	var doc map[string]any
	if err := yaml.Unmarshal(readFile(t, path), &doc); err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for _, g := range doc["tests"].([]any) {
		g := g.(map[string]any)
		if in, ok := g["input_series"].([]any); ok {
			g["input_series"] = slices.DeleteFunc(in, func(x any) bool {
				native := strings.Contains(fmt.Sprint(x.(map[string]any)["values"]), "{{")
				dropped += map[bool]int{true: 1}[native]
				return native
			})
		}
		if ex, ok := g["promql_expr_test"].([]any); ok {
			g["promql_expr_test"] = slices.DeleteFunc(ex, func(x any) bool {
				return strings.Contains(fmt.Sprint(x), "histogram:")
			})
		}
	}
	if dropped != 3 {
		t.Fatalf("dropped %d native-histogram series, want upstream's 3: the file changed", dropped)
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "promtool", "unittest-float.yml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	code, got := runFiles(t, dir, Options{Now: func() time.Time { return time.Unix(0, 0) }}, "unittest-float.yml")
	if code != 0 || !strings.Contains(string(out), "count(ALERTS) by (alertname, alertstate)") {
		t.Fatalf("exit %d, want 0 (upstream's expectation):\n%s", code, got)
	}
}
