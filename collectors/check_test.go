package collectors

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"

	"github.com/prometheus/procfs"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// groupAlive reports whether any live (non-zombie) process is in process
// group pgid.
func groupAlive(t *testing.T, pgid int) bool {
	t.Helper()
	procs, err := procfs.AllProcs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		s, err := p.Stat()
		if err == nil && s.PGRP == pgid && s.State != "Z" {
			return true
		}
	}
	return false
}

func TestRunCheck(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "url")
	if err := os.WriteFile(secret, []byte("postgres://app:hunter2@127.0.0.1/app\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(argv ...string) CheckConfig {
		c := DefaultCheckConfig()
		c.Name = "c"
		c.Command = argv
		return c
	}
	withValue := func(c CheckConfig) CheckConfig { c.Value = "stdout"; return c }
	withOutput := func(c CheckConfig, re string) CheckConfig { c.ExpectOutput = yamlx.MustRegexp(re); return c }
	withEnv := func(c CheckConfig) CheckConfig {
		c.Env = map[string]string{"GREETING": "hello"}
		c.EnvFiles = map[string]yamlx.SecretFile{"DATABASE_URL": yamlx.SecretFile(secret)}
		return c
	}
	for _, tc := range []struct {
		name       string
		cfg        CheckConfig
		wantReason string
		wantValue  float64
		wantStdout string
		wantErr    string
	}{
		{name: "success", cfg: check("true")},
		{name: "failure", cfg: check("sh", "-c", "echo 'connection refused' >&2; exit 3"), wantReason: CheckReasonExit, wantErr: "exited with status 3: connection refused"},
		{name: "no such command", cfg: check("/nonexistent/tokpulse-check"), wantReason: CheckReasonStart, wantErr: "is it installed"},
		{name: "numeric stdout", cfg: withValue(check("echo", "42")), wantValue: 42},
		{name: "redis-cli style number", cfg: withValue(check("echo", "(integer) 17")), wantValue: 17},
		{name: "float", cfg: withValue(check("printf", "load: -1.5e2 units\n")), wantValue: -150},
		{name: "expect_output matches", cfg: withOutput(check("echo", "PONG"), "^PONG$")},
		{name: "expect_output fails", cfg: withOutput(check("echo", "NOAUTH Authentication required."), "^PONG$"), wantReason: CheckReasonParse, wantErr: "does not match expect_output"},
		{name: "no number", cfg: withValue(check("echo", "PONG")), wantReason: CheckReasonParse, wantErr: "printed no number"},
		{name: "env and env_files", cfg: withEnv(check("sh", "-c", `echo "$GREETING $DATABASE_URL"`)), wantStdout: "hello postgres://app:hunter2@127.0.0.1/app\n"},
		{name: "argv expansion", cfg: withEnv(check("echo", "${DATABASE_URL}", "$$HOME")), wantStdout: "postgres://app:hunter2@127.0.0.1/app $HOME\n"},
		{name: "unset variable", cfg: check("echo", "$TOKPULSE_TEST_UNSET_VARIABLE"), wantReason: CheckReasonStart, wantErr: "TOKPULSE_TEST_UNSET_VARIABLE are not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.cfg.Timeout.D())
			defer cancel()
			r := RunCheck(ctx, tc.cfg)
			if r.Success != (tc.wantReason == "") || r.Reason != tc.wantReason {
				t.Fatalf("success=%v reason=%q err=%v; want reason %q", r.Success, r.Reason, r.Err, tc.wantReason)
			}
			if tc.wantErr != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want it to contain %q", r.Err, tc.wantErr)
			}
			if tc.cfg.Value == "stdout" && r.Success && (!r.HasValue || r.Value != tc.wantValue) {
				t.Errorf("value = %v (has %v), want %v", r.Value, r.HasValue, tc.wantValue)
			}
			if tc.wantStdout != "" && r.Stdout != tc.wantStdout {
				t.Errorf("stdout = %q, want %q", r.Stdout, tc.wantStdout)
			}
		})
	}

	t.Run("timeout kills the process group", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		c := check("sh", "-c", "echo $$$$ > "+pidFile+"; sleep 60 & sleep 60 & wait")
		c.Timeout = yamlx.Duration(500 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout.D())
		defer cancel()
		r := RunCheck(ctx, c)
		if r.Reason != CheckReasonTimeout {
			t.Fatalf("reason = %q (err %v), want timeout", r.Reason, r.Err)
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatalf("the check never started: %v", err)
		}
		pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 20*time.Second, "process group "+strconv.Itoa(pgid)+" to be gone", func() bool { return !groupAlive(t, pgid) })
	})

	t.Run("huge stdout is bounded", func(t *testing.T) {
		c := check("head", "-c", "50000000", "/dev/zero")
		c.MaxOutputBytes = 1000
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout.D())
		defer cancel()
		r := RunCheck(ctx, c)
		if !r.Success {
			t.Fatalf("reason=%q err=%v; a command with huge output must still complete", r.Reason, r.Err)
		}
		if len(r.Stdout) != 1000 || !r.Truncated {
			t.Errorf("kept %d bytes (truncated %v), want 1000 and truncated", len(r.Stdout), r.Truncated)
		}
	})
}

