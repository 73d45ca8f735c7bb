package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// recordPromtool names a promtool binary whose output on the cases below
// becomes the goldens. The goldens in testdata/promtool-golden were
// recorded with promtool 3.16.0, the Prometheus version go.mod pins (see
// the README there); the tests compare the agent with them.
var recordPromtool = flag.String("promtool", "", "record testdata/promtool-golden with this promtool binary")

// promtoolCase is one promtool invocation on the patched upstream files
// (run in their promtool/ directory) and the agent's deliberate
// differences from promtool's output, as replacements of promtool's text.
type promtoolCase struct {
	name string
	args []string
	// fix lists old, new pairs: where the agent says better than
	// promtool 3.16, and why, beside the case.
	fix []string
}

var junitTimestamp = regexp.MustCompile(`timestamp="[^"]*"`)

func promtoolCases() []promtoolCase {
	cases := []promtoolCase{
		{name: "test-failing", args: []string{"test", "rules", "failing.yml"}},
		{name: "test-bad-input-series", args: []string{"test", "rules", "bad-input-series.yml"}},
		{name: "test-bad-promql", args: []string{"test", "rules", "bad-promql.yml"}},
		{name: "test-bad-rules-syntax", args: []string{"test", "rules", "bad-rules-syntax-test.yml"}},
		{name: "test-bad-rules-error", args: []string{"test", "rules", "bad-rules-error-test.yml"}},
		{name: "test-experimental-functions", args: []string{"test", "rules", "experimental-functions-test.yml"}},
		{name: "test-long-period", args: []string{"test", "rules", "long-period.yml"}},
		{name: "test-start-time", args: []string{"test", "rules", "start-time-test.yml"}},
		{name: "test-at-modifier", args: []string{"test", "rules", "at-modifier-test.yml", "negative-offset-test.yml", "no-test-group-interval.yml"}},
		{name: "test-run-all", args: []string{"test", "rules", "rules_run.yml"}},
		{name: "test-run-correct", args: []string{"test", "rules", "--run", "correct", "rules_run.yml"}},
		{name: "test-run-after-file", args: []string{"test", "rules", "rules_run.yml", "--run=wrong"}},
		{name: "test-run-twice", args: []string{"test", "rules", "--run", "correct", "--run", "wrong", "rules_run.yml"}},
		{name: "test-extrafields", args: []string{"test", "rules", "rules_run_extrafields.yml"}},
		{name: "test-extrafields-ignored", args: []string{"test", "rules", "--ignore-unknown-fields", "rules_run_extrafields.yml"}},
		{name: "test-no-fuzzy", args: []string{"test", "rules", "rules_run_no_fuzzy.yml"}},
		{name: "test-fuzzy-correct", args: []string{"test", "rules", "--run", "correct", "rules_run_fuzzy.yml"}},
		{name: "test-fuzzy-wrong", args: []string{"test", "rules", "--run", "wrong", "rules_run_fuzzy.yml"}},
		{name: "test-diff", args: []string{"test", "rules", "--diff", "failing.yml"}},
		{name: "test-junit", args: []string{"test", "--junit", "report.xml", "rules", "failing.yml", "rules_run.yml", "bad-rules-syntax-test.yml", "start-time-test.yml"}},
		{name: "test-junit-after", args: []string{"test", "rules", "rules_run.yml", "--junit=report.xml"}},
		{name: "test-missing-file", args: []string{"test", "rules", "nonexistent.yml"},
			// The program's name.
			fix: []string{"promtool: error:", "tokpulse-agent test: error:"}},
		{name: "check-rules", args: []string{"check", "rules", "rules.yml"}},
		{name: "check-rules-bad", args: []string{"check", "rules", "rules-bad.yml"},
			// rulefmt has no position for template errors; the rule's.
			fix: []string{`rules-bad.yml: group "alerts"`, `rules-bad.yml: 6:9: group "alerts"`}},
		{name: "check-rules-duplicates", args: []string{"check", "rules", "rules_duplicates.yml"}},
		{name: "check-rules-duplicates-none", args: []string{"check", "rules", "--lint=none", "rules_duplicates.yml"}},
		{name: "check-rules-lint", args: []string{"check", "rules", "prometheus-rules.lint.yml"}},
		{name: "check-rules-lint-fatal", args: []string{"check", "rules", "--lint-fatal", "prometheus-rules.lint.yml"}},
		{name: "check-rules-features", args: []string{"check", "rules", "features.yml"}},
		{name: "check-rules-several", args: []string{"check", "rules", "rules.yml", "rules_duplicates.yml", "rules-bad.yml"},
			fix: []string{`rules-bad.yml: group "alerts"`, `rules-bad.yml: 6:9: group "alerts"`}},
	}
	// rulefmt's own fixtures. promtool 3.16 reads positions with a YAML
	// library that leaves some empty ("0:0:"), or has none; the agent
	// names the group's or the rule's line and column instead.
	fixes := map[string][]string{
		"duplicate_grp.bad.yaml":      {"0:0: groupname", "3:5: groupname"},
		"no_rec_alert.bad.yaml":       {"0:0: 0:0: group", "4:9: group"},
		"noexpr.bad.yaml":             {"0:0: group", "4:9: group"},
		"invalid_label_name.bad.yaml": {`.yaml: group "yolo"`, `.yaml: 4:9: group "yolo"`},
	}
	for _, f := range []string{
		"bad_expr.bad.yaml", "bad_field.bad.yaml", "duplicate_grp.bad.yaml", "invalid_label_name.bad.yaml",
		"invalid_record_name.bad.yaml", "legacy_validation_annotation.bad.yaml", "legacy_validation_annotation.good.yaml",
		"no_rec_alert.bad.yaml", "noexpr.bad.yaml", "record_and_alert.bad.yaml", "record_and_for.bad.yaml",
		"record_and_keep_firing_for.bad.yaml", "test.yaml", "test_aliases.yaml", "utf-8_annotation.good.yaml", "utf-8_lname.good.yaml",
	} {
		cases = append(cases, promtoolCase{
			name: "check-rulefmt-" + strings.TrimSuffix(f, ".yaml"),
			args: []string{"check", "rules", "../rulefmt/" + f},
			fix:  fixes[f],
		})
	}
	return cases
}

