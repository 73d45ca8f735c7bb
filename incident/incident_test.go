package incident_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// tracker returns an in-memory Tracker delivering to d, at the clock *now.
func tracker(t *testing.T, d *recDelivery, now *time.Time) *incident.Tracker {
	t.Helper()
	tr, err := incident.New(incident.Options{Delivery: d, Policies: alert.DefaultPolicies(), Host: "web-1",
		Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func sample(name string, v float64) alert.Sample {
	return alert.Sample{Labels: labels.FromStrings("alertname", name, "probe", "health"),
		Annotations: map[string]string{"summary": name + " is failing"}, Value: v}
}

// TestPolicySequences: what the runbook's policy makes of an incident's
// life: no event while pending, the update cadence and the escalation
// steps while firing, one resolution.
func TestPolicySequences(t *testing.T) {
	p2 := alert.Rule{Group: "g", Name: "A", Severity: alert.P2}
	type step struct {
		at     time.Duration
		firing bool // the expression returns the alert
	}
	cases := []struct {
		name  string
		rule  alert.Rule
		steps []step
		want  string // kind/update/escalation per event
	}{
		{"pending alerts are not announced", alert.Rule{Group: "g", Name: "A", Severity: alert.P2, For: time.Hour},
			[]step{{0, true}, {time.Minute, true}, {2 * time.Minute, false}}, ""},
		{"P2 cadence 2h and escalation at 4h", p2, []step{
			{0, true}, {time.Hour, true}, {2 * time.Hour, true}, {4 * time.Hour, true}, {5 * time.Hour, true}, {6 * time.Hour, true},
		}, "initial/0/ update/1/ update/2/engineering-manager update/3/engineering-manager"},
		{"resolved then firing again is a new incident", p2, []step{
			{0, true}, {time.Minute, false}, {3 * time.Hour, true},
		}, "initial/0/ resolved/0/ initial/0/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &recDelivery{}
			now := t0
			tr := tracker(t, d, &now)
			tr.SetRules([]alert.Rule{tc.rule})
			for _, s := range tc.steps {
				now = t0.Add(s.at)
				var smp []alert.Sample
				if s.firing {
					smp = append(smp, sample("A", 1))
				}
				tr.Observe(now, tc.rule, smp, true)
				if err := tr.Commit(context.Background(), now); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, e := range d.events {
				got = append(got, fmt.Sprintf("%s/%d/%s", e.Kind, e.Update, e.Escalation))
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("events %q, want %q", strings.Join(got, " "), tc.want)
			}
			if len(d.events) >= 3 && d.events[0].IncidentID == d.events[2].IncidentID && tc.want == "initial/0/ resolved/0/ initial/0/" {
				t.Errorf("the second occurrence kept the first one's incident id %s", d.events[0].IncidentID)
			}
		})
	}
}

// TestGroupWaitAndFiring: an initial event carries the end of its
// severity's group_wait; Firing returns the initial event of every
// announced incident, with the original id, for an output added later.
func TestGroupWaitAndFiring(t *testing.T) {
	d := &recDelivery{}
	now := t0
	tr := tracker(t, d, &now)
	p1 := alert.Rule{Group: "g", Name: "Down", Severity: alert.P1}
	p3 := alert.Rule{Group: "g", Name: "Slow", Severity: alert.P3}
	tr.SetRules([]alert.Rule{p1, p3})
	tr.Observe(now, p1, []alert.Sample{sample("Down", 0)}, true)
	tr.Observe(now, p3, []alert.Sample{sample("Slow", 3)}, true)
	if err := tr.Commit(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if len(d.events) != 2 {
		t.Fatalf("events %+v", d.events)
	}
	byName := map[string]alert.Event{}
	for _, e := range d.events {
		byName[e.AlertName] = e
	}
	if !byName["Down"].HoldUntil.IsZero() || !byName["Slow"].HoldUntil.Equal(t0.Add(30*time.Second)) {
		t.Errorf("hold: P1 %s, P3 %s; want none and t0+30s (the runbook's P3 group_wait)", byName["Down"].HoldUntil, byName["Slow"].HoldUntil)
	}
	now = t0.Add(10 * time.Minute)
	firing := tr.Firing()
	if len(firing) != 2 || firing[0].AlertName != "Down" || firing[0].ID != byName["Down"].ID || firing[0].Kind != alert.KindInitial {
		t.Fatalf("firing %+v: want both initial events, most severe first, with their original ids", firing)
	}
}

// TestMigrateLegacyState upgrades a state file written by the version
// before the tracker (testdata/legacy-v0/README.md): the firing incident
// keeps its id and is neither announced again nor resolved without fresh
// data; when it truly ends, exactly one resolution follows.
func TestMigrateLegacyState(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/legacy-v0/state.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, state.FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	var initial alert.Event
	f, err := os.Open("testdata/legacy-v0/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &initial) != nil {
		t.Fatalf("reading the legacy initial event: %v", sc.Err())
	}
	f.Close()

	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := &recDelivery{}
	now := initial.StartedAt.Add(time.Minute)
	tr, err := incident.New(incident.Options{State: st, Delivery: d, Policies: alert.DefaultPolicies(), Host: "legacy-host",
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]alert.Alert{}
	for _, a := range tr.Alerts() {
		got[a.Name] = a
	}
	fire, pend := got["LegacyCheckFailing"], got["LegacyCheckFailingLong"]
	if fire.State != alert.StateFiring || fire.IncidentID != initial.IncidentID || !fire.Held {
		t.Fatalf("migrated firing incident %+v: want firing, held, incident %s", fire, initial.IncidentID)
	}
	if pend.State != alert.StatePending || !pend.Held {
		t.Fatalf("migrated pending alert %+v: want pending and held", pend)
	}
	_ = st.View(func(tx *state.Tx) error {
		if tx.Lookup("alerts") != nil || tx.Lookup("notify", "alerts") != nil {
			t.Error("the old buckets are still in the state file")
		}
		return nil
	})

	rule := alert.Rule{Group: "legacy", Name: "LegacyCheckFailing", Severity: alert.P1}
	long := alert.Rule{Group: "legacy", Name: "LegacyCheckFailingLong", Severity: alert.P2, For: time.Hour}
	tr.SetRules([]alert.Rule{rule, long})
	lset := func(name string) labels.Labels {
		return labels.FromStrings("alertname", name, "check", "db", "severity", map[string]string{"LegacyCheckFailing": "P1", "LegacyCheckFailingLong": "P2"}[name])
	}
	commit := func() {
		t.Helper()
		if err := tr.Commit(context.Background(), now); err != nil {
			t.Fatal(err)
		}
	}
	// Cold, then fresh and still failing: nothing to say.
	tr.Observe(now, rule, nil, false)
	tr.Observe(now, long, nil, false)
	commit()
	now = now.Add(time.Second)
	tr.Observe(now, rule, []alert.Sample{{Labels: lset("LegacyCheckFailing"), Value: 0}}, true)
	tr.Observe(now, long, []alert.Sample{{Labels: lset("LegacyCheckFailingLong"), Value: 0}}, true)
	commit()
	if len(d.events) != 0 {
		t.Fatalf("after the upgrade: %+v, want no event (the incident was announced by the old version)", d.events)
	}
	if a := tr.Alerts(); a[0].Fingerprint != initial.Fingerprint {
		t.Fatalf("fingerprint %s, want the old version's %s", a[0].Fingerprint, initial.Fingerprint)
	}
	// Recovery: one resolution, with the id a receiver can predict.
	now = now.Add(time.Second)
	tr.Observe(now, rule, nil, true)
	tr.Observe(now, long, nil, true)
	commit()
	if len(d.events) != 1 || d.events[0].Kind != alert.KindResolved || d.events[0].IncidentID != initial.IncidentID {
		t.Fatalf("after recovery: %+v, want one resolution of incident %s", d.events, initial.IncidentID)
	}
	if want := alert.EventID("legacy-host", initial.Fingerprint, fire.ActiveAt, alert.KindResolved, 0); d.events[0].ID != want {
		t.Fatalf("resolution id %s, want %s", d.events[0].ID, want)
	}
}