func TestChecksCollector(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "url")
	if err := os.WriteFile(secret, []byte("postgres://app:hunter2@127.0.0.1/app"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := decodeConfig(t, `
checks:
- name: ok
  command: ["true"]
- name: queue
  command: [echo, "7"]
  value: stdout
- name: db
  command: [sh, -c, 'echo "could not connect to $$DATABASE_URL" >&2; exit 2']
  env_files: {DATABASE_URL: `+secret+`}
`)
	c := NewChecks(cfg.Checks, Options{})
	for i := range cfg.Checks {
		c.RunOnce(context.Background(), i)
	}
	got := collect(t, c)
	for k, want := range map[string]float64{
		`tokpulse_check_success{check="ok"}`:                      1,
		`tokpulse_check_success{check="queue"}`:                   1,
		`tokpulse_check_value{check="queue"}`:                     7,
		`tokpulse_check_success{check="db"}`:                      0,
		`tokpulse_check_failures_total{check="db",reason="exit"}`: 1,
		`tokpulse_check_failures_total{check="ok",reason="exit"}`: 0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	if _, ok := got[`tokpulse_check_value{check="ok"}`]; ok {
		t.Error("a check with value: none exports a value")
	}
	ev := c.Evidence()
	if len(ev) != 1 || ev[0].Labels["check"] != "db" {
		t.Fatalf("evidence = %+v, want one section for db", ev)
	}
	var text string
	for _, e := range ev[0].Entries {
		text += e.Text + "\n"
	}
	if !strings.Contains(text, "could not connect") || strings.Contains(text, "hunter2") {
		t.Errorf("evidence must hold the output, redacted:\n%s", text)
	}
}

func TestCheckConcurrencyIsBounded(t *testing.T) {
	dir := t.TempDir()
	var cfgs []CheckConfig
	// Each check records itself in a directory while it runs; the most
	// entries seen at once must not exceed the bound.
	script := `f=` + dir + `/$$$$; touch $$f; n=$$(ls ` + dir + ` | wc -l); echo $$n; sleep 0.2; rm $$f`
	for i := range 3 * MaxConcurrentChecks {
		c := DefaultCheckConfig()
		c.Name = "c" + strconv.Itoa(i)
		c.Command = []string{"sh", "-c", script}
		c.Value = "stdout"
		cfgs = append(cfgs, c)
	}
	c := NewChecks(cfgs, Options{})
	done := make(chan CheckResult)
	for i := range cfgs {
		go func() { done <- c.RunOnce(context.Background(), i) }()
	}
	for range cfgs {
		r := <-done
		if !r.Success {
			t.Fatalf("check failed: %v", r.Err)
		}
		if r.Value > MaxConcurrentChecks {
			t.Errorf("%v checks ran at once, want at most %d", r.Value, MaxConcurrentChecks)
		}
	}
}
