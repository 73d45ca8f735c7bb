package rules

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/safefile"
)

// The file format of promtool's "test rules", so that one test file runs
// under both tools.

type unitTestFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	GroupEvalOrder     []string       `yaml:"group_eval_order"`
	Tests              []testGroup    `yaml:"tests"`
	FuzzyCompare       bool           `yaml:"fuzzy_compare"`
}

type testGroup struct {
	Interval        model.Duration    `yaml:"interval"`
	InputSeries     []inputSeries     `yaml:"input_series"`
	AlertRuleTests  []alertTestCase   `yaml:"alert_rule_test"`
	PromqlExprTests []promqlTestCase  `yaml:"promql_expr_test"`
	ExternalLabels  map[string]string `yaml:"external_labels"`
	ExternalURL     string            `yaml:"external_url"`
	TestGroupName   string            `yaml:"name"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTestCase struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []struct {
		ExpLabels      map[string]string `yaml:"exp_labels"`
		ExpAnnotations map[string]string `yaml:"exp_annotations"`
	} `yaml:"exp_alerts"`
}

type promqlTestCase struct {
	Expr       string         `yaml:"expr"`
	EvalTime   model.Duration `yaml:"eval_time"`
	ExpSamples []struct {
		Labels    string  `yaml:"labels"`
		Value     float64 `yaml:"value"`
		Histogram string  `yaml:"histogram"`
	} `yaml:"exp_samples"`
}

// TestFiles runs rule unit test files in promtool's "test rules" format
// with the daemon's own loader, engine and alert lifecycle, writing a
// promtool-like report to w. It reports whether every test passed.
func TestFiles(w io.Writer, files ...string) bool {
	ok := true
	for _, f := range files {
		fmt.Fprintf(w, "Processing test file: %s\n", f)
		if errs := testFile(f, nil); len(errs) > 0 {
			fmt.Fprintln(w, "  FAILED:")
			for _, e := range errs {
				fmt.Fprintln(w, e.Error())
				fmt.Fprintln(w)
			}
			ok = false
		} else {
			fmt.Fprintln(w, "  SUCCESS")
		}
		fmt.Fprintln(w)
	}
	return ok
}

func testFile(file string, observe observer) []error {
	data, err := safefile.ReadFile(file, safefile.MaxRuleFile, "rule test file")
	if err != nil {
		return []error{err}
	}
	var utf unitTestFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&utf); err != nil {
		return []error{fmt.Errorf("%s: %w", file, err)}
	}
	if utf.EvaluationInterval == 0 {
		utf.EvaluationInterval = model.Duration(time.Minute)
	}
	var globs []string
	for _, rf := range utf.RuleFiles {
		if rf != "" && !filepath.IsAbs(rf) {
			rf = filepath.Join(filepath.Dir(file), rf)
		}
		globs = append(globs, rf)
	}
	order := map[string]int{}
	for i, g := range utf.GroupEvalOrder {
		if _, dup := order[g]; dup {
			return []error{fmt.Errorf("group name repeated in evaluation order: %s", g)}
		}
		order[g] = i
	}
	var errs []error
	for i, tg := range utf.Tests {
		name := tg.TestGroupName
		if name == "" {
			name = fmt.Sprintf("unnamed#%d", i)
		}
		if tg.Interval == 0 {
			tg.Interval = utf.EvaluationInterval
		}
		errs = append(errs, tg.run(name, time.Duration(utf.EvaluationInterval), globs, order, observe)...)
	}
	return errs
}

func (tg *testGroup) maxEvalTime() time.Duration {
	var m time.Duration
	for _, a := range tg.AlertRuleTests {
		m = max(m, time.Duration(a.EvalTime))
	}
	for _, p := range tg.PromqlExprTests {
		m = max(m, time.Duration(p.EvalTime))
	}
	return m
}

type gotAlert struct {
	labels, annotations map[string]string
}

func (g gotAlert) String() string {
	return fmt.Sprintf("Labels:%s Annotations:%s", labels.FromMap(g.labels), labels.FromMap(g.annotations))
}

func alertsString(as []gotAlert) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return "[" + strings.Join(parts, "\n") + "]"
}

func sortGot(as []gotAlert) {
	sort.Slice(as, func(i, j int) bool {
		return labels.Compare(labels.FromMap(as[i].labels), labels.FromMap(as[j].labels)) < 0
	})
}

// observer sees the firing alerts at every alert_rule_test point (tests
// of the runner itself use it).
type observer func(test string, evalTime time.Duration, alertname string, got []gotAlert)

func (tg *testGroup) run(name string, evalInterval time.Duration, globs []string, order map[string]int, observe observer) []error {
	logger := slog.New(slog.DiscardHandler)
	groups, _, err := LoadFiles(globs, logger)
	if err != nil {
		return []error{err}
	}
	// Groups in group_eval_order first, in that order, then the others.
	sort.SliceStable(groups, func(i, j int) bool {
		oi, iok := order[groups[i].Name]
		oj, jok := order[groups[j].Name]
		switch {
		case iok && jok:
			return oi < oj
		case iok != jok:
			return iok
		}
		return false
	})
	store := NewStore(0, 1<<30)
	p := newParser()
	mint := time.Unix(0, 0).UTC()
	for _, s := range tg.InputSeries {
		lset, vals, err := p.ParseSeriesDesc(s.Series + " " + s.Values)
		if err != nil {
			return []error{fmt.Errorf("    name: %s, series %q: %w", name, s.Series, err)}
		}
		for i, v := range vals {
			if v.Omitted {
				continue
			}
			if v.Histogram != nil {
				return []error{fmt.Errorf("    name: %s, series %q: native histograms are not supported by tokpulse-agent; use classic _bucket series", name, s.Series)}
			}
			store.Append(lset, mint.Add(time.Duration(i)*time.Duration(tg.Interval)), v.Value)
		}
	}
	engine := newEngine(logger, evalInterval)
	query := queryFunc(engine, store)
	env := templateEnv{labels: tg.ExternalLabels, url: tg.ExternalURL}
	if env.labels == nil {
		env.labels = map[string]string{}
	}
	ctx := context.Background()

	evalTimes := map[time.Duration][]alertTestCase{}
	var times []time.Duration
	for _, a := range tg.AlertRuleTests {
		if a.Alertname == "" {
			return []error{fmt.Errorf("an item under alert_rule_test misses required attribute alertname at eval_time %v (in test %s)", a.EvalTime, name)}
		}
		t := time.Duration(a.EvalTime)
		if _, ok := evalTimes[t]; !ok {
			times = append(times, t)
		}
		evalTimes[t] = append(evalTimes[t], a)
	}
	slices.Sort(times)
	curr := 0
	var errs []error
	maxt := mint.Add(tg.maxEvalTime())
	for ts := mint; !ts.After(maxt); ts = ts.Add(evalInterval) {
		var evalErrs []error
		for _, g := range groups {
			for _, e := range evalGroup(ctx, g, ts, query, store, env, logger) {
				evalErrs = append(evalErrs, fmt.Errorf("    rule: %w, time: %s", e, ts.Sub(mint)))
			}
		}
		if len(evalErrs) > 0 {
			return append(errs, evalErrs...)
		}
		for curr < len(times) && ts.Sub(mint) <= times[curr] && times[curr] < ts.Add(evalInterval).Sub(mint) {
			t := times[curr]
			for _, tc := range evalTimes[t] {
				var got []gotAlert
				for _, g := range groups {
					for _, r := range g.Rules {
						if r.Alert != tc.Alertname {
							continue
						}
						for _, a := range r.active {
							if a.State == alert.StateFiring {
								got = append(got, gotAlert{a.Labels, a.Annotations})
							}
						}
					}
				}
				var exp []gotAlert
				for _, e := range tc.ExpAlerts {
					l := maps.Clone(e.ExpLabels)
					if l == nil {
						l = map[string]string{}
					}
					l[labels.AlertName] = tc.Alertname
					an := e.ExpAnnotations
					if an == nil {
						an = map[string]string{}
					}
					exp = append(exp, gotAlert{l, an})
				}
				sortGot(got)
				sortGot(exp)
				if observe != nil {
					observe(name, t, tc.Alertname, got)
				}
				if !sameAlerts(exp, got) {
					errs = append(errs, fmt.Errorf("    name: %s,\n    alertname: %s, time: %s, \n        exp:%v, \n        got:%v",
						name, tc.Alertname, model.Duration(t), alertsString(exp), alertsString(got)))
				}
			}
			curr++
		}
	}
	for _, tc := range tg.PromqlExprTests {
		vec, err := query(ctx, tc.Expr, mint.Add(time.Duration(tc.EvalTime)))
		if err != nil {
			errs = append(errs, fmt.Errorf("    expr: %q, time: %s, err: %w", tc.Expr, tc.EvalTime, err))
			continue
		}
		type smp struct {
			l labels.Labels
			v float64
		}
		var got, exp []smp
		for _, s := range vec {
			got = append(got, smp{s.Metric, s.F})
		}
		bad := false
		for _, s := range tc.ExpSamples {
			if s.Histogram != "" {
				errs = append(errs, fmt.Errorf("    expr: %q: native histograms are not supported by tokpulse-agent", tc.Expr))
				bad = true
				break
			}
			l, err := p.ParseMetric(s.Labels)
			if err != nil {
				errs = append(errs, fmt.Errorf("    expr: %q, time: %s, err: labels %q: %w", tc.Expr, tc.EvalTime, s.Labels, err))
				bad = true
				break
			}
			exp = append(exp, smp{l, s.Value})
		}
		if bad {
			continue
		}
		cmpS := func(a, b smp) int { return labels.Compare(a.l, b.l) }
		slices.SortFunc(got, cmpS)
		slices.SortFunc(exp, cmpS)
		same := len(got) == len(exp)
		for i := 0; same && i < len(got); i++ {
			same = labels.Equal(got[i].l, exp[i].l) && (got[i].v == exp[i].v || (got[i].v != got[i].v && exp[i].v != exp[i].v))
		}
		if !same {
			str := func(ss []smp) string {
				parts := make([]string, len(ss))
				for i, s := range ss {
					parts[i] = fmt.Sprintf("%s %v", s.l, s.v)
				}
				return strings.Join(parts, ", ")
			}
			errs = append(errs, fmt.Errorf("    expr: %q, time: %s,\n        exp: %s\n        got: %s", tc.Expr, tc.EvalTime, str(exp), str(got)))
		}
	}
	return errs
}

func sameAlerts(a, b []gotAlert) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !maps.Equal(a[i].labels, b[i].labels) || !maps.Equal(a[i].annotations, b[i].annotations) {
			return false
		}
	}
	return true
}
