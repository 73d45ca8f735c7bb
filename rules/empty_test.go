package rules

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	rulepack "github.com/tokpulse/tokpulse-agent/packaging/rules"
	"github.com/tokpulse/tokpulse-agent/rules/memstore"
)

// TestProvablyEmpty checks every verdict against a table, and every
// "empty" verdict against the PromQL engine's own answer over a store
// that has the series c, g, o and the histogram h, and none named x or y.
func TestProvablyEmpty(t *testing.T) {
	const interval = 10 * time.Second
	s := memstore.New(0, 0)
	for i := range 60 {
		s.AppendFamilies(t0.Add(time.Duration(i)*interval), retentionGather(i))
	}
	query := queryFunc(newEngine(nil, interval), s)
	p := newParser()
	for _, tc := range []struct {
		expr  string
		empty bool
	}{
		{`x == 0`, true},
		{`x{a="b"} > 2`, true},
		{`increase(x[5m]) > 0`, true},
		{`sum by (a) (rate(x[5m])) / sum by (a) (rate(c[5m])) > 0.05`, true},
		{`c / x`, true},
		{`x * on (a) group_left (b) c`, true},
		{`x or y`, true},
		{`c and x`, true},
		{`x unless c`, true},
		{`histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m]))) > 2`, true},
		{`max_over_time(x[5m:1m])`, true},
		{`-x`, true},
		{`(1 - x / y) * 100 > 80`, true},
		{`topk(3, x)`, true},
		{`count_values("v", x)`, true},
		{`count(x) == 0`, true},
		{`label_replace(x, "a", "$1", "b", "(.*)")`, true},
		{`x offset 5m > 1`, true},
		{`x @ 100 > 1`, true},
		{`day_of_week(x)`, true},
		{`clamp(x, 0, (1))`, true},
		{`x > bool 1`, true},
		{`predict_linear(x[5m], 3600) < 0`, true},
		{`quantile_over_time(0.5, x[5m])`, true},

		{`c == 0`, false},
		{`c > 1000`, false}, // empty, but the store has c: the engine decides
		{`absent(x)`, false},
		{`absent_over_time(x[5m])`, false},
		{`vector(1)`, false},
		{`x or vector(0)`, false},
		{`sum(x) or vector(0)`, false},
		{`x or c`, false},
		{`c unless x`, false},
		{`vector(time()) > 0`, false},
		{`day_of_week()`, false},
		{`topk(scalar(y), x)`, false},
		{`x > scalar(c)`, false},
		{`{__name__=~"x|y"}`, false},
		{`scalar(x)`, false},
		{`1 + 2`, false},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			e, err := p.ParseExpr(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			got := provablyEmpty(e, s.HasMetric)
			if got != tc.empty {
				t.Errorf("provablyEmpty = %t, want %t", got, tc.empty)
			}
			if !got {
				return
			}
			for _, at := range []int{5, 30, 59} {
				vec, err := query(context.Background(), tc.expr, t0.Add(time.Duration(at)*interval))
				if err != nil || len(vec) != 0 {
					t.Errorf("the engine at step %d: %v, error %v; provablyEmpty said empty", at, vec, err)
				}
			}
		})
	}
}

// TestProvablyEmptyFollowsTheStore: the verdict is the store's now; a
// series that appears makes the rule the engine's again.
func TestProvablyEmptyFollowsTheStore(t *testing.T) {
	s := memstore.New(0, 0)
	e, err := newParser().ParseExpr(`x > 0`)
	if err != nil {
		t.Fatal(err)
	}
	if !provablyEmpty(e, s.HasMetric) {
		t.Fatal("x > 0 over an empty store: not provably empty")
	}
	s.Append(labels.FromStrings("__name__", "x"), t0, 1)
	if provablyEmpty(e, s.HasMetric) {
		t.Fatal("x > 0 with a series x: still provably empty")
	}
	vec, err := queryFunc(newEngine(nil, 10*time.Second), s)(context.Background(), `x > 0`, t0)
	if err != nil || len(vec) != 1 || vec[0].F != 1 {
		t.Fatalf("x > 0 = %v, %v; want x 1", vec, err)
	}
}

// TestShippedRulesSkippedWhenAbsent: on a host with none of the
// subsystems a rule of the shipped pack watches (probes, checks, units,
// processes, log patterns), none of its rules costs an engine query; on
// a host with all of them, none is skipped.
func TestShippedRulesSkippedWhenAbsent(t *testing.T) {
	groups, _, err := LoadFiles([]string{"builtin:runbook.yml"}, LoadOptions{Pack: rulepack.Pack{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	none := func(string) bool { return false }
	all := func(string) bool { return true }
	n := 0
	for _, g := range groups {
		for _, r := range g.Rules {
			n++
			if !provablyEmpty(r.expr, none) {
				t.Errorf("%s: not provably empty when none of %v exists", r.Name(), r.deps)
			}
			if provablyEmpty(r.expr, all) {
				t.Errorf("%s: provably empty although all of %v exist", r.Name(), r.deps)
			}
		}
	}
	if n == 0 {
		t.Fatal("no rules in the pack")
	}
}
