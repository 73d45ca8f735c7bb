// Package promtest runs rule unit tests in promtool's "test rules" format
// and checks rule files as "promtool check rules" does, so that a team can
// swap promtool for tokpulse-agent in CI without editing anything but the
// binary name: the same file format, flags, exit codes, output streams and
// wording (those of promtool 3.16, whose PromQL engine the agent uses),
// and the same JUnit XML.
//
// The rules are evaluated by the daemon's own loader, series store,
// engine and alert lifecycle (rules.TestHarness), so a test that passes
// here passes on the host; that is also why the agent's own requirement,
// a severity P1–P4 on every alerting rule, applies.
package promtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/util/junitxml"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/safefile"
)

// Exit codes, as promtool's.
const (
	ExitSuccess = 0
	ExitFailure = 1
	// ExitLint is check rules' code for lint findings under --lint-fatal.
	ExitLint = 3
)

// Options configure TestRules; the fields are promtool's flags.
type Options struct {
	// Stdout receives the progress ("Processing test file:", SUCCESS),
	// Stderr the failures, as promtool splits them.
	Stdout, Stderr io.Writer
	// JUnit, when set, receives the JUnit XML report (--junit).
	JUnit io.Writer
	// Run keeps only the test groups whose name matches one of these
	// regular expressions (--run, repeatable).
	Run []string
	// Diff prints a failed alert comparison as a JSON diff (--diff).
	Diff bool
	// Debug reports each group's duration and dumps every series at the
	// end of the group (--debug), on Stderr.
	Debug bool
	// IgnoreUnknownFields accepts keys rulefmt does not know in the rule
	// files (--ignore-unknown-fields); the daemon still refuses them.
	IgnoreUnknownFields bool
	// Now stamps the JUnit suites; time.Now when nil.
	Now func() time.Time
}

// TestRules runs the unit test files and returns the exit code: 0 when
// every test passed, 1 otherwise.
func TestRules(opts Options, files ...string) int {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var run *regexp.Regexp
	if len(opts.Run) > 0 {
		var err error
		if run, err = regexp.Compile(strings.Join(opts.Run, "|")); err != nil {
			fmt.Fprintf(opts.Stderr, "--run: %v\n", err)
			return ExitFailure
		}
	}
	junit := &junitxml.JUnitXML{}
	failed := false
	for _, f := range files {
		fmt.Fprintf(opts.Stdout, "Processing test file: %s\n", f)
		if errs := testFile(f, opts, run, junit.Suite(f)); len(errs) > 0 {
			fmt.Fprintln(opts.Stderr, "  FAILED:")
			for _, e := range errs {
				fmt.Fprintln(opts.Stderr, e.Error())
				fmt.Fprintln(opts.Stdout)
			}
			failed = true
		} else {
			fmt.Fprintln(opts.Stdout, "  SUCCESS")
		}
		fmt.Fprintln(opts.Stdout)
	}
	if opts.JUnit != nil {
		if err := junit.WriteXML(opts.JUnit); err != nil {
			fmt.Fprintf(opts.Stderr, "failed to write JUnit XML: %s\n", err)
		}
	}
	if failed {
		return ExitFailure
	}
	return ExitSuccess
}

// unitTestFile is the test file, as promtool reads it.
type unitTestFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval,omitempty"`
	GroupEvalOrder     []string       `yaml:"group_eval_order"`
	Tests              []testGroup    `yaml:"tests"`
	FuzzyCompare       bool           `yaml:"fuzzy_compare,omitempty"`
}

// testGroup is one group of input series and the tests over them.
type testGroup struct {
	Interval        model.Duration    `yaml:"interval"`
	InputSeries     []series          `yaml:"input_series"`
	AlertRuleTests  []alertTestCase   `yaml:"alert_rule_test,omitempty"`
	PromqlExprTests []promqlTestCase  `yaml:"promql_expr_test,omitempty"`
	ExternalLabels  map[string]string `yaml:"external_labels,omitempty"`
	ExternalURL     string            `yaml:"external_url,omitempty"`
	TestGroupName   string            `yaml:"name,omitempty"`
	StartTimestamp  startTimestamp    `yaml:"start_timestamp,omitempty"`
}

