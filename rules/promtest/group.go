package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/nsf/jsondiff"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/tokpulse/tokpulse-agent/rules"
)

// groupRun is one test group of a file with what it needs from the file.
type groupRun struct {
	tg           *testGroup
	name         string
	evalInterval time.Duration
	order        []string
	ruleFiles    []string
	fuzzy        bool
	opts         Options
}

// newParser parses input series and expected samples with the options
// the daemon parses rules with.
func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// test runs the group: it loads the input series, evaluates the rules at
// every evaluation_interval up to the last eval_time, compares the firing
// alerts at each alert test's time and then every expression test. The
// order and the words of its failures are promtool's.
func (r *groupRun) test(ctx context.Context) (errs []error) {
	tg := r.tg
	if r.opts.Debug {
		start := time.Now()
		fmt.Fprintf(r.opts.Stderr, "DEBUG: Starting test %s\n", r.name)
		defer func() {
			fmt.Fprintf(r.opts.Stderr, "DEBUG: Test %s finished, took %v\n", r.name, time.Since(start))
		}()
	}
	mint := time.Unix(0, 0).UTC()
	if !tg.StartTimestamp.IsZero() {
		mint = tg.StartTimestamp.Time
	}
	p := newParser()
	input, err := r.parseInput(p)
	if err != nil {
		return []error{err}
	}
	h, loadErrs := rules.NewTestHarness(rules.TestHarnessOptions{
		RuleFiles:      r.ruleFiles,
		Load:           rules.LoadOptions{IgnoreUnknownFields: r.opts.IgnoreUnknownFields},
		EvalInterval:   r.evalInterval,
		ExternalLabels: tg.ExternalLabels,
		ExternalURL:    tg.ExternalURL,
	})
	if loadErrs != nil {
		return loadErrs
	}
	h.OrderGroups(r.order)
	for _, s := range input {
		for i, v := range s.vals {
			if !v.Omitted {
				h.Append(s.lset, mint.Add(time.Duration(i)*time.Duration(tg.Interval)), v.Value)
			}
		}
	}
	maxt := mint.Add(tg.maxEvalTime())

	tests, times, err := tg.alertTestsByTime()
	if err != nil {
		return []error{err}
	}

	curr := 0
	for ts := mint; !ts.After(maxt); ts = ts.Add(r.evalInterval) {
		var evalErrs []error
		for _, e := range h.Eval(ctx, ts) {
			// promtool counts this time from 1970, whatever the start.
			evalErrs = append(evalErrs, fmt.Errorf("    rule: %s, time: %s, err: %w", e.Rule, ts.Sub(time.Unix(0, 0).UTC()), e.Err))
		}
		if len(evalErrs) > 0 {
			return append(errs, evalErrs...)
		}
		// An alert test at eval_time is answered by the evaluation at
		// ts <= eval_time < ts+evaluation_interval.
		for curr < len(times) && ts.Sub(mint) <= time.Duration(times[curr]) && time.Duration(times[curr]) < ts.Add(r.evalInterval).Sub(mint) {
			for _, tc := range tests[times[curr]] {
				if err := r.compareAlerts(h, tc); err != nil {
					errs = append(errs, err)
				}
			}
			curr++
		}
	}
	for _, tc := range tg.PromqlExprTests {
		if err := r.compareExpr(ctx, h, p, mint, tc); err != nil {
			errs = append(errs, err)
		}
	}
	if r.opts.Debug {
		r.dump(ctx, h, mint)
	}
	return errs
}

// parsedSeries is one input series with its values.
type parsedSeries struct {
	lset labels.Labels
	vals []parser.SequenceValue
}

