package rules

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rulepack "github.com/tokpulse/tokpulse-agent/packaging/rules"
)

func TestLoadFileInvalid(t *testing.T) {
	for _, tc := range []struct {
		file string
		want string
	}{
		{"invalid-no-severity.yml", `testdata/invalid-no-severity.yml:8:9: group "example", rule 2, "NoSeverity": tokpulse-agent requires severity P1–P4 on alerting rules (Prometheus does not): the label "severity" is missing; add severity: P1, P2, P3 or P4 under labels: (the runbook's incident classes)`},
		{"invalid-bad-severity.yml", `testdata/invalid-bad-severity.yml:7:21: group "example", rule 1, "Critical": tokpulse-agent requires severity P1–P4 on alerting rules (Prometheus does not): severity "critical" is not one of them; write P1, P2, P3 or P4`},
		{"invalid-expr.yml", `testdata/invalid-expr.yml:5:15: group "example", rule 1, "Broken": could not parse expression`},
		{"invalid-unknown-key.yml", "testdata/invalid-unknown-key.yml: yaml: unmarshal errors:\n  line 6: field label not found"},
		{"invalid-threshold.yml", `testdata/invalid-threshold.yml:4:9: group "example", rule 1, "HighMemory": annotation threshold: "80 percent" is not a comparison; write an operator and a number, e.g. "> 80" (tokpulse-agent shows it in alert texts; Prometheus does not read it)`},
		{"invalid-threshold-mismatch.yml", `testdata/invalid-threshold-mismatch.yml:4:9: group "example", rule 1, "HighMemory": annotation threshold: "> 80" differs from the expression's comparison "> 85"; make them agree (tokpulse-agent shows it in alert texts; Prometheus does not read it)`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadFile("testdata/"+tc.file, LoadOptions{}, nil)
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error\n%s\nwant it to start with\n%s", err, tc.want)
			}
		})
	}
}

// TestLoadFilePositions: rulefmt reports some problems at "0:0:" or
// without a position; the agent names the group's or rule's line and
// column instead.
func TestLoadFilePositions(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"repeated group", "groups:\n  - name: yolo\n  - name: yolo\n", `:3:5: groupname: "yolo" is repeated in the same file`},
		{"neither record nor alert", "groups:\n  - name: yolo\n    rules:\n      - expr: 1\n", `:4:9: group "yolo", rule 1, "": one of 'record' or 'alert' must be set`},
		{"no expr", "groups:\n  - name: g\n    rules:\n      - record: a\n      - record: b\n", `:4:9: group "g", rule 1, "a": field 'expr' must be set in rule` + "\n" + "FILE" + `:5:9: group "g", rule 2, "b": field 'expr' must be set in rule`},
		{"bad label name, second rule", "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: 1\n      - record: b\n        expr: 1\n        labels: {__name__: x}\n", `:6:9: group "g", rule 2, "b": invalid label name: __name__`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "r.yml")
			if err := os.WriteFile(f, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFile(f, LoadOptions{}, nil)
			want := f + strings.ReplaceAll(tc.want, "FILE", f)
			if err == nil || err.Error() != want {
				t.Fatalf("error\n%v\nwant\n%s", err, want)
			}
		})
	}
}

func TestLoadFileValid(t *testing.T) {
	gs, err := LoadFile("testdata/valid.yml", LoadOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0].Interval != 30*time.Second || len(gs[0].Rules) != 2 {
		t.Fatalf("groups %+v", gs)
	}
	r := gs[0].Rules[1]
	if r.Alert != "Down" || r.Severity != "P3" || r.For != 2*time.Minute || r.Line != 7 || r.retention.longest != 10*time.Minute {
		t.Fatalf("rule %+v", r)
	}
}

