package packaging

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// TestDashboardQueriesParseAndUseDocumentedMetrics keeps the Grafana
// dashboard honest: every query is valid PromQL, and every metric it reads
// is one the agent documents (so a renamed metric breaks this test, not
// the operator's dashboard).
func TestDashboardQueriesParseAndUseDocumentedMetrics(t *testing.T) {
	raw, err := os.ReadFile("grafana/tokpulse-agent.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	docs, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	// Grafana's variables, replaced by what Grafana would put there.
	vars := strings.NewReplacer("$instance", ".*", "$job", "tokpulse-agent", "$__rate_interval", "1m")
	p := parser.NewParser(parser.Options{})
	queries := 0
	for _, panel := range dash.Panels {
		for _, tg := range panel.Targets {
			queries++
			expr, err := p.ParseExpr(vars.Replace(tg.Expr))
			if err != nil {
				t.Errorf("panel %q: %v\n%s", panel.Title, err, tg.Expr)
				continue
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				name := strings.TrimSuffix(vs.Name, "_bucket")
				if name == "up" || strings.HasPrefix(name, "node_memory_") || strings.HasPrefix(name, "process_") {
					return nil // Prometheus' own, or documented as a family
				}
				if !strings.Contains(string(docs), "`"+name+"`") && !strings.Contains(string(docs), name+"{") && !strings.Contains(string(docs), name+"`") {
					t.Errorf("panel %q reads %s, which docs/metrics.md does not document", panel.Title, name)
				}
				return nil
			})
		}
	}
	if dash.UID == "" || queries < 20 {
		t.Errorf("dashboard has uid %q and %d queries; expected a uid and the full set of panels", dash.UID, queries)
	}
}