// parseInput parses the group's input series, failing with promtool's
// words on the first one that does not parse.
func (r *groupRun) parseInput(p parser.Parser) ([]parsedSeries, error) {
	var input []parsedSeries
	for i, s := range r.tg.InputSeries {
		lset, vals, err := p.ParseSeriesDesc(s.Series + " " + s.Values)
		if err != nil {
			// promtool hands the series to its test loader as line i+1
			// after a "load" line, and the loader's error says so.
			parser.EnrichParseError(err, func(pe *parser.ParseErr) { pe.LineOffset = i + 1 })
			return nil, err
		}
		for _, v := range vals {
			if v.Histogram != nil {
				return nil, fmt.Errorf("    name: %s, series %q: native histograms are not supported by tokpulse-agent: its series store keeps float samples, and the agent exports histograms as classic _bucket, _sum and _count series; write them so", r.name, s.Series)
			}
		}
		input = append(input, parsedSeries{lset, vals})
	}
	return input, nil
}

// alertTestsByTime groups the alert tests by eval_time; times lists the
// eval_times in order.
func (tg *testGroup) alertTestsByTime() (tests map[model.Duration][]alertTestCase, times []model.Duration, err error) {
	tests = map[model.Duration][]alertTestCase{}
	for _, a := range tg.AlertRuleTests {
		if a.Alertname == "" {
			var in string
			if tg.TestGroupName != "" {
				in = fmt.Sprintf(" (in TestGroup %s)", tg.TestGroupName)
			}
			return nil, nil, fmt.Errorf("an item under alert_rule_test misses required attribute alertname at eval_time %v%s", a.EvalTime, in)
		}
		if _, ok := tests[a.EvalTime]; !ok {
			times = append(times, a.EvalTime)
		}
		tests[a.EvalTime] = append(tests[a.EvalTime], a)
	}
	slices.Sort(times)
	return tests, times, nil
}

func (tg *testGroup) maxEvalTime() time.Duration {
	var m model.Duration
	for _, a := range tg.AlertRuleTests {
		m = max(m, a.EvalTime)
	}
	for _, p := range tg.PromqlExprTests {
		m = max(m, p.EvalTime)
	}
	return time.Duration(m)
}

// compareAlerts compares the firing alerts of one alert test.
func (r *groupRun) compareAlerts(h *rules.TestHarness, tc alertTestCase) error {
	var got alertList
	for _, a := range h.Firing(tc.Alertname) {
		got = append(got, labelsAndAnnotations{a.Labels, a.Annotations})
	}
	var exp alertList
	for _, a := range tc.ExpAlerts {
		// The test gives the rule's labels only; alertname is added by
		// the evaluation.
		l := labels.NewBuilder(labels.FromMap(a.ExpLabels))
		l.Set(labels.AlertName, tc.Alertname)
		exp = append(exp, labelsAndAnnotations{l.Labels(), labels.FromMap(a.ExpAnnotations)})
	}
	sort.Sort(got)
	sort.Sort(exp)
	if exp.equal(got) {
		return nil
	}
	var name string
	if r.tg.TestGroupName != "" {
		name = fmt.Sprintf("    name: %s,\n", r.tg.TestGroupName)
	}
	if !r.opts.Diff {
		return fmt.Errorf("%s    alertname: %s, time: %s, \n        exp:%v, \n        got:%v",
			name, tc.Alertname, tc.EvalTime, indentLines(exp.String(), "            "), indentLines(got.String(), "            "))
	}
	// An empty side compares as one empty alert, as promtool shows it.
	if len(got) == 0 {
		got = alertList{{labels.EmptyLabels(), labels.EmptyLabels()}}
	}
	if len(exp) == 0 {
		exp = alertList{{labels.EmptyLabels(), labels.EmptyLabels()}}
	}
	expJSON, err := json.Marshal(exp)
	if err != nil {
		return fmt.Errorf("error marshaling expected %s alert: [%s]", r.tg.TestGroupName, err)
	}
	gotJSON, err := json.Marshal(got)
	if err != nil {
		return fmt.Errorf("error marshaling received %s alert: [%s]", r.tg.TestGroupName, err)
	}
	diffOpts := jsondiff.DefaultConsoleOptions()
	res, diff := jsondiff.Compare(expJSON, gotJSON, &diffOpts)
	if res == jsondiff.FullMatch {
		return nil
	}
	return fmt.Errorf("%s    alertname: %s, time: %s, \n        diff: %v",
		name, tc.Alertname, tc.EvalTime, indentLines(diff, "            "))
}

