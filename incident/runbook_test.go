package incident_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

func TestRunbookURL(t *testing.T) {
	const base = "https://github.com/example/tokpulse/blob/main/docs/INCIDENT_RUNBOOK.md"
	for _, tc := range []struct {
		name, base string
		anns       map[string]string
		want       string
	}{
		{"section anchor", base, map[string]string{"runbook": "High Memory Usage"}, base + "#high-memory-usage"},
		{"punctuation dropped as GitHub does", base, map[string]string{"runbook": "5. Post-Incident Review"}, base + "#5-post-incident-review"},
		{"a base's own anchor is replaced", base + "#top", map[string]string{"runbook": "Webhook Failures"}, base + "#webhook-failures"},
		{"the rule's runbook_url wins", base, map[string]string{"runbook": "Webhook Failures", "runbook_url": "https://wiki.example.com/webhooks"}, "https://wiki.example.com/webhooks"},
		{"a runbook annotation that is a URL", "", map[string]string{"runbook": "https://wiki.example.com/db"}, "https://wiki.example.com/db"},
		{"a runbook_url that is no URL is ignored", base, map[string]string{"runbook": "Log Analysis", "runbook_url": "see the wiki"}, base + "#log-analysis"},
		{"no base: no link", "", map[string]string{"runbook": "High Memory Usage"}, ""},
		{"no section: no link", base, map[string]string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := incident.RunbookURL(tc.base, tc.anns); got != tc.want {
				t.Errorf("RunbookURL = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRunbookSectionsExist: every runbook annotation of the shipped rule
// packs names a heading of the runbook, so that every link lands on its
// section (testdata/runbook-headings.md holds the runbook's headings).
func TestRunbookSectionsExist(t *testing.T) {
	f, err := os.Open("testdata/runbook-headings.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var anchors []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if h, ok := strings.CutPrefix(sc.Text(), "#"); ok {
			anchors = append(anchors, incident.Slug(strings.TrimLeft(h, "# ")))
		}
	}
	if !slices.Contains(anchors, "p1---critical-response-15-minutes") {
		t.Fatalf("GitHub's slug of \"P1 - Critical (Response: 15 minutes)\" is p1---critical-response-15-minutes; got %v", anchors)
	}
	root := testutil.RepoRoot(t)
	var files []string
	for _, pattern := range []string{"packaging/rules/*.yml", "packaging/rules/self/*.yml", "packaging/prometheus/*.yml"} {
		m, _ := filepath.Glob(filepath.Join(root, pattern))
		files = append(files, m...)
	}
	n := 0
	for _, file := range files {
		if strings.HasSuffix(file, "_test.yml") {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var pack struct {
			Groups []struct {
				Rules []struct {
					Alert       string            `yaml:"alert"`
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(data, &pack); err != nil {
			t.Fatal(err)
		}
		for _, g := range pack.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				section := r.Annotations["runbook"]
				if !slices.Contains(anchors, incident.Slug(section)) {
					t.Errorf("%s: %s: runbook %q is not a heading of the runbook (#%s)", filepath.Base(file), r.Alert, section, incident.Slug(section))
				}
				n++
			}
		}
	}
	if n < 20 {
		t.Fatalf("checked %d alerting rules; the packs have more", n)
	}
}

// TestEventSaysWhatToDo: the tracker's events carry the link to the
// rule's runbook section, the unit and threshold of its value (from the
// annotations, else from the expression), and the evidence its source
// marked as explaining the alert; notify.runbook_url changes on reload.
func TestEventSaysWhatToDo(t *testing.T) {
	d := &recDelivery{}
	now := t0
	ev := &subjectEvidence{}
	tr, err := incident.New(incident.Options{Delivery: d, Policies: alert.DefaultPolicies(), Host: "web-1", Evidence: ev,
		RunbookURL: "https://git.example.com/INCIDENT_RUNBOOK.md", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	mem := alert.Rule{Group: "g", Name: "TokPulseHighMemoryUsage", Severity: alert.P2,
		Reads: []string{"node_memory_MemAvailable_bytes"}, Threshold: &alert.Threshold{Op: ">", Value: 80}}
	probe := alert.Rule{Group: "g", Name: "TokPulseHealthCheckFailed", Severity: alert.P1,
		Reads: []string{"tokpulse_probe_success"}, Threshold: &alert.Threshold{Op: "==", Value: 0}}
	tr.SetRules([]alert.Rule{mem, probe})
	tr.Observe(now, mem, []alert.Sample{{Labels: labels.FromStrings("alertname", mem.Name, "severity", "P2"),
		Annotations: map[string]string{"runbook": "High Memory Usage", "unit": "%", "threshold": "> 80"}, Value: 86.25}}, true)
	tr.Observe(now, probe, []alert.Sample{{Labels: labels.FromStrings("alertname", probe.Name, "severity", "P1", "probe", "health"),
		Annotations: map[string]string{"runbook": "Complete Service Outage"}, Value: 0}}, true)
	if err := tr.Commit(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	byName := map[string]alert.Event{}
	for _, e := range d.events {
		byName[e.AlertName] = e
	}
	m := byName[mem.Name]
	if m.RunbookURL != "https://git.example.com/INCIDENT_RUNBOOK.md#high-memory-usage" || m.Unit != "%" || m.Condition() != "86.2 % > 80 %" {
		t.Errorf("memory event: runbook_url %q, unit %q, condition %q", m.RunbookURL, m.Unit, m.Condition())
	}
	p := byName[probe.Name]
	if p.Threshold == nil || *p.Threshold != (alert.Threshold{Op: "==", Value: 0}) || p.Condition() != "" {
		t.Errorf("probe event: threshold %v (want the expression's == 0), condition %q (want none)", p.Threshold, p.Condition())
	}
	if len(p.KeyEvidence()) != 1 || p.KeyEvidence()[0].Title != "about probe=health" {
		t.Errorf("probe event's key evidence: %+v", p.KeyEvidence())
	}
	// The evidence source was told which metrics each rule reads.
	if !slices.Contains(ev.metrics[mem.Name], "node_memory_MemAvailable_bytes") {
		t.Errorf("evidence subjects: %v", ev.metrics)
	}

	tr.SetRunbookURL("")
	now = now.Add(3 * time.Hour)
	tr.Observe(now, mem, nil, true)
	if err := tr.Commit(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if last := d.last(); last.Kind != alert.KindResolved || last.RunbookURL != "" || last.Condition() != "86.2 % > 80 %" {
		t.Errorf("resolved event after runbook_url was removed: kind %s, runbook_url %q, condition %q", last.Kind, last.RunbookURL, last.Condition())
	}
}

// subjectEvidence records what it is asked for and returns, per alert,
// one section marked relevant that names the alert's labels.
type subjectEvidence struct{ metrics map[string][]string }

func (s *subjectEvidence) Snapshot(_ context.Context, subjects []evidence.Subject) [][]evidence.Section {
	if s.metrics == nil {
		s.metrics = map[string][]string{}
	}
	out := make([][]evidence.Section, len(subjects))
	for i, sub := range subjects {
		s.metrics[sub.Labels["alertname"]] = sub.Metrics
		title := "about"
		if p := sub.Labels["probe"]; p != "" {
			title += " probe=" + p
		}
		out[i] = []evidence.Section{{Source: "test", Kind: "test", Title: title, Relevant: true, Entries: []evidence.Entry{{Text: "x"}}}}
	}
	return out
}
