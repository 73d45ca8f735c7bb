package promtest

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"
)

// bigExpansion finds series values that would expand to many samples
// ("0+1x100000000"): promtool's notation allocates them all, so the fuzz
// target leaves such inputs alone rather than run out of memory.
var bigExpansion = regexp.MustCompile(`x\s*(\d+)`)

// FuzzRuleTestFile reads arbitrary rule test files (promtool's "test rules"
// format) as `tokpulse-agent test rules` reads them: the strict YAML
// decoding, then the input series, PromQL expressions and expected labels
// of every test group. Nothing may panic. Seeds: the shipped rule pack's
// tests and small hostile files.
func FuzzRuleTestFile(f *testing.F) {
	for _, file := range []string{"../../packaging/rules/runbook_test.yml", "../../packaging/prometheus/tokpulse-agent-central_test.yml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "tests: [", "tests:\n  - input_series: [{series: 'up{job=\"a\"}', values: '1+0x5 _ stale'}]\n",
		"evaluation_interval: -1m\n", "tests:\n  - promql_expr_test: [{expr: 'sum(', eval_time: 1m}]\n",
		"tests:\n  - alert_rule_test: [{eval_time: 99999999999h, alertname: A, exp_alerts: [{exp_labels: {'': x}}]}]\n",
		"tests:\n  - input_series: [{series: '{__name__=\"\"}', values: '1e308+1e308x3'}]\n",
		"rule_files: [/dev/zero]\ntests: []\n", "&a [*a]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var utf unitTestFile
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if dec.Decode(&utf) != nil {
			return
		}
		p := newParser()
		for _, tg := range utf.Tests {
			for _, s := range tg.InputSeries {
				if tooBig(s.Values) {
					continue
				}
				_, _, _ = p.ParseSeriesDesc(s.Series + " " + s.Values)
			}
			for _, e := range tg.PromqlExprTests {
				_, _ = p.ParseExpr(e.Expr)
				for _, s := range e.ExpSamples {
					_, _ = p.ParseMetric(s.Labels)
				}
			}
		}
	})
}

func tooBig(values string) bool {
	for _, m := range bigExpansion.FindAllStringSubmatch(values, -1) {
		if n, err := strconv.Atoi(m[1]); err != nil || n > 10000 {
			return true
		}
	}
	return false
}
