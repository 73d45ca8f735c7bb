package packaging

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
	"github.com/tokpulse/tokpulse-agent/internal/testutil/nspawn"
)

// The tests in this file run the collectors that need a real systemd (unit
// states over D-Bus, the live journal) against the systemd of a booted
// container. They run the agent binary itself, not the package: as root,
// under a plain unit named like the package's, so that the host helpers
// (journal, show) of packaging_test.go apply and a failure here is the
// collector's, not the sandbox's. TestServiceInContainer runs the same
// collectors from the installed .deb under the full hardening.

// plainAgentUnit runs the agent as root with nothing but what the agent
// itself needs from systemd: READY=1, the watchdog, a state directory.
const plainAgentUnit = `[Unit]
Description=tokpulse-agent under test (no sandbox)

[Service]
Type=notify
ExecStart=/usr/bin/tokpulse-agent run --config /etc/tokpulse-agent/agent.yaml
StateDirectory=tokpulse-agent
`

// startPlainAgent copies the agent binary into the container, writes cfg as
// its configuration and starts it as tokpulse-agent.service; "systemctl
// start" returns once the agent has sent READY=1.
func (h host) startPlainAgent(cfg string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.c.CopyIn(ctx, testutil.AgentBinary(h.t), "/usr/bin/tokpulse-agent", 0o755); err != nil {
		h.t.Fatal(err)
	}
	h.writeFile("/etc/tokpulse-agent/agent.yaml", cfg, 0o644)
	h.writeFile("/etc/systemd/system/tokpulse-agent.service", plainAgentUnit, 0o644)
	h.sh("systemctl daemon-reload && systemctl start tokpulse-agent")
}

// writeFile writes content to path inside the container.
func (h host) writeFile(path, content string, mode os.FileMode) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.c.WriteFile(ctx, path, strings.NewReader(content), mode); err != nil {
		h.t.Fatal(err)
	}
}

// metricValue returns the value of the one series of body that starts with
// series (name and labels, exactly as exposed), or false.
func metricValue(body, series string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// testUnits are the units the unit-state test starts, stops and fails.
var testUnits = map[string]string{
	// Runs until stopped, then is killed to fail it.
	"tp-running.service": "[Service]\nExecStart=/bin/sleep infinity\n",
	// Started, then stopped by hand: inactive, not failed.
	"tp-stopped.service": "[Service]\nExecStart=/bin/sleep infinity\n",
	// Exits 1 at once.
	"tp-failing.service": "[Service]\nExecStart=/bin/false\n",
	// Exits 1 after a moment and is restarted every time, without a start
	// limit, so that NRestarts keeps growing.
	"tp-restarting.service": "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sh -c 'sleep 0.2; exit 1'\nRestart=always\nRestartSec=100ms\n",
}

// TestUnitsInContainer runs the unit-state collector against a real systemd:
// units started, stopped, failed and restarting in the container show their
// states and restart counts in the agent's /metrics as they change.
func TestUnitsInContainer(t *testing.T) {
	c := nspawn.Start(t, nspawn.Options{})
	h := host{t: t, c: c}
	for name, unit := range testUnits {
		h.writeFile("/etc/systemd/system/"+name, unit, 0o644)
	}
	h.sh("systemctl daemon-reload && systemctl start tp-running tp-stopped tp-restarting")
	h.startPlainAgent(`agent:
  interval: 1s
web:
  listen: 127.0.0.1:9847
units: [tp-running, tp-stopped.service, tp-failing.service, tp-restarting.service, tp-missing.service]
`)

	state := func(unit, st string) string {
		return `^tokpulse_systemd_unit_state\{state="` + st + `",unit="` + unit + `"\} 1$`
	}
	h.metricsMatch("unit states after start",
		`^tokpulse_systemd_up 1$`,
		`^tokpulse_collector_success\{collector="systemd"\} 1$`,
		state("tp-running.service", "active"),
		state("tp-stopped.service", "active"),
		state("tp-failing.service", "inactive"),
		// A unit that does not exist is inactive, and has no restart count.
		state("tp-missing.service", "inactive"),
		`^tokpulse_systemd_unit_restarts_total\{unit="tp-running.service"\} 0$`,
	)

	// Stop one, fail two: one exits 1, the other is killed.
	h.sh(`systemctl stop tp-stopped
systemctl start tp-failing || true
systemctl kill --signal=KILL tp-running`)
	body := h.metricsMatch("unit states after stop and failures",
		state("tp-running.service", "failed"),
		state("tp-stopped.service", "inactive"),
		state("tp-failing.service", "failed"),
		`^tokpulse_systemd_unit_restarts_total\{unit="tp-restarting.service"\} ([3-9]|\d\d+)$`,
	)
	for _, unit := range []string{"tp-running.service", "tp-stopped.service", "tp-failing.service", "tp-missing.service"} {
		ones := 0
		for _, st := range []string{"active", "activating", "deactivating", "inactive", "failed", "reloading"} {
			v, ok := metricValue(body, `tokpulse_systemd_unit_state{state="`+st+`",unit="`+unit+`"}`)
			if !ok {
				t.Errorf("no tokpulse_systemd_unit_state series for %s state %s", unit, st)
			}
			if v == 1 {
				ones++
			}
		}
		if ones != 1 {
			t.Errorf("%s has %d states at 1, want exactly one", unit, ones)
		}
	}
	if _, ok := metricValue(body, `tokpulse_systemd_unit_restarts_total{unit="tp-missing.service"}`); ok {
		t.Errorf("a restart count for a unit that does not exist")
	}
	// The count is systemd's own NRestarts, read a moment before systemd's
	// current one, which only grows.
	got, _ := metricValue(body, `tokpulse_systemd_unit_restarts_total{unit="tp-restarting.service"}`)
	now, err := strconv.Atoi(strings.TrimSpace(h.sh("systemctl show -P NRestarts tp-restarting")))
	if err != nil || float64(now) < got {
		t.Errorf("tokpulse_systemd_unit_restarts_total = %v, systemctl show -P NRestarts = %d (%v)", got, now, err)
	}

	// Back to active: a failed unit restarted by hand.
	h.sh("systemctl reset-failed tp-running && systemctl start tp-running")
	h.metricsMatch("a failed unit started again", state("tp-running.service", "active"))
}
