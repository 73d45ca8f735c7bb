package notify

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// TestHandoverSequences: which events a sequence of hand-overs produces.
func TestHandoverSequences(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	a := firing("A", alert.P2, t0)
	again := firing("A", alert.P2, at(3*time.Hour))
	pending := a
	pending.State = alert.StatePending
	type step struct {
		now    time.Duration
		alerts []alert.Alert
	}
	cases := []struct {
		name  string
		steps []step
		want  string // kind/update/escalation per event
	}{
		{"pending alerts are not announced", []step{{0, []alert.Alert{pending}}}, ""},
		{"a resolution never announced says nothing", []step{{0, []alert.Alert{resolved(a, t0)}}}, ""},
		{"P2 cadence 2h and escalation at 4h", []step{
			{0, []alert.Alert{a}}, {time.Hour, []alert.Alert{a}}, {2 * time.Hour, []alert.Alert{a}},
			{4 * time.Hour, []alert.Alert{a}}, {5 * time.Hour, []alert.Alert{a}}, {6 * time.Hour, []alert.Alert{a}},
		}, "initial/0/ update/1/ update/2/engineering-manager update/3/engineering-manager"},
		{"a new occurrence closes an unresolved old one", []step{
			{0, []alert.Alert{a}}, {3 * time.Hour, []alert.Alert{again}},
		}, "initial/0/ resolved/0/ initial/0/"},
		{"resolved then firing again is a new incident", []step{
			{0, []alert.Alert{a}}, {time.Minute, []alert.Alert{resolved(a, at(time.Minute))}}, {3 * time.Hour, []alert.Alert{again}},
		}, "initial/0/ resolved/0/ initial/0/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t, t.TempDir())
			defer st.Close()
			cfg := testConfig()
			cfg.Files = []FileConfig{{Path: "-"}}
			m, err := New(cfg, testPolicies(), Options{Store: st, Host: "h", Version: "v"})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.steps {
				if err := m.Alerts(context.Background(), t0.Add(s.now), s.alerts); err != nil {
					t.Fatal(err)
				}
			}
			evs, err := m.box.pending("stdout", 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range evs {
				got = append(got, fmt.Sprintf("%s/%d/%s", e.Event.Kind, e.Event.Update, e.Event.Escalation))
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("events %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}

// TestNonFiniteValue: a NaN sample (an error ratio over zero requests) must
// not make the hand-over fail.
func TestNonFiniteValue(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	cfg := testConfig()
	cfg.Files = []FileConfig{{Path: "-"}}
	m, err := New(cfg, testPolicies(), Options{Store: st, Host: "h", Version: "v"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		a := firing(fmt.Sprintf("R%d", i), alert.P2, now)
		a.Value = v
		if err := m.Alerts(context.Background(), now, []alert.Alert{a}); err != nil {
			t.Fatalf("value %v: %v", v, err)
		}
	}
	evs, _ := m.box.pending("stdout", 10)
	if len(evs) != 3 || evs[0].Event.Value != nil {
		t.Fatalf("events %+v", evs)
	}
}
