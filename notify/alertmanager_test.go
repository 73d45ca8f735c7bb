package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// TestAlertmanagerReal fires an alert into a real Alertmanager (plus a
// recording second replica), sees it there with the right labels and
// generatorURL, sees it re-posted, and sees it resolved after the agent
// resolves it.
func TestAlertmanagerReal(t *testing.T) {
	am := testutil.StartAlertmanager(t)
	replica := newReceiver(t, "")
	replica.setRespond(func(_ int, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/api/v2/alerts" {
			http.NotFound(w, r)
			return true
		}
		return false
	})
	cfg := testConfig()
	cfg.Alertmanagers = []AlertmanagerConfig{{Name: "team-am", URLs: []string{am, replica.srv.URL},
		ResendInterval: yamlx.Duration(300 * time.Millisecond), Timeout: yamlx.Duration(5 * time.Second), MaxBatch: 100}}
	m := startManager(t, t.TempDir(), cfg, testPolicies(), Options{ExternalURL: "http://web-1:9847"})

	t0 := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	a := firing("PaymentsFailing", alert.P1, t0)
	if err := m.Alerts(context.Background(), t0, []alert.Alert{a}); err != nil {
		t.Fatal(err)
	}
	var got testutil.AMAlert
	testutil.Eventually(t, 10*time.Second, "the alert in Alertmanager", func() bool {
		for _, x := range testutil.AlertmanagerAlerts(t, am) {
			if x.Labels["alertname"] == "PaymentsFailing" {
				got = x
				return true
			}
		}
		return false
	})
	want := map[string]string{"alertname": "PaymentsFailing", "severity": "P1", "probe": "health", "host": "web-1"}
	if fmt.Sprint(got.Labels) != fmt.Sprint(want) {
		t.Errorf("labels %v, want %v", got.Labels, want)
	}
	if got.GeneratorURL != "http://web-1:9847/api/v1/alerts" || got.Annotations["summary"] != "PaymentsFailing is failing" || !got.StartsAt.Equal(t0) || got.Status.State != "active" ||
		got.Annotations["runbook_url"] != testRunbookURL+"#database-connection-issues" {
		t.Errorf("alert %+v", got)
	}
	// Re-posted while active: the replica sees more than the first post.
	testutil.Eventually(t, 10*time.Second, "resends", func() bool { return len(replica.requests()) >= 3 })
	for _, r := range replica.requests() {
		var p []amAlert
		if err := json.Unmarshal(r.Body, &p); err != nil || len(p) != 1 || p[0].EndsAt.Before(time.Now().Add(-time.Minute)) {
			t.Fatalf("replica post %s (%v)", r.Body, err)
		}
	}

	// Resolve it at a time Alertmanager could not have made up itself
	// (its own expiry would be later than now).
	end := time.Now().Add(-30 * time.Second).UTC().Truncate(time.Second)
	if err := m.Alerts(context.Background(), end, []alert.Alert{resolved(a, end)}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the alert resolved in Alertmanager", func() bool {
		for _, x := range testutil.AlertmanagerAlerts(t, am) {
			if x.Labels["alertname"] == "PaymentsFailing" {
				t.Logf("still listed: %+v", x)
				return false
			}
		}
		return true
	})
	// The replica got the resolution with our endsAt, and nothing after.
	testutil.Eventually(t, 10*time.Second, "the resolution at the replica", func() bool {
		reqs := replica.requests()
		var p []amAlert
		err := json.Unmarshal(reqs[len(reqs)-1].Body, &p)
		return err == nil && len(p) == 1 && p[0].EndsAt.Equal(end)
	})

	// "tokpulse-agent notify test" through the same cluster.
	firing, resolved := incident.TestEvents("web-1", "1.2.3", "", time.Now())
	res, err := Test(context.Background(), cfg, Options{Host: "web-1", Version: "1.2.3", ExternalURL: "http://web-1:9847"}, []alert.Event{firing, resolved})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("notify test against Alertmanager: %+v %v", res, err)
	}
}
