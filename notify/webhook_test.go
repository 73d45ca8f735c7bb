package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// TestWebhookLifecycle follows two alerts that start together through
// initial, update (cadence and escalation) and resolution, checking every
// body against the schema, the signature, the headers, the order and the
// rendered runbook texts.
func TestWebhookLifecycle(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t, "s3cret")
	cfg := testConfig()
	wh := webhookConfig(rc.srv.URL+"/hook", writeFile(t, dir, "secret", "s3cret\n"))
	wh.BearerTokenFile = yamlx.SecretFile(writeFile(t, dir, "token", "tok-123"))
	wh.Headers = map[string]string{"X-Team": "payments"}
	cfg.Webhooks = []WebhookConfig{wh}
	reg := prometheus.NewRegistry()
	m := startManager(t, dir+"/state", cfg, testPolicies(), Options{Metrics: NewMetrics(reg)})

	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	db := firing("DatabaseDown", alert.P1, t0)
	db.Evidence = []evidence.Section{{Source: "check/postgres", Kind: "check_output", Title: "psql SELECT 1",
		Entries: []evidence.Entry{{Time: t0, Text: "connection refused"}}}}
	mem := firing("HighMemory", alert.P2, t0)
	ctx := context.Background()
	steps := []struct {
		at     time.Duration
		alerts []alert.Alert
	}{
		{0, []alert.Alert{db, mem}},                // two initials, one POST
		{10 * time.Minute, []alert.Alert{db, mem}}, // nothing due
		{16 * time.Minute, []alert.Alert{db, mem}}, // P1 reaches engineering-manager
		{45 * time.Minute, []alert.Alert{db, mem}}, // not yet 30m since the last update
		{46 * time.Minute, []alert.Alert{db, mem}}, // P1 update cadence (30m)
		{50 * time.Minute, []alert.Alert{resolved(db, t0.Add(50*time.Minute)), mem}},
		{51 * time.Minute, []alert.Alert{resolved(db, t0.Add(50*time.Minute)), mem}}, // repeated hand-over
	}
	wantKinds := []string{"initial DatabaseDown", "initial HighMemory", "update DatabaseDown", "update DatabaseDown", "resolved DatabaseDown"}
	for i, s := range steps {
		if err := m.Alerts(ctx, t0.Add(s.at), s.alerts); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// Wait for the first POST so the test also checks the grouping.
			testutil.Eventually(t, 5*time.Second, "first POST", func() bool { return len(rc.requests()) >= 1 })
		}
	}
	testutil.Eventually(t, 5*time.Second, "all events", func() bool { return len(rc.events(nil)) >= len(wantKinds) })

	reqs := rc.requests()
	first := rc.check(reqs[0])
	if len(first) != 2 {
		t.Errorf("alerts that start together should share one POST; first POST had %d events", len(first))
	}
	for _, r := range reqs {
		if r.Header.Get("Authorization") != "Bearer tok-123" || r.Header.Get("X-Team") != "payments" {
			t.Errorf("missing bearer token or custom header: %v", r.Header)
		}
		if ts, err := strconv.ParseInt(r.Header.Get(HeaderTimestamp), 10, 64); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
			t.Errorf("%s = %q, want the unix time of sending", HeaderTimestamp, r.Header.Get(HeaderTimestamp))
		}
	}
	evs := rc.events(nil)
	var got []string
	for _, e := range evs {
		got = append(got, string(e.Kind)+" "+e.AlertName)
	}
	if strings.Join(got, "|") != strings.Join(wantKinds, "|") {
		t.Fatalf("events\n got %v\nwant %v", got, wantKinds)
	}
	init := evs[0]
	if !strings.HasPrefix(init.Text, "🚨 INCIDENT ALERT\nSeverity: P1\nService: TokPulse\nStatus: Investigating\nImpact: DatabaseDown is failing") {
		t.Errorf("initial text:\n%s", init.Text)
	}
	if init.ID != alert.EventID("web-1", fp(db), t0, alert.KindInitial, 0) || len(init.Evidence) != 1 || init.Host != "web-1" || init.AgentVersion != "1.2.3" {
		t.Errorf("initial event: %+v", init)
	}
	if evs[2].Escalation != "engineering-manager" || evs[2].Update != 1 || !strings.Contains(evs[2].Text, "📊 INCIDENT UPDATE") || !strings.Contains(evs[2].Text, "escalated to engineering-manager") {
		t.Errorf("escalation update: %+v\n%s", evs[2], evs[2].Text)
	}
	if evs[3].Update != 2 {
		t.Errorf("cadence update number %d, want 2", evs[3].Update)
	}
	res := evs[4]
	if res.Status != "resolved" || res.DurationSeconds == nil || *res.DurationSeconds != 3000 || !strings.Contains(res.Text, "✅ INCIDENT RESOLVED") || !strings.Contains(res.Text, "Duration: 50m (") {
		t.Errorf("resolved event: %+v\n%s", res, res.Text)
	}
	if res.IncidentID != init.IncidentID {
		t.Errorf("incident id changed: %s vs %s", res.IncidentID, init.IncidentID)
	}
	testutil.Eventually(t, 5*time.Second, "outbox empty", func() bool {
		st, err := m.Status()
		return err == nil && st.Outputs["central"].Pending == 0 && st.Events == 0
	})
	testutil.Eventually(t, 5*time.Second, "tokpulse_notifications_total{result=success} = 5", func() bool {
		return promtestutil.ToFloat64(m.opts.Metrics.notifications.WithLabelValues("central", ResultSuccess)) == 5
	})
}

