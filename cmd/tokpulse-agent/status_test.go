package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/agent"
	"github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/notify"
)

func TestRenderStatus(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	oldest := now.Add(-time.Minute)
	st := agent.Status{
		Agent: agent.AgentStatus{Version: "1.0.0", Hostname: "web-1", StartedAt: now.Add(-3*time.Hour - 2*time.Minute),
			ConfigFile: "/etc/tokpulse-agent/agent.yaml", LastReloadSuccessful: false, LastGather: "145 series"},
		Components: []collectors.Status{
			{Kind: "collector", Name: "host", LastRun: now.Add(-2 * time.Second), OK: true},
			{Kind: "probe", Name: "health", LastRun: now.Add(-4 * time.Second), Reason: "timeout", Detail: "context\ndeadline exceeded"},
			{Kind: "check", Name: "postgres"},
		},
		Alerts: []alert.Alert{
			{Name: "HighMemoryUsage", Severity: alert.P2, State: alert.StateFiring,
				ActiveAt: now.Add(-12 * time.Minute), Value: 0.853, Annotations: map[string]string{"summary": "Memory 85 % used on web-1"},
				Labels: map[string]string{"alertname": "HighMemoryUsage", "severity": "P2"}},
			// Two instances of one rule (the shipped pack's check or probe),
			// told apart by the label in which they differ.
			{Name: "TokPulseDatabaseUnavailable", Severity: alert.P1, State: alert.StateFiring, ActiveAt: now.Add(-2 * time.Minute),
				Labels: map[string]string{"alertname": "TokPulseDatabaseUnavailable", "severity": "P1", "check": "postgres", "role": "api"}},
			{Name: "TokPulseDatabaseUnavailable", Severity: alert.P1, State: alert.StateFiring, ActiveAt: now.Add(-2 * time.Minute),
				Labels: map[string]string{"alertname": "TokPulseDatabaseUnavailable", "severity": "P1", "probe": "postgres_tcp", "role": "api"}},
		},
		Actions: []incident.ActionStatus{
			{Name: "restart-app", Description: "restart of tokpulse.service", MaxRuns: 2, Per: "1h", LastRun: now.Add(-5 * time.Minute),
				Budgets: []incident.ActionBudget{{AlertName: "TokPulseHealthCheckFailed", Labels: map[string]string{"alertname": "TokPulseHealthCheckFailed", "probe": "health"},
					Used: 2, Left: 0, NextAt: now.Add(40 * time.Minute)}}},
			{Name: "flush", Description: "run of /usr/local/bin/flush-queue --safe", MaxRuns: 1, Per: "1h", DryRun: true},
		},
		Outbox: &notify.Status{Events: 3, Bytes: 2048, Outputs: map[string]notify.OutputStatus{
			"central": {Pending: 2, Oldest: &oldest, DeadLetters: []notify.DeadLetter{{}}},
			"stdout":  {},
		}},
	}
	for _, tc := range []struct {
		name  string
		color bool
		want  []string
	}{
		{"plain", false, []string{
			"tokpulse-agent 1.0.0 on web-1, up 3h02m, config /etc/tokpulse-agent/agent.yaml (last reload FAILED (previous configuration in force))",
			"collector  host      OK      2s ago    ",
			"probe      health    FAIL    4s ago    timeout: context deadline exceeded",
			"check      postgres  -       -",
			"HighMemoryUsage                                    P2        firing  12m    0.853  Memory 85 % used on web-1",
			"TokPulseDatabaseUnavailable{check=\"postgres\"}      P1        firing  2m     0",
			"TokPulseDatabaseUnavailable{probe=\"postgres_tcp\"}  P1        firing  2m     0",
			"restart-app  restart of tokpulse.service                         2 per 1h per alert                    5m ago",
			"               TokPulseHealthCheckFailed{probe=\"health\"}         none left until 2026-11-27T12:40:00Z",
			"flush        run of /usr/local/bin/flush-queue --safe (dry run)  1 per 1h per alert                    -",
			"Outbox: 3 events, 2048 bytes, 0 dropped",
			"central  2        2026-11-27T11:59:00Z  1",
			"stdout   0        -                     0",
		}},
		{"colour", true, []string{"\x1b[32mOK\x1b[0m", "\x1b[31mFAIL\x1b[0m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			renderStatus(&buf, st, now, tc.color)
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, buf.String())
				}
			}
			if !tc.color && strings.Contains(buf.String(), "\x1b[") {
				t.Error("escape codes without colour")
			}
		})
	}
}
