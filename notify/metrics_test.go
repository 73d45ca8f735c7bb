package notify

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// TestMetricsExposition: delivery's series exist per output from the
// start, read the outbox, and pass Prometheus' own linter (promtool check
// metrics, from the Debian package .ci/deps installs).
func TestMetricsExposition(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Webhooks = []WebhookConfig{webhookConfig("http://"+testutil.FreeAddr(t), "")}
	st := openStore(t, filepath.Join(dir, "state"))
	defer st.Close()
	m, err := New(cfg, Options{Store: st, Host: "h", Version: "v", Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := m.Enqueue(context.Background(), []alert.Event{event("h", firing("A", alert.P1, now), now), event("h", firing("B", alert.P4, now), now)}); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP tokpulse_outbox_events Events waiting in the outbox for an output.
# TYPE tokpulse_outbox_events gauge
tokpulse_outbox_events{output="central"} 2
# HELP tokpulse_outbox_dead_letters Events an output refused for good (a 4xx other than 408/429), kept aside; see /api/v1/outbox.
# TYPE tokpulse_outbox_dead_letters gauge
tokpulse_outbox_dead_letters{output="central"} 0
# HELP tokpulse_notifications_total Events per delivery attempt outcome: success (accepted, 2xx), retry (failed, will be retried), dead_letter (refused for good, kept aside).
# TYPE tokpulse_notifications_total counter
tokpulse_notifications_total{output="central",result="dead_letter"} 0
tokpulse_notifications_total{output="central",result="retry"} 0
tokpulse_notifications_total{output="central",result="success"} 0
# HELP tokpulse_outbox_dropped_total Events dropped from the full outbox before delivery (oldest of the lowest severity first).
# TYPE tokpulse_outbox_dropped_total counter
tokpulse_outbox_dropped_total 0
`
	if err := promtestutil.GatherAndCompare(reg, strings.NewReader(want), "tokpulse_outbox_events", "tokpulse_outbox_dead_letters",
		"tokpulse_notifications_total", "tokpulse_outbox_dropped_total"); err != nil {
		t.Fatal(err)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (run ./.ci/deps): %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, text.String())
	}
}