// compareExpr runs one promql_expr_test.
func (r *groupRun) compareExpr(ctx context.Context, h *rules.TestHarness, p parser.Parser, mint time.Time, tc promqlTestCase) error {
	vec, err := h.Query(ctx, tc.Expr, mint.Add(time.Duration(tc.EvalTime)))
	if err != nil {
		return fmt.Errorf("    expr: %q, time: %s, err: %s", tc.Expr, tc.EvalTime, err)
	}
	var got []parsedSample
	for _, s := range vec {
		got = append(got, parsedSample{Labels: s.Metric, Value: s.F, Histogram: histogramString(s.H)})
	}
	var exp []parsedSample
	for _, s := range tc.ExpSamples {
		lb, err := p.ParseMetric(s.Labels)
		var hist *histogram.FloatHistogram
		if err == nil && s.Histogram != "" {
			_, vals, perr := p.ParseSeriesDesc("{} " + s.Histogram)
			switch {
			case perr != nil:
				err = perr
			case len(vals) != 1:
				err = fmt.Errorf("expected 1 value, got %d", len(vals))
			case vals[0].Histogram == nil:
				err = fmt.Errorf("expected histogram, got %v", vals[0])
			default:
				hist = vals[0].Histogram
			}
		}
		if err != nil {
			return fmt.Errorf("    expr: %q, time: %s, err: %w", tc.Expr, tc.EvalTime, fmt.Errorf("labels %q: %w", s.Labels, err))
		}
		exp = append(exp, parsedSample{Labels: lb, Value: s.Value, Histogram: histogramString(hist)})
	}
	byLabels := func(a, b parsedSample) int { return labels.Compare(a.Labels, b.Labels) }
	slices.SortStableFunc(exp, byLabels)
	slices.SortStableFunc(got, byLabels)
	if r.samplesEqual(exp, got) {
		return nil
	}
	return fmt.Errorf("    expr: %q, time: %s,\n        exp: %v\n        got: %v", tc.Expr, tc.EvalTime, samplesString(exp), samplesString(got))
}

// floatEqual compares as promtool: exactly, or with fuzzy_compare within
// one representable float step (math.Nextafter) either way.
func (r *groupRun) floatEqual(x, y float64) bool {
	if x == y {
		return true
	}
	return r.fuzzy && (math.Nextafter(x, math.Inf(-1)) == y || math.Nextafter(x, math.Inf(1)) == y)
}

func (r *groupRun) samplesEqual(a, b []parsedSample) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !labels.Equal(a[i].Labels, b[i].Labels) || !r.floatEqual(a[i].Value, b[i].Value) || a[i].Histogram != b[i].Histogram {
			return false
		}
	}
	return true
}

func histogramString(h *histogram.FloatHistogram) string {
	if h == nil {
		return ""
	}
	return h.TestExpression()
}

// dump writes every series of the group up to its last eval_time to
// Stderr (--debug).
func (r *groupRun) dump(ctx context.Context, h *rules.TestHarness, mint time.Time) {
	// A test may end at a fraction of a second, which a range cannot
	// name: round up to the next whole second.
	ts := (r.tg.maxEvalTime() + time.Second).Truncate(time.Second)
	expr := fmt.Sprintf(`{__name__=~".+"}[%v]`, ts)
	m, err := h.QueryRange(ctx, expr, mint.Add(ts))
	if err != nil {
		fmt.Fprintf(r.opts.Stderr, "DEBUG: Failed query exec, expr: %q, err: %v\n", expr, err)
		return
	}
	fmt.Fprintf(r.opts.Stderr, "DEBUG: Dump of all data (input_series and rules) at %v:\n", ts)
	fmt.Fprintln(r.opts.Stderr, m.String())
}
