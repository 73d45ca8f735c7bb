package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// TestSecretURLsStayOutOfLogsStatusAndAlerts: a webhook URL whose path is
// the credential (Slack's https://hooks.slack.com/services/T…/B…/XXXX)
// appeared whole in "Delivery failed; will retry … posting to …", and a
// probe URL with a token in its path in /api/v1/alerts, /api/v1/status,
// webhook bodies and the log. Webhook URLs are now shown as
// scheme://host/…, and so is a probe URL marked secret_path.
func TestSecretURLsStayOutOfLogsStatusAndAlerts(t *testing.T) {
	const hookSecret, probeSecret = "XXXXhooksecretXXXX", "TOKENprobesecret123"
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	down := testutil.FreeAddr(t) // nothing listens here: delivery and the probe fail
	rc := testutil.NewReceiver(t, "")
	rules := filepath.Join(dir, "rules.yml")
	writeConfig(t, rules, `groups:
  - name: g
    rules:
      - alert: HealthDown
        expr: tokpulse_probe_success{probe="health"} == 0
        labels: {severity: P2}
        annotations: {summary: "health probe failing"}
`)
	cfg := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfg, fmt.Sprintf(`agent:
  interval: 1s
  state_dir: %[1]s/state
web:
  listen: %[2]s
host: {cpu: false, filesystem: {enabled: false}, disk: {enabled: false}, network: {enabled: false}}
probes:
  - name: health
    url: http://%[3]s/health/%[4]s?x=1
    secret_path: true
    interval: 1s
    timeout: 1s
rule_files: [%[5]s]
notify:
  heartbeat: 0s
  retry: {initial_interval: 100ms, max_interval: 200ms}
  webhooks:
    - name: slack
      url: http://%[3]s/services/T000/B000/%[6]s
    - name: central
      url: %[7]s
`, dir, addr, down, probeSecret, rules, hookSecret, rc.URL))
	a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Addr: addr})
	a.WaitReady(t, 1, 15*time.Second)

	testutil.Eventually(t, 20*time.Second, "the alert delivered with its evidence", func() bool {
		for _, r := range rc.Requests() {
			if bytes.Contains(r.Body, []byte("HealthDown")) && bytes.Contains(r.Body, []byte("Last failure of probe health")) {
				return true
			}
		}
		return false
	})
	testutil.Eventually(t, 10*time.Second, "a failed delivery logged", func() bool {
		return strings.Contains(a.Output(), "Delivery failed; will retry")
	})

	var seen []string
	for _, r := range rc.Requests() {
		seen = append(seen, "webhook body: "+string(r.Body))
	}
	for _, path := range []string{"/api/v1/alerts", "/api/v1/status", "/api/v1/outbox"} {
		_, body := a.Get(t, path)
		seen = append(seen, path+": "+body)
	}
	out, err := exec.Command(testutil.AgentBinary(t), "status", "--url", "http://"+addr).CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	seen = append(seen, "status: "+string(out))
	a.Signal(t, syscall.SIGTERM)
	a.WaitExit(t, 10*time.Second)
	seen = append(seen, "log: "+a.Output())

	all := strings.Join(seen, "\n")
	for _, secret := range []string{hookSecret, probeSecret, "T000/B000"} {
		for _, s := range seen {
			if strings.Contains(s, secret) {
				t.Errorf("%q leaked in %.300s", secret, s)
			}
		}
	}
	for _, want := range []string{
		"posting to http://" + down + "/…", // the webhook's failure, in the log
		"(GET http://" + down + "/…)",      // the probe, in the evidence title
	} {
		if !strings.Contains(all, want) {
			t.Errorf("nothing shows %q", want)
		}
	}
}