// TestWebhookFailures drives one output against receivers that fail in
// each of the ways a real one does; every event must arrive in the end,
// except the one refused for good, which must be set aside and visible.
func TestWebhookFailures(t *testing.T) {
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	refusedID := alert.EventID("web-1", fp(firing("Refused", alert.P3, t0)), t0, alert.KindInitial, 0)
	cases := []struct {
		name string
		// setup returns the URL and a function that makes the receiver
		// healthy again (nil: it recovers by itself).
		setup   func(t *testing.T, rc *receiver) (url string, heal func())
		timeout time.Duration
		// deadID: the receiver refuses the event with this alert name.
		dead string
	}{
		{name: "500 for a while", setup: func(t *testing.T, rc *receiver) (string, func()) {
			rc.setRespond(func(n int, w http.ResponseWriter, _ *http.Request) bool {
				if n < 3 {
					http.Error(w, "boom", http.StatusInternalServerError)
					return true
				}
				return false
			})
			return rc.srv.URL, nil
		}},
		{name: "refuses connections", setup: func(t *testing.T, rc *receiver) (string, func()) {
			addr := testutil.FreeAddr(t)
			return "http://" + addr + "/hook", func() {
				ln := listenRetry(t, addr)
				srv := &http.Server{Handler: http.HandlerFunc(rc.Serve)}
				go func() { _ = srv.Serve(ln) }()
				t.Cleanup(func() { _ = srv.Close() })
			}
		}},
		{name: "hangs", timeout: 200 * time.Millisecond, setup: func(t *testing.T, rc *receiver) (string, func()) {
			rc.setRespond(func(n int, w http.ResponseWriter, r *http.Request) bool {
				if n < 2 {
					<-r.Context().Done() // never answers; the client times out
					return true
				}
				return false
			})
			return rc.srv.URL, nil
		}},
		{name: "400 for one event", dead: "Refused", setup: func(t *testing.T, rc *receiver) (string, func()) {
			rc.setRespond(func(_ int, w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.Header.Get(HeaderEventID), refusedID) {
					http.Error(w, "unknown team", http.StatusBadRequest)
					return true
				}
				return false
			})
			return rc.srv.URL, nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rc := newReceiver(t, "k")
			url, heal := tc.setup(t, rc)
			cfg := testConfig()
			wh := webhookConfig(url, writeFile(t, dir, "secret", "k"))
			if tc.timeout > 0 {
				wh.Timeout = yamlx.Duration(tc.timeout)
			}
			cfg.Webhooks = []WebhookConfig{wh}
			reg := prometheus.NewRegistry()
			m := startManager(t, dir+"/state", cfg, testPolicies(), Options{Metrics: NewMetrics(reg)})
			a := []alert.Alert{firing("One", alert.P2, t0)}
			if tc.dead != "" {
				a = []alert.Alert{firing("One", alert.P2, t0), firing(tc.dead, alert.P3, t0), firing("Two", alert.P1, t0)}
			}
			if err := m.Alerts(context.Background(), t0, a); err != nil {
				t.Fatal(err)
			}
			if heal != nil {
				testutil.Eventually(t, 5*time.Second, "a failed attempt", func() bool {
					return promtestutil.ToFloat64(m.opts.Metrics.notifications.WithLabelValues("central", ResultRetry)) >= 2
				})
				st, _ := m.Status()
				if st.Outputs["central"].Pending != 1 {
					t.Fatalf("pending while the receiver is down = %d, want 1", st.Outputs["central"].Pending)
				}
				heal()
			}
			testutil.Eventually(t, 10*time.Second, "delivery", func() bool {
				st, err := m.Status()
				return err == nil && st.Outputs["central"].Pending == 0
			})
			// The requests answered 2xx are those after the failures.
			var names []string
			for i, r := range rc.requests() {
				if tc.dead != "" && strings.Contains(r.Header.Get(HeaderEventID), refusedID) {
					continue
				}
				if tc.name == "500 for a while" && i < 3 || tc.name == "hangs" && i < 2 {
					continue
				}
				for _, e := range rc.check(r) {
					names = append(names, e.AlertName)
				}
			}
			want := "One"
			if tc.dead != "" {
				want = "Two,One" // most severe first, as the tracker hands them on
			}
			if strings.Join(names, ",") != want {
				t.Errorf("delivered %v, want %s", names, want)
			}
			if v := promtestutil.ToFloat64(m.opts.Metrics.notifications.WithLabelValues("central", ResultRetry)); tc.dead == "" && v < 1 {
				t.Errorf("no retry counted")
			}
			st, _ := m.Status()
			dl := st.Outputs["central"].DeadLetters
			if tc.dead != "" {
				if len(dl) != 1 || dl[0].Alert != tc.dead || !strings.Contains(dl[0].Reason, "400") {
					t.Fatalf("dead letters %+v, want one for %s", dl, tc.dead)
				}
				// The dead letter is written, then counted.
				testutil.Eventually(t, 5*time.Second, "dead_letter counted once", func() bool {
					return promtestutil.ToFloat64(m.opts.Metrics.notifications.WithLabelValues("central", ResultDeadLetter)) == 1
				})
				if n, err := promtestutil.GatherAndCount(reg, "tokpulse_outbox_dead_letters"); err != nil || n != 1 {
					t.Errorf("tokpulse_outbox_dead_letters series %d %v", n, err)
				}
				body, _ := json.Marshal(st)
				if !strings.Contains(string(body), `"dead_letters":[{`) {
					t.Errorf("status JSON lacks the dead letter: %s", body)
				}
				// The operator fixes the receiver and requeues.
				rc.setRespond(nil)
				if n, err := m.Requeue("central"); err != nil || n != 1 {
					t.Fatalf("Requeue = %d, %v; want 1", n, err)
				}
				testutil.Eventually(t, 5*time.Second, "the requeued event", func() bool {
					st, _ := m.Status()
					return st.Outputs["central"].Pending == 0 && len(st.Outputs["central"].DeadLetters) == 0 && st.Events == 0
				})
			} else if len(dl) != 0 {
				t.Errorf("unexpected dead letters %+v", dl)
			}
		})
	}
}

