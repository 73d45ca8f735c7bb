package promtest

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestRunner covers the agent's own fixtures: the shipped pack's tests
// pass, and a failing file reports each failure in promtool's shape, on
// the streams promtool uses.
func TestRunner(t *testing.T) {
	for _, tc := range []struct {
		file       string
		want       int
		wantStdout string
		wantStderr []string
	}{
		{"../../packaging/rules/runbook_test.yml", 0, "Processing test file: ../../packaging/rules/runbook_test.yml\n  SUCCESS\n\n", nil},
		{"../testdata/unittest-pass.yml", 0, "Processing test file: ../testdata/unittest-pass.yml\n  SUCCESS\n\n", nil},
		{"../testdata/unittest-chain.yml", 0, "Processing test file: ../testdata/unittest-chain.yml\n  SUCCESS\n\n", nil},
		{"../testdata/unittest-fail.yml", 1, "Processing test file: ../testdata/unittest-fail.yml\n\n\n\n", []string{
			"  FAILED:\n",
			"    name: expects an alert that never fires,\n    alertname: Down, time: 5m, \n" +
				"        exp:[\n            0:\n              Labels:{alertname=\"Down\", job=\"x\", severity=\"P3\"}\n              Annotations:{}\n            ], \n" +
				"        got:[]\n",
			"    expr: \"job:up:sum\", time: 2m,\n        exp: {__name__=\"job:up:sum\"} 2E+00\n        got: {__name__=\"job:up:sum\"} 1E+00\n",
		}},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := TestRules(Options{Stdout: &out, Stderr: &errb}, tc.file); code != tc.want {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.want, out.String(), errb.String())
			}
			if out.String() != tc.wantStdout {
				t.Errorf("stdout\n%q\nwant\n%q", out.String(), tc.wantStdout)
			}
			if got := errb.String(); got != strings.Join(tc.wantStderr, "") {
				t.Errorf("stderr\n%s\nwant\n%s", got, strings.Join(tc.wantStderr, ""))
			}
		})
	}
}

// TestFuzzyCompare: fuzzy_compare accepts exactly one representable float
// step either way, as promtool's math.Nextafter comparer, and nothing
// without it.
func TestFuzzyCompare(t *testing.T) {
	up, down := math.Nextafter(3, 4), math.Nextafter(3, 2)
	for _, tc := range []struct {
		name  string
		fuzzy bool
		got   float64
		equal bool
	}{
		{"exact", false, 3, true},
		{"one step up, exact compare", false, up, false},
		{"one step up", true, up, true},
		{"one step down", true, down, true},
		{"two steps up", true, math.Nextafter(up, 4), false},
		{"two steps down", true, math.Nextafter(down, 2), false},
		{"NaN is never equal, as in promtool", true, math.NaN(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := groupRun{fuzzy: tc.fuzzy}
			if got := r.floatEqual(3, tc.got); got != tc.equal {
				t.Fatalf("floatEqual(3, %v) = %v, want %v", tc.got, got, tc.equal)
			}
		})
	}
}

