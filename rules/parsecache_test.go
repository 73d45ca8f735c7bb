package rules

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/rules/memstore"

	"github.com/prometheus/prometheus/promql"
)

// cacheExprs has every kind of PromQL node the parser makes.
var cacheExprs = []string{
	`c`,
	`c{a="1"}`,
	`-c`,
	`(c + 1) * 2`,
	`"a string"`,
	`sum by (a) (rate(c[2m]))`,
	`topk(1, c)`,
	`quantile(0.5, c)`,
	`count_values("v", g)`,
	`c / on (a) group_left c`,
	`c > bool 3`,
	`c offset 1m`,
	`c @ end()`,
	`c @ 1767225600`,
	`max_over_time(rate(c[1m])[5m:30s])`,
	`max_over_time(g[2m:] offset 1m)`,
	`histogram_quantile(0.9, sum by (le) (rate(h_bucket[2m])))`,
	`label_replace(c, "b", "$1", "a", "(.*)")`,
	`absent(nothing{a=~"x|y"})`,
	`vector(1) and on () c`,
	`time() - timestamp(g)`,
	`{__name__=~"c|g", a!="2"}`,
	`-(c)`,
}

// TestParseCache: the engine's parser hands out a fresh copy of the tree
// each time, equal to a fresh parse, and an engine with it answers every
// expression exactly as one that parses each time, evaluation after
// evaluation (the engine rewrites the trees it runs).
func TestParseCache(t *testing.T) {
	c := newParseCache(newParser())
	for _, q := range cacheExprs {
		fresh, err := newParser().ParseExpr(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		a, err := c.ParseExpr(q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := c.ParseExpr(q)
		if a == b {
			t.Errorf("%s: the same tree handed out twice", q)
		}
		if a.String() != fresh.String() || b.String() != fresh.String() {
			t.Errorf("%s: copies %q and %q, parsed %q", q, a, b, fresh)
		}
		if _, ok := cloneExpr(fresh); !ok {
			t.Errorf("%s: a node cloneExpr does not know", q)
		}
	}
	if len(c.exprs) != len(cacheExprs) {
		t.Errorf("%d expressions cached, want %d", len(c.exprs), len(cacheExprs))
	}

	const interval = 10 * time.Second
	s := memstore.New(0, 0)
	for i := range 60 {
		s.AppendFamilies(t0.Add(time.Duration(i)*interval), retentionGather(i))
	}
	cached := newEngine(nil, interval)
	plain := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: LookbackDelta,
		EnableAtModifier: true, EnableNegativeOffset: true, Parser: newParser(),
		NoStepSubqueryIntervalFn: func(int64) int64 { return interval.Milliseconds() }})
	answer := func(e *promql.Engine, q string, ts time.Time) string {
		qry, err := e.NewInstantQuery(context.Background(), s, nil, q, ts)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer qry.Close()
		res := qry.Exec(context.Background())
		if res.Err != nil {
			return "error: " + res.Err.Error()
		}
		if v, ok := res.Value.(promql.Vector); ok {
			var out []string
			for _, smp := range v {
				out = append(out, fmt.Sprintf("%s=%g", smp.Metric, smp.F))
			}
			sort.Strings(out)
			return strings.Join(out, " ")
		}
		return res.Value.String()
	}
	for i := 30; i < 60; i += 7 {
		ts := t0.Add(time.Duration(i) * interval)
		for _, q := range cacheExprs {
			if a, b := answer(cached, q, ts), answer(plain, q, ts); a != b {
				t.Errorf("%s at step %d: cached parser %q, parsing each time %q", q, i, a, b)
			}
		}
	}
}
