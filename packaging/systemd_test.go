package packaging

import (
	"context"
	"fmt"
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
// itself needs from systemd: a notify socket for READY=1 and a state
// directory.
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

// echoUnit writes $COUNT lines "$BATCH line N" to its stdout, which journald
// stores as the unit's entries, at priority notice: above every message
// systemd itself logs about the unit (Starting, Finished, Deactivated,
// Consumed), which are info.
const echoUnit = `[Service]
Type=oneshot
SyslogLevel=notice
EnvironmentFile=/etc/tp-echo.env
ExecStart=/usr/local/bin/tp-echo
`

const echoScript = `#!/bin/sh
i=1
while [ "$i" -le "$COUNT" ]; do
	echo "$BATCH line $i"
	i=$((i + 1))
done
`

// TestJournalInContainer follows the live journal of a booted system: a
// unit writes known lines, and the agent counts the unit's entries and the
// pattern matches exactly; stopped and started again, it resumes after its
// saved cursor, counting the lines written while it was down once and the
// ones before never again.
func TestJournalInContainer(t *testing.T) {
	c := nspawn.Start(t, nspawn.Options{})
	h := host{t: t, c: c}
	h.writeFile("/usr/local/bin/tp-echo", echoScript, 0o755)
	h.writeFile("/etc/systemd/system/tp-echo.service", echoUnit, 0o644)
	h.sh("systemctl daemon-reload")
	// x takes every entry of the unit, notice only its own lines. Both
	// start at the journal's beginning on the agent's first run, which
	// holds nothing of tp-echo yet: unlike start_at: end, this does not
	// race with journalctl's first seek. Later runs resume at the cursor.
	h.startPlainAgent(`agent:
  interval: 1s
web:
  listen: 127.0.0.1:9847
journal:
- name: x
  units: [tp-echo.service]
  start_at: beginning
  patterns:
  - {name: batch1, regexp: '^batch1 line \d+$'}
  - {name: batch2, regexp: '^batch2 line \d+$'}
  - {name: batch3, regexp: '^batch3 line \d+$'}
  - {name: batch4, regexp: '^batch4 line \d+$'}
  - {name: batch5, regexp: '^batch5 line \d+$'}
  - {name: even, regexp: '^batch\d line \d*[02468]$'}
- name: notice
  units: [tp-echo.service]
  priority: notice
  start_at: beginning
`)
	h.metricsMatch("journalctl followed", `^tokpulse_journal_up\{source="x"\} 1$`, `^tokpulse_journal_up\{source="notice"\} 1$`)

	echo := func(batch string, n int) {
		h.t.Helper()
		h.sh(fmt.Sprintf("printf 'BATCH=%s\\nCOUNT=%d\\n' > /etc/tp-echo.env && systemctl start tp-echo", batch, n))
	}
	// unitEntries is how many entries journalctl itself has for the unit.
	unitEntries := func() float64 {
		n, err := strconv.Atoi(strings.TrimSpace(h.sh("journalctl --no-pager -q -o json -u tp-echo.service | wc -l")))
		if err != nil {
			t.Fatal(err)
		}
		return float64(n)
	}
	// expect waits until every series has its value (a missing series
	// counts as 0) and the x source has counted sinceStart entries of the
	// unit more than it had when this run of the agent started.
	expect := func(what string, want map[string]float64, sinceStart float64) {
		h.t.Helper()
		h.eventually(what, 30*time.Second, func() (bool, string) {
			m, err := h.metrics()
			if err != nil {
				return false, err.Error()
			}
			var diffs []string
			wantX := unitEntries() - sinceStart
			if got, _ := metricValue(m, `tokpulse_log_lines_total{source="x"}`); got != wantX {
				diffs = append(diffs, fmt.Sprintf("x lines %v, want %v (journalctl -u)", got, wantX))
			}
			for series, v := range want {
				if got, _ := metricValue(m, series); got != v {
					diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", series, got, v))
				}
			}
			return len(diffs) == 0, strings.Join(diffs, "; ")
		})
	}

	echo("batch1", 40)
	expect("batch1 counted live", map[string]float64{
		`tokpulse_log_lines_total{source="notice"}`:               40,
		`tokpulse_log_matches_total{pattern="batch1",source="x"}`: 40,
		`tokpulse_log_matches_total{pattern="even",source="x"}`:   20,
	}, 0)

	// Stopped (SIGTERM: the cursor is saved), lines written while it is
	// down, started again: a new process whose counters start at 0.
	h.sh("systemctl stop tokpulse-agent")
	before := unitEntries()
	echo("batch2", 25)
	h.sh("systemctl start tokpulse-agent")
	expect("only what was written while the agent was down", map[string]float64{
		`tokpulse_log_lines_total{source="notice"}`:               25,
		`tokpulse_log_matches_total{pattern="batch1",source="x"}`: 0,
		`tokpulse_log_matches_total{pattern="batch2",source="x"}`: 25,
		`tokpulse_log_matches_total{pattern="even",source="x"}`:   12,
		`tokpulse_journal_cursor_resets_total{source="x"}`:        0,
	}, before)

	echo("batch3", 15)
	expect("live again after the restart", map[string]float64{
		`tokpulse_log_lines_total{source="notice"}`:               40,
		`tokpulse_log_matches_total{pattern="batch1",source="x"}`: 0,
		`tokpulse_log_matches_total{pattern="batch3",source="x"}`: 15,
		`tokpulse_log_matches_total{pattern="even",source="x"}`:   19,
	}, before)

	// A reboot while the agent is down: lines of the old boot after the
	// saved cursor, then a new boot ID (as after a reboot, journald stamps
	// new entries with it and /proc shows it), lines of the new boot.
	// journalctl --follow --after-cursor with a cursor of another boot
	// shows none of the entries already written, of either boot; the
	// agent must count both batches, once.
	h.sh("systemctl stop tokpulse-agent")
	before = unitEntries()
	echo("batch4", 10)
	if err := c.UseHostBootID(context.Background()); err != nil {
		t.Fatal(err)
	}
	echo("batch5", 10)
	h.sh("systemctl start tokpulse-agent")
	expect("lines of both boots after a reboot", map[string]float64{
		`tokpulse_log_lines_total{source="notice"}`:               20,
		`tokpulse_log_matches_total{pattern="batch3",source="x"}`: 0,
		`tokpulse_log_matches_total{pattern="batch4",source="x"}`: 10,
		`tokpulse_log_matches_total{pattern="batch5",source="x"}`: 10,
		`tokpulse_log_matches_total{pattern="even",source="x"}`:   10,
	}, before)
	t.Logf("journalctl -u tp-echo.service: %v entries, 100 of them the unit's lines", unitEntries())
}