type series struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTestCase struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []expAlert     `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type promqlTestCase struct {
	Expr       string         `yaml:"expr"`
	EvalTime   model.Duration `yaml:"eval_time"`
	ExpSamples []expSample    `yaml:"exp_samples"`
}

type expSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
	// Histogram, when set, is expected instead of Value, in the
	// series notation ("{{schema:1 sum:3 count:2 buckets:[2]}}").
	Histogram string `yaml:"histogram"`
}

// startTimestamp is a test group's start_timestamp: an RFC 3339 time or
// Unix seconds, as promtool accepts it.
type startTimestamp struct{ time.Time }

// UnmarshalYAML implements yaml.Unmarshaler.
func (t *startTimestamp) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	parsed, err := parseTime(s)
	if err != nil {
		return err
	}
	t.Time = parsed
	return nil
}

// parseTime reads Unix seconds (fractions allowed) or an RFC 3339 time,
// as promtool's parseTime.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(t)
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// testFile runs one file and returns its failures, recording each group
// as a JUnit test case.
func testFile(file string, opts Options, run *regexp.Regexp, suite *junitxml.TestSuite) []error {
	// A FIFO or a device must not hang a CI job, nor a huge file take all
	// memory: read it safely, capped.
	data, err := safefile.ReadFile(file, safefile.MaxRuleFile, "rule test file")
	if err != nil {
		suite.Abort(err)
		return []error{err}
	}
	var utf unitTestFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	// Test files are strict, as promtool's; --ignore-unknown-fields is
	// for rule files.
	dec.KnownFields(true)
	if err := dec.Decode(&utf); err != nil && !errors.Is(err, io.EOF) {
		suite.Abort(err)
		return []error{err}
	}
	if err := resolveRuleFiles(filepath.Dir(file), &utf, opts.Stderr); err != nil {
		suite.Abort(err)
		return []error{err}
	}
	if utf.EvaluationInterval == 0 {
		utf.EvaluationInterval = model.Duration(time.Minute)
	}
	suite.Settime(opts.Now().Format("2006-01-02T15:04:05"))
	seen := map[string]bool{}
	for _, g := range utf.GroupEvalOrder {
		if seen[g] {
			err := fmt.Errorf("group name repeated in evaluation order: %s", g)
			suite.Abort(err)
			return []error{err}
		}
		seen[g] = true
	}
	var errs []error
	for i, tg := range utf.Tests {
		if run != nil && !run.MatchString(tg.TestGroupName) {
			continue
		}
		name := tg.TestGroupName
		if name == "" {
			name = fmt.Sprintf("unnamed#%d", i)
		}
		tc := suite.Case(name)
		if tg.Interval == 0 {
			tg.Interval = utf.EvaluationInterval
		}
		r := groupRun{
			tg: &tg, name: name, evalInterval: time.Duration(utf.EvaluationInterval),
			order: utf.GroupEvalOrder, ruleFiles: utf.RuleFiles, fuzzy: utf.FuzzyCompare, opts: opts,
		}
		for _, e := range r.test(context.Background()) {
			tc.Fail(e.Error())
			errs = append(errs, e)
		}
	}
	return errs
}

// resolveRuleFiles makes rule_files relative to the test file's directory
// and expands their globs; a pattern that matches nothing is a warning.
func resolveRuleFiles(dir string, utf *unitTestFile, stderr io.Writer) error {
	var files []string
	for _, rf := range utf.RuleFiles {
		if rf != "" && !filepath.IsAbs(rf) {
			rf = filepath.Join(dir, rf)
		}
		m, err := filepath.Glob(rf)
		if err != nil {
			return err
		}
		if len(m) == 0 {
			fmt.Fprintln(stderr, "  WARNING: no file match pattern", rf)
		}
		files = append(files, m...)
	}
	utf.RuleFiles = files
	return nil
}