// TestPromtoolGolden runs promtool's own test files through `test rules`
// and `check rules` and compares exit code, stdout, stderr and the JUnit
// report with promtool 3.16's, byte for byte but for the differences each
// case names. It proves the drop-in claim: a CI job that ran promtool
// sees the same results from the agent.
func TestPromtoolGolden(t *testing.T) {
	dir := testutil.PatchedCopy(t, "../../rules/promtest/testdata/upstream", "../../rules/promtest/testdata/upstream/severity.patch")
	work := filepath.Join(dir, "promtool")
	golden, _ := filepath.Abs("testdata/promtool-golden")
	t.Chdir(work)
	for _, tc := range promtoolCases() {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove("report.xml")
			if *recordPromtool != "" {
				record(t, golden, tc)
				return
			}
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			read := func(ext string) string {
				b, err := os.ReadFile(filepath.Join(golden, tc.name+ext))
				if err != nil {
					t.Fatalf("%v (record the goldens with -promtool)", err)
				}
				return string(b)
			}
			wantOut, wantErr := read(".stdout"), read(".stderr")
			for i := 0; i+1 < len(tc.fix); i += 2 {
				if !strings.Contains(wantOut+wantErr, tc.fix[i]) {
					t.Fatalf("promtool's output lacks %q: the difference is gone; drop it from the case", tc.fix[i])
				}
				wantOut = strings.ReplaceAll(wantOut, tc.fix[i], tc.fix[i+1])
				wantErr = strings.ReplaceAll(wantErr, tc.fix[i], tc.fix[i+1])
			}
			if wantCode, _ := strconv.Atoi(strings.TrimSpace(read(".code"))); code != wantCode {
				t.Errorf("exit %d, promtool's %d", code, wantCode)
			}
			if got := out.String(); got != wantOut {
				t.Errorf("stdout:\n%s\npromtool's:\n%s", got, wantOut)
			}
			if got := errb.String(); got != wantErr {
				t.Errorf("stderr:\n%s\npromtool's:\n%s", got, wantErr)
			}
			report, err := os.ReadFile("report.xml")
			wantReport, werr := os.ReadFile(filepath.Join(golden, tc.name+".junit.xml"))
			switch {
			case errors.Is(werr, os.ErrNotExist) && err == nil:
				t.Errorf("wrote report.xml; promtool wrote none")
			case werr == nil && err != nil:
				t.Errorf("no report.xml: %v", err)
			case werr == nil && junitTimestamp.ReplaceAllString(string(report), `timestamp=""`) != string(wantReport):
				t.Errorf("report.xml:\n%s\npromtool's:\n%s", report, wantReport)
			}
		})
	}
}