// TestRetryAfter: a 503 with Retry-After: 2 must hold the next attempt back
// for at least two seconds, although the backoff alone would retry sooner.
func TestRetryAfter(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t, "")
	rc.setRespond(func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n == 0 {
			w.Header().Set("Retry-After", "2")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	cfg := testConfig()
	cfg.Webhooks = []WebhookConfig{webhookConfig(rc.srv.URL, "")}
	m := startManager(t, dir, cfg, testPolicies(), Options{})
	if err := m.Alerts(context.Background(), time.Now(), []alert.Alert{firing("Busy", alert.P1, time.Now())}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "second attempt", func() bool { return len(rc.requests()) >= 2 })
	r := rc.requests()
	if gap := r[1].At.Sub(r[0].At); gap < 2*time.Second {
		t.Fatalf("retried after %s despite Retry-After: 2", gap)
	}
	if len(r) != 2 {
		t.Fatalf("%d requests, want 2", len(r))
	}
}

// TestBodyTemplate posts Slack-style {"text": ...} bodies.
func TestBodyTemplate(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t, "")
	cfg := testConfig()
	wh := webhookConfig(rc.srv.URL, "")
	wh.BodyTemplate = `{"text": {{ json .Text }}}`
	cfg.Webhooks = []WebhookConfig{wh}
	m := startManager(t, dir, cfg, testPolicies(), Options{})
	t0 := time.Now()
	if err := m.Alerts(context.Background(), t0, []alert.Alert{firing("A", alert.P1, t0), firing("B", alert.P2, t0)}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "two posts", func() bool { return len(rc.requests()) >= 2 })
	for i, r := range rc.requests() {
		var msg map[string]string
		if err := json.Unmarshal(r.Body, &msg); err != nil || len(msg) != 1 || !strings.HasPrefix(msg["text"], "🚨 INCIDENT ALERT") {
			t.Errorf("post %d: %s (%v)", i, r.Body, err)
		}
	}
}

