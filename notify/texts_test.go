package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/golden"
	"github.com/tokpulse/tokpulse-agent/rules"
)

// The texts golden file and where docs/webhook.md shows each text: after
// a line "<!-- text: NAME -->", in a ```text block.
const (
	textsGolden = "testdata/texts.golden"
	textsDoc    = "docs/webhook.md"
)

// TestRunbookTexts renders the default texts of real events: the shipped
// rule pack (packaging/rules/runbook.yml) evaluated by the rule engine
// over a timeline of samples, the incident tracker deciding the events,
// the host evidence read from a fixture /proc (testdata/texts/proc: a
// host with 86 % of its memory used, mostly by node) beside collector
// sections in the collectors' own formats (testdata/texts/evidence.json:
// the health probe's 503 with its body, another probe's failure, the app
// log's lines), and the default templates. The result must equal
// testdata/texts.golden (go test -run TestRunbookTexts -update rewrites
// it), and every text must appear in docs/webhook.md as it is, so that
// the documentation shows what operators receive.
//
// What issue 15 asked for, checked here besides the golden: each text
// carries the rule's first steps, the value against its threshold (never
// "value 0"), a link to the runbook section, the evidence that explains
// the alert (and none of another's), and a resolution that says what
// recovered without instructions under "Root Cause".
func TestRunbookTexts(t *testing.T) {
	texts := renderRunbookTexts(t)
	var all strings.Builder
	for _, x := range texts {
		fmt.Fprintf(&all, "=== %s ===\n%s\n", x.name, x.text)
	}
	// The texts in docs/webhook.md are checked below: after -update, copy
	// the changed ones there.
	golden.Compare(t, textsGolden, all.String(), "go test ./notify -run TestRunbookTexts")

	byName := map[string]string{}
	for _, x := range texts {
		byName[x.name] = x.text
	}
	for name, checks := range map[string]struct{ has, hasNot []string }{
		"initial TokPulseHealthCheckFailed": {
			has: []string{"Runbook: Complete Service Outage – https://github.com/example/tokpulse/blob/main/docs/INCIDENT_RUNBOOK.md#complete-service-outage",
				"First steps: The /health endpoint", "status=503", `body: {"status":"error","database":"unreachable"}`},
			hasNot: []string{"value 0", "probe performance", "Filesystems", "Top processes"},
		},
		"resolved TokPulseHealthCheckFailed": {
			has:    []string{"Duration: 4m", "Recovered: TokPulseHealthCheckFailed on web-1 no longer fires; it was: TokPulse health check is failing", "Root Cause: not determined"},
			hasNot: []string{"curl", "systemctl", "follow"},
		},
		"initial TokPulseHighMemoryUsage": {
			has:    []string{"Alert: TokPulseHighMemoryUsage on web-1: 86.2 % > 80 %", "Memory and swap (free -h)", "Top processes by memory", "node /srv/tokpulse/server.js", "#high-memory-usage"},
			hasNot: []string{"probe health", "Filesystems"},
		},
		"update TokPulseHighMemoryUsage": {has: []string{"still firing on web-1 (91.2 % > 80 %)"}},
		"resolved TokPulseHighMemoryUsage": {
			has: []string{"Duration: 2h25m", "(last seen: 91.2 % > 80 %)"},
		},
		"initial TokPulseDatabaseConnectionErrors": {
			has: []string{": 3 matching lines in 5m", "Last 3 lines of app matching db_connection", "ECONNREFUSED"},
		},
	} {
		text, ok := byName[name]
		if !ok {
			t.Errorf("no %s text", name)
			continue
		}
		for _, s := range checks.has {
			if !strings.Contains(text, s) {
				t.Errorf("%s lacks %q:\n%s", name, s, text)
			}
		}
		for _, s := range checks.hasNot {
			if strings.Contains(text, s) {
				t.Errorf("%s has %q:\n%s", name, s, text)
			}
		}
	}

	// docs/webhook.md shows every text, each under its marker.
	doc, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), textsDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range texts {
		block := "<!-- text: " + x.name + " -->\n\n```text\n" + x.text + "\n```\n"
		if !strings.Contains(string(doc), block) {
			t.Errorf("%s does not show the %s text as rendered; it should read\n%s", textsDoc, x.name, block)
		}
	}
	if n := strings.Count(string(doc), "<!-- text: "); n != len(texts) {
		t.Errorf("%s has %d text markers, the golden file %d texts", textsDoc, n, len(texts))
	}
}

type namedText struct{ name, text string }