// TestStartTimestamp: start_timestamp takes RFC 3339 or Unix seconds;
// samples and eval_time count from it, and eval errors still count from
// 1970 as promtool's do.
func TestStartTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"2024-01-01T00:00:00Z", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"1609459200", time.Unix(1609459200, 0).UTC(), false},
		{"1609459200.5", time.Unix(1609459200, 5e8).UTC(), false},
		{"yesterday", time.Time{}, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseTime(tc.in)
			if (err != nil) != tc.err || !got.Equal(tc.want) {
				t.Fatalf("parseTime(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules.yml"), `groups:
  - name: g
    rules:
      - record: doubled
        expr: x * 2
      - alert: High
        expr: x > 1
        for: 2m
        labels: {severity: P3}
        annotations: {at: "{{ $value }}"}
`)
	f := writeFile(t, filepath.Join(dir, "test.yml"), `rule_files: [rules.yml]
tests:
  - start_timestamp: "2024-01-01T00:00:00Z"
    input_series:
      - series: x
        values: 1 2 3 4
    promql_expr_test:
      - expr: timestamp(doubled)
        eval_time: 3m
        exp_samples: [{value: 1704067380}]
      - expr: doubled
        eval_time: 1m
        exp_samples: [{labels: doubled, value: 4}]
    alert_rule_test:
      - eval_time: 2m
        alertname: High
        exp_alerts: []
      - eval_time: 3m
        alertname: High
        exp_alerts: [{exp_labels: {severity: P3}, exp_annotations: {at: "4"}}]
`)
	var out, errb bytes.Buffer
	if code := TestRules(Options{Stdout: &out, Stderr: &errb}, f); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// TestRunFilter: --run keeps the groups whose name matches any of the
// expressions; an unnamed group has the name "" for that purpose.
func TestRunFilter(t *testing.T) {
	f := writeFile(t, filepath.Join(t.TempDir(), "t.yml"), `tests:
  - name: alpha
    input_series: [{series: x, values: "1"}]
    promql_expr_test: [{expr: x, exp_samples: [{labels: x, value: 2}]}]
  - name: beta
    input_series: [{series: x, values: "1"}]
    promql_expr_test: [{expr: x, exp_samples: [{labels: x, value: 1}]}]
  - input_series: [{series: x, values: "1"}]
    promql_expr_test: [{expr: x, exp_samples: [{labels: x, value: 3}]}]
`)
	for _, tc := range []struct {
		run  []string
		want int
	}{
		{nil, 1}, {[]string{"beta"}, 0}, {[]string{"^b"}, 0}, {[]string{"a$"}, 1}, {[]string{"^$"}, 1}, {[]string{"zzz"}, 0},
	} {
		var out, errb bytes.Buffer
		if code := TestRules(Options{Stdout: &out, Stderr: &errb, Run: tc.run}, f); code != tc.want {
			t.Errorf("--run %q: exit %d, want %d\n%s", tc.run, code, tc.want, errb.String())
		}
	}
}

// TestSeverityRequirementNamed: a rule file without severities fails in
// test rules too, and the message says the requirement is the agent's.
func TestSeverityRequirementNamed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "r.yml"), "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: vector(1)\n")
	f := writeFile(t, filepath.Join(dir, "t.yml"), "rule_files: [r.yml]\ntests:\n  - {}\n")
	var out, errb bytes.Buffer
	if code := TestRules(Options{Stdout: &out, Stderr: &errb}, f); code != 1 {
		t.Fatalf("exit %d", code)
	}
	want := filepath.Join(dir, "r.yml") + `: 4:9: group "g", rule 1, "A": tokpulse-agent requires severity P1–P4 on alerting rules (Prometheus does not): the label "severity" is missing`
	if !strings.Contains(errb.String(), want) {
		t.Fatalf("stderr lacks\n%s\n%s", want, errb.String())
	}
}

// TestNativeHistogramRefused: the store keeps floats, so a native
// histogram in input_series is refused with the reason and the way out,
// not silently dropped or mis-read as a float.
func TestNativeHistogramRefused(t *testing.T) {
	f := writeFile(t, filepath.Join(t.TempDir(), "t.yml"), `tests:
  - name: h
    input_series:
      - series: req
        values: "{{sum:3 count:2 buckets:[2]}}x2"
    promql_expr_test:
      - expr: req
        exp_samples: [{labels: req, histogram: "{{sum:3 count:2 buckets:[2]}}"}]
`)
	var out, errb bytes.Buffer
	if code := TestRules(Options{Stdout: &out, Stderr: &errb}, f); code != 1 {
		t.Fatalf("exit %d", code)
	}
	want := `    name: h, series "req": native histograms are not supported by tokpulse-agent: its series store keeps float samples, and the agent exports histograms as classic _bucket, _sum and _count series; write them so` + "\n"
	if errb.String() != "  FAILED:\n"+want {
		t.Fatalf("stderr\n%q\nwant\n%q", errb.String(), "  FAILED:\n"+want)
	}
}
