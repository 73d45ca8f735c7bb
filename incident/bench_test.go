package incident_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// BenchmarkCommitActions is the tracker's work per interval with 200
// alerts firing (20 rules of 10 label sets), without actions and with the
// shipped pack's four restart actions plus a dry run matching every
// alert, once every action has had its verdict: the steady cost of
// configured actions on a host in trouble.
func BenchmarkCommitActions(b *testing.B) {
	for _, n := range []int{0, 5} {
		b.Run(fmt.Sprintf("actions=%d", n), func(b *testing.B) {
			tr, err := incident.New(incident.Options{Policies: alert.DefaultPolicies(), Host: "web-1"})
			if err != nil {
				b.Fatal(err)
			}
			var acts []incident.Action
			if n > 0 {
				for _, name := range []string{"TokPulseHealthCheckFailed", "TokPulseServiceFailed", "TokPulseDatabaseUnavailable", "TokPulseRedisUnavailable"} {
					acts = append(acts, incident.Action{Name: "restart-" + name, Match: map[string]string{"alertname": name},
						Type: alert.ActionRestartUnit, Unit: "x.service", MaxRuns: 1, Per: time.Hour, VerifyWithin: time.Minute, Timeout: time.Minute})
				}
				acts = append(acts, incident.Action{Name: "rehearse", MatchRE: map[string]*regexp.Regexp{"alertname": regexp.MustCompile("^(?:Bench.*)$")},
					Type: alert.ActionCommand, Command: []string{"/bin/true"}, MaxRuns: 1, Per: time.Hour, VerifyWithin: time.Minute, Timeout: time.Minute, DryRun: true})
			}
			tr.SetActions(acts, &scriptExec{})
			var rules []alert.Rule
			var samples [][]alert.Sample
			for r := range 20 {
				rule := alert.Rule{Group: "bench", Name: fmt.Sprintf("Bench%02d", r), Severity: alert.P2}
				rules = append(rules, rule)
				var ss []alert.Sample
				for i := range 10 {
					ss = append(ss, alert.Sample{Labels: labels.FromStrings("alertname", rule.Name, "severity", "P2", "instance", fmt.Sprint(i)), Value: 1})
				}
				samples = append(samples, ss)
			}
			tr.SetRules(rules)
			ctx := context.Background()
			t0 := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
			step := func(ts time.Time) {
				for i, r := range rules {
					tr.Observe(ts, r, samples[i], true)
				}
				if err := tr.Commit(ctx, ts); err != nil {
					b.Fatal(err)
				}
			}
			for i := range 3 {
				step(t0.Add(time.Duration(i) * 10 * time.Second))
			}
			if n > 0 {
				if as := tr.Alerts(); len(as) != 200 || len(as[0].Actions) != 1 {
					b.Fatalf("%d alerts, the first with %d actions; want 200, each with the dry run", len(as), len(as[0].Actions))
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				step(t0.Add(time.Duration(3+i) * 10 * time.Second))
			}
		})
	}
}