// runbookClock is the timeline's start: 2026-11-27 05:35:50 UTC.
var runbookClock = time.Date(2026, 11, 27, 5, 35, 50, 0, time.UTC)

// renderRunbookTexts runs the timeline and renders every event.
func renderRunbookTexts(t *testing.T) []namedText {
	t.Helper()
	now := runbookClock
	sections := collectorEvidence(t, now)
	var events []alert.Event
	tr, err := incident.New(incident.Options{
		Policies: alert.DefaultPolicies(), Host: "web-1", Version: "1.4.0",
		RunbookURL: "https://github.com/example/tokpulse/blob/main/docs/INCIDENT_RUNBOOK.md",
		Evidence: &collectors.HostEvidence{Proc: "testdata/texts/proc", Rootfs: "testdata/texts",
			Providers: func() []evidence.Provider { return []evidence.Provider{sections} }, Now: func() time.Time { return now }},
		Delivery: deliveryFunc(func(evs []alert.Event) { events = append(events, evs...) }),
		Now:      func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	const step = time.Minute
	m := rules.NewManager(rules.Options{Tracker: tr, Interval: step})
	rs, err := rules.Load([]string{filepath.Join(testutil.RepoRoot(t), "packaging", "rules", "runbook.yml")}, rules.LoadOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Swap(rs, step)

	// The timeline, minute by minute: /health fails for 4 minutes; the
	// app log shows 3 database connection errors at 2m; memory is 86.2 %
	// used from the start, 91.2 % from 1h, 60 % from 2h30m.
	const total = 8039428 * 1024
	for i := 0; i <= 160; i++ {
		at := time.Duration(i) * step
		health, dbErrors, available := 0.0, 0.0, 1109440.0*1024
		if at >= 4*step {
			health = 1
		}
		if at >= 2*step {
			dbErrors = 3
		}
		if at >= time.Hour {
			available = total * (1 - 0.912)
		}
		if at >= 150*step {
			available = total * 0.4
		}
		mfs := []*dto.MetricFamily{
			family("tokpulse_probe_success", dto.MetricType_GAUGE, health, "probe", "health"),
			family("tokpulse_log_matches_total", dto.MetricType_COUNTER, dbErrors, "source", "app", "pattern", "db_connection"),
			family("node_memory_MemTotal_bytes", dto.MetricType_GAUGE, total),
			family("node_memory_MemAvailable_bytes", dto.MetricType_GAUGE, available),
		}
		ctx := context.Background()
		m.Ingest(now, mfs)
		if err := m.Evaluate(ctx, now); err != nil {
			t.Fatal(err)
		}
		if err := tr.Commit(ctx, now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(step)
	}

	tmpl, err := loadTemplates()
	if err != nil {
		t.Fatal(err)
	}
	var out []namedText
	for i := range events {
		e := &events[i]
		out = append(out, namedText{name: string(e.Kind) + " " + e.AlertName, text: tmpl.render(e)})
	}
	return out
}

// collectorEvidence reads testdata/texts/evidence.json: sections as the
// probe and log collectors make them, whose times are given in seconds
// before now.
func collectorEvidence(t *testing.T, now time.Time) provider {
	t.Helper()
	data, err := os.ReadFile("testdata/texts/evidence.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw []struct {
		evidence.Section
		Ago     []int `json:"entries_ago_seconds"`
		Entries []struct {
			Text string `json:"text"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	var out provider
	for _, r := range raw {
		s := r.Section
		s.Entries = nil
		for i, e := range r.Entries {
			s.Entries = append(s.Entries, evidence.Entry{Time: now.Add(-time.Duration(r.Ago[i]) * time.Second), Text: e.Text})
		}
		out = append(out, s)
	}
	return out
}

type provider []evidence.Section

func (p provider) Evidence() []evidence.Section { return p }

// deliveryFunc is an incident.Delivery that hands events to a function.
type deliveryFunc func([]alert.Event)

func (f deliveryFunc) Enqueue(_ context.Context, evs []alert.Event) error {
	f(evs)
	return nil
}

// family is one metric family with one series.
func family(name string, typ dto.MetricType, v float64, labelPairs ...string) *dto.MetricFamily {
	m := &dto.Metric{}
	for i := 0; i+1 < len(labelPairs); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(labelPairs[i]), Value: proto.String(labelPairs[i+1])})
	}
	switch typ {
	case dto.MetricType_COUNTER:
		m.Counter = &dto.Counter{Value: proto.Float64(v)}
	default:
		m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
	}
	return &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum(), Metric: []*dto.Metric{m}}
}