// record runs promtool on the case and writes its output as the golden.
func record(t *testing.T, golden string, tc promtoolCase) {
	cmd := exec.Command(*recordPromtool, tc.args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	write := func(ext string, data []byte) {
		if err := os.WriteFile(filepath.Join(golden, tc.name+ext), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(".code", []byte(strconv.Itoa(code)+"\n"))
	write(".stdout", out.Bytes())
	write(".stderr", errb.Bytes())
	if report, err := os.ReadFile("report.xml"); err == nil {
		write(".junit.xml", junitTimestamp.ReplaceAll(report, []byte(`timestamp=""`)))
	}
}

// TestPromtoolFlags covers what the goldens do not: promtool feature
// flags the agent's daemon lacks are refused, not silently accepted, and
// --help and usage errors exit as promtool's do.
func TestPromtoolFlags(t *testing.T) {
	dir := testutil.PatchedCopy(t, "../../rules/promtest/testdata/upstream", "../../rules/promtest/testdata/upstream/severity.patch")
	exp := filepath.Join(dir, "promtool", "experimental-functions-test.yml")
	rulesFile := filepath.Join(dir, "promtool", "rules.yml")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"experimental functions refused", []string{"test", "rules", "--enable-feature=promql-experimental-functions", exp}, 1,
			"--enable-feature=promql-experimental-functions: the agent's rule engine does not enable experimental PromQL functions"},
		{"always-on feature accepted", []string{"test", "--enable-feature=promql-duration-expr", "rules", "--run", "default_start_time", filepath.Join(dir, "promtool", "start-time-test.yml")}, 0, "SUCCESS"},
		{"unknown feature warned", []string{"check", "rules", "--enable-feature=nope", rulesFile}, 0, "WARNING: Unknown feature passed to --enable-feature: nope"},
		{"check feature refused", []string{"check", "rules", "--enable-feature=promql-binop-fill-modifiers", rulesFile}, 1, "the agent's rule engine does not enable fill modifiers"},
		{"help", []string{"test", "rules", "--help"}, 0, "--[no-]ignore-unknown-fields"},
		{"check help", []string{"check", "rules", "--help"}, 0, "--[no-]lint-fatal"},
		{"unknown flag", []string{"test", "rules", "--bogus", exp}, 1, "unknown long flag '--bogus', try --help"},
		{"bad --run", []string{"test", "rules", "--run", "(", exp}, 1, "--run: error parsing regexp: missing closing )"},
		{"test without rules", []string{"test"}, 1, `tokpulse-agent test: error: must select a subcommand of "test", try --help`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String()+errb.String(), tc.want) {
				t.Fatalf("output lacks %q:\n%s%s", tc.want, out.String(), errb.String())
			}
		})
	}
}

// TestPromtoolDebianStderr compares, live, with the promtool CI installs
// (Debian's, 2.42 on bookworm): for the files whose failure format has not
// changed since, the failures on stderr and the exit code are the same.
// (2.42's stdout differs: it printed "Unit Testing:  FILE" where 3.16
// prints "Processing test file: FILE"; the goldens cover that.)
func TestPromtoolDebianStderr(t *testing.T) {
	promtool := testutil.Require(t, "promtool")
	dir := testutil.PatchedCopy(t, "../../rules/promtest/testdata/upstream", "../../rules/promtest/testdata/upstream/severity.patch")
	t.Chdir(filepath.Join(dir, "promtool"))
	for _, f := range []string{"failing.yml", "rules_run.yml", "bad-rules-syntax-test.yml"} {
		t.Run(f, func(t *testing.T) {
			cmd := exec.Command(promtool, "test", "rules", f)
			var pout, perr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &pout, &perr
			pcode := 0
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatal(err)
				}
				pcode = ee.ExitCode()
			}
			var out, errb bytes.Buffer
			if code := run([]string{"test", "rules", f}, &out, &errb); code != pcode {
				t.Errorf("exit %d, promtool's %d", code, pcode)
			}
			if errb.String() != perr.String() {
				t.Errorf("stderr:\n%s\npromtool's:\n%s", errb.String(), perr.String())
			}
		})
	}
}