// TestGroupWait: P3 alerts starting within their group_wait leave in one
// POST, and a P1 that starts meanwhile is not held back by them.
func TestGroupWait(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t, "")
	cfg := testConfig()
	cfg.Webhooks = []WebhookConfig{webhookConfig(rc.srv.URL, "")}
	pol := testPolicies()
	pol.P3.GroupWait = yamlx.Duration(time.Second)
	m := startManager(t, dir, cfg, pol, Options{})
	ctx := context.Background()
	now := time.Now()
	if err := m.Alerts(ctx, now, []alert.Alert{firing("DiskA", alert.P3, now)}); err != nil {
		t.Fatal(err)
	}
	if err := m.Alerts(ctx, time.Now(), []alert.Alert{firing("Outage", alert.P1, now)}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the P1", func() bool { return len(rc.requests()) == 1 })
	if err := m.Alerts(ctx, time.Now(), []alert.Alert{firing("DiskB", alert.P3, now)}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the P3 group", func() bool { return len(rc.requests()) == 2 })
	reqs := rc.requests()
	p1 := rc.check(reqs[0])
	if len(p1) != 1 || p1[0].AlertName != "Outage" {
		t.Fatalf("first POST %v, want the P1 alone", p1)
	}
	if d := reqs[0].At.Sub(now); d > 900*time.Millisecond {
		t.Errorf("the P1 waited %s behind the P3 group_wait", d)
	}
	group := rc.check(reqs[1])
	if len(group) != 2 || group[0].AlertName != "DiskA" || group[1].AlertName != "DiskB" {
		t.Fatalf("second POST %+v, want DiskA and DiskB together", group)
	}
	if d := reqs[1].At.Sub(now); d < time.Second {
		t.Errorf("the P3 group left after %s, before its group_wait", d)
	}
}