// TestShippedPackPassesPromtool proves the format: what the agent loads,
// Prometheus' own promtool (Debian package prometheus) accepts too.
func TestShippedPackPassesPromtool(t *testing.T) {
	if _, _, err := LoadFiles([]string{"../packaging/rules/*.yml"}, LoadOptions{}, nil); err == nil {
		t.Fatal("runbook_test.yml is not a rule file; loading it should fail")
	}
	gs, err := LoadFile("../packaging/rules/runbook.yml", LoadOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		for _, r := range g.Rules {
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Annotations.Get(a) == "" {
					t.Errorf("%s:%d: %s has no %s annotation", r.File, r.Line, r.Name(), a)
				}
			}
		}
	}
	for _, args := range [][]string{
		{"check", "rules", "../packaging/rules/runbook.yml", "testdata/valid.yml"},
		{"test", "rules", "../packaging/rules/runbook_test.yml", "testdata/unittest-pass.yml", "testdata/unittest-chain.yml"},
	} {
		out, err := exec.Command("promtool", args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestBuiltinRulePack(t *testing.T) {
	pack := LoadOptions{Pack: rulepack.Pack{}}
	groups, files, err := LoadFiles([]string{"builtin:runbook.yml"}, pack, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0] != "builtin:runbook.yml" || len(groups) == 0 {
		t.Fatalf("files %v, %d groups", files, len(groups))
	}
	if _, _, err := LoadFiles([]string{"builtin:nope.yml"}, pack, nil); err == nil || !strings.Contains(err.Error(), "builtin:runbook.yml") {
		t.Errorf("unknown builtin: err = %v, want one naming the pack", err)
	}
	if u := UnmatchedGlobs([]string{"builtin:runbook.yml"}, pack.Pack); len(u) != 0 {
		t.Errorf("builtin reported unmatched: %v", u)
	}
	// Without the pack, rules reads the disk only: the name is a path
	// that does not exist.
	if _, _, err := LoadFiles([]string{"builtin:runbook.yml"}, LoadOptions{}, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("builtin without a pack: err = %v, want a missing path", err)
	}
}

// TestLoadUnmatchedGlobs: a glob into an empty directory (the package's
// rules.d as shipped) is said at debug level only; one into a directory
// that does not exist is a warning, since it is likely a typo.
func TestLoadUnmatchedGlobs(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		name, glob string
		want       string
	}{
		{"empty drop-in directory", filepath.Join(empty, "*.yml"), `level=DEBUG msg="A rule_files glob matches no file"`},
		{"missing directory", filepath.Join(empty, "rules.d", "*.yml"), `level=WARN msg="A rule_files glob names a directory that does not exist; no rules are loaded from it"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			if _, err := Load([]string{tc.glob}, LoadOptions{}, logger); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), tc.want) || strings.Count(logs.String(), "msg=\"A rule_files glob") != 1 {
				t.Errorf("log:\n%s\nwant one line with %s", logs.String(), tc.want)
			}
		})
	}
}

// TestExprThreshold: the threshold an alert's value crosses is read from
// the expression's comparison with a number, through and/unless filters
// and parentheses, from either side; none where there is no such
// comparison.
func TestExprThreshold(t *testing.T) {
	for _, tc := range []struct {
		expr, want string // want "" for none
	}{
		{`100 * (node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes) / node_memory_MemTotal_bytes > 80`, "> 80"},
		{`100 * node_filesystem_avail_bytes / node_filesystem_size_bytes < 20 and node_filesystem_readonly == 0`, "< 20"},
		{`(rate(x[5m]) >= 0.5) unless y`, ">= 0.5"},
		{`80 < x`, "> 80"},
		{`x > -5`, "> -5"},
		{`tokpulse_probe_success == 0`, "== 0"},
		{`tokpulse_check_success{check="postgres"} == 0 or tokpulse_probe_success{probe="postgres_tcp"} == 0`, "== 0"},
		{`a > 1 or b > 2`, ""},
		{`x > bool 80`, ""},
		{`x > y`, ""},
		{`absent(up)`, ""},
		{`increase(tokpulse_log_matches_total{pattern="db_connection"}[5m]) > 0`, "> 0"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			e, err := newParser().ParseExpr(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if th := exprThreshold(e); th != nil {
				got = th.String()
			}
			if got != tc.want {
				t.Errorf("threshold %q, want %q", got, tc.want)
			}
		})
	}
}
