package collectors

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// TestPostgresAndRedisChecks runs the runbook's database and Redis checks
// and TCP probes against real servers, then stops the servers and sees
// every one fail with the right reason.
func TestPostgresAndRedisChecks(t *testing.T) {
	// Throwaway servers on loopback, shared with the end-to-end scenarios
	// (internal/testutil); each waits until its server answers.
	pg := testutil.StartPostgres(t)
	redis := testutil.StartRedis(t)
	pgPort, redisPort := pg.Port, redis.Port
	base := t.TempDir()

	// The runbook's checks, as the shipped config writes them, pointed at
	// the throwaway servers.
	urlFile := filepath.Join(base, "database_url")
	if err := os.WriteFile(urlFile, fmt.Appendf(nil, "postgresql://postgres@127.0.0.1:%d/postgres?connect_timeout=3", pgPort), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := decodeConfig(t, fmt.Sprintf(`
checks:
- name: postgres
  command: [psql, "$DATABASE_URL", -X, -c, "SELECT 1;"]
  env_files: {DATABASE_URL: %[1]s}
- name: redis_ping
  command: [redis-cli, -e, -p, "%[2]d", ping]
  expect_output: '^PONG$'
- name: webhook_queue
  command: [redis-cli, -e, -p, "%[2]d", LLEN, webhook_queue]
  value: stdout
probes:
- name: postgres_tcp
  url: tcp://127.0.0.1:%[3]d
- name: redis_tcp
  url: tcp://127.0.0.1:%[2]d
`, urlFile, redisPort, pgPort))
	checks := NewChecks(cfg.Checks, Options{})
	probes, err := NewProbes(cfg.Probes, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	if out, err := exec.Command("redis-cli", "-p", strconv.Itoa(redisPort), "RPUSH", "webhook_queue", "a", "b", "c").CombinedOutput(); err != nil {
		t.Fatalf("RPUSH: %v\n%s", err, out)
	}
	for i := range cfg.Checks {
		if r := checks.RunOnce(ctx, i); !r.Success {
			t.Errorf("check %s failed while its server runs: %s %v", cfg.Checks[i].Name, r.Reason, r.Err)
		}
	}
	for i := range cfg.Probes {
		if r := probes.RunOnce(ctx, i); !r.Success {
			t.Errorf("probe %s failed while its server runs: %s %v", cfg.Probes[i].Name, r.Reason, r.Err)
		}
	}
	got := collect(t, checks)
	for k, want := range map[string]float64{
		`tokpulse_check_success{check="postgres"}`:      1,
		`tokpulse_check_success{check="redis_ping"}`:    1,
		`tokpulse_check_success{check="webhook_queue"}`: 1,
		`tokpulse_check_value{check="webhook_queue"}`:   3,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}

	pg.Stop()
	redis.Server.Stop()
	for i, c := range cfg.Checks {
		r := checks.RunOnce(ctx, i)
		if r.Success || r.Reason != CheckReasonExit {
			t.Errorf("check %s after its server stopped: success=%v reason=%q err=%v; want reason exit", c.Name, r.Success, r.Reason, r.Err)
		}
	}
	for i, p := range cfg.Probes {
		r := probes.RunOnce(ctx, i)
		if r.Success || r.Reason != ReasonRefused {
			t.Errorf("probe %s after its server stopped: success=%v reason=%q err=%v; want reason refused", p.Name, r.Success, r.Reason, r.Err)
		}
	}
	got = collect(t, checks)
	if got[`tokpulse_check_failures_total{check="postgres",reason="exit"}`] < 1 {
		t.Errorf("postgres failure not counted: %v", got)
	}
	// A Redis that requires a password answers ping with an error, and
	// redis-cli exits 0 all the same: only -e or expect_output catch it.
	authPort := testutil.StartRedis(t, "--requirepass", "s3cret").Port
	authCfg := decodeConfig(t, fmt.Sprintf(`
checks:
- name: plain
  command: [redis-cli, -p, "%[1]d", ping]
- name: with_e
  command: [redis-cli, -e, -p, "%[1]d", ping]
- name: with_expect
  command: [redis-cli, -p, "%[1]d", ping]
  expect_output: '^PONG$'
`, authPort))
	auth := NewChecks(authCfg.Checks, Options{})
	testutil.Eventually(t, 20*time.Second, "the password-protected Redis to answer", func() bool {
		r := auth.RunOnce(ctx, 0)
		return r.Success && strings.Contains(r.Stdout, "NOAUTH")
	})
	if r := auth.RunOnce(ctx, 1); r.Success || r.Reason != CheckReasonExit {
		t.Errorf("redis-cli -e ping against a password: success=%v reason=%q, want reason exit", r.Success, r.Reason)
	}
	if r := auth.RunOnce(ctx, 2); r.Success || r.Reason != CheckReasonParse {
		t.Errorf("expect_output against NOAUTH: success=%v reason=%q, want reason parse", r.Success, r.Reason)
	}

	var text string
	for _, s := range checks.Evidence() {
		if s.Labels["check"] == "postgres" {
			for _, e := range s.Entries {
				text += e.Text + "\n"
			}
		}
	}
	if !strings.Contains(text, "refused") && !strings.Contains(text, "connect") {
		t.Errorf("postgres evidence does not say why it failed:\n%s", text)
	}
}
