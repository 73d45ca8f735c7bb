// Package e2e holds the end-to-end tests of the incident runbook's
// scenarios: each runs the real tokpulse-agent binary with a real
// configuration against real services on loopback (HTTP servers,
// PostgreSQL, Redis, log files, a fixture /proc) and follows the alert to a
// real webhook receiver and a real Alertmanager. The package has no code of
// its own; see scenarios_test.go.
package e2e
