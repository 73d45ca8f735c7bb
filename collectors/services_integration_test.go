package collectors

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// server is a throwaway daemon started by a test.
type server struct {
	t   *testing.T
	cmd *exec.Cmd
	log string
}

func startServer(t *testing.T, logFile string, argv ...string) *server {
	t.Helper()
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", argv[0], err)
	}
	f.Close()
	s := &server{t: t, cmd: cmd, log: logFile}
	t.Cleanup(s.stop)
	return s
}

// stop asks the server to shut down, then kills its group if it lingers.
func (s *server) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	// The whole group: runuser does not pass signals on to postgres.
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGINT)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func (s *server) logText() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// asUser prefixes argv so that it runs as name when the test runs as root
// (PostgreSQL refuses to run as root).
func asUser(name string, argv ...string) []string {
	if os.Geteuid() != 0 {
		return argv
	}
	return append([]string{"runuser", "-u", name, "--"}, argv...)
}

// postgresBin finds a PostgreSQL server program; Debian keeps them under
// /usr/lib/postgresql/VERSION/bin, off the PATH.
func postgresBin(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(m) == 0 {
		t.Fatalf("%s not found on PATH or under /usr/lib/postgresql/*/bin; install Debian's postgresql (./.ci/deps does)", name)
	}
	return m[len(m)-1]
}

// TestPostgresAndRedisChecks runs the runbook's database and Redis checks
// and TCP probes against real servers, then stops the servers and sees
// every one fail with the right reason.
func TestPostgresAndRedisChecks(t *testing.T) {
	for _, c := range []string{"psql", "redis-server", "redis-cli"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is missing; run ./.ci/deps (Debian packages postgresql and redis-server)", c)
		}
	}
	// The data directories must be reachable by the postgres user, which
	// t.TempDir's 0700 parents are not.
	base, err := os.MkdirTemp("", "tokpulse-services-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	pgData, pgSock := filepath.Join(base, "pgdata"), filepath.Join(base, "pgsock")
	for _, d := range []string{pgData, pgSock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("user postgres is missing (Debian's postgresql package creates it): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{pgData, pgSock} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}

	initArgv := asUser("postgres", postgresBin(t, "initdb"), "-D", pgData, "-A", "trust", "-U", "postgres", "--no-sync")
	initdb := exec.Command(initArgv[0], initArgv[1:]...)
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	pgPort, redisPort := freePort(t), freePort(t)
	pg := startServer(t, filepath.Join(base, "postgres.log"), asUser("postgres", postgresBin(t, "postgres"),
		"-D", pgData, "-k", pgSock, "-p", strconv.Itoa(pgPort), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")...)
	redis := startServer(t, filepath.Join(base, "redis.log"), "redis-server", "--port", strconv.Itoa(redisPort),
		"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", base)

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

	// Wait for both servers to accept work (no fixed sleep).
	waitFor(t, "PostgreSQL to accept queries", func() bool {
		if pg.cmd.ProcessState != nil {
			t.Fatalf("postgres exited:\n%s", pg.logText())
		}
		return checks.RunOnce(ctx, 0).Success
	})
	waitFor(t, "Redis to answer", func() bool {
		if redis.cmd.ProcessState != nil {
			t.Fatalf("redis-server exited:\n%s", redis.logText())
		}
		return checks.RunOnce(ctx, 1).Success
	})
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

	pg.stop()
	redis.stop()
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
	authPort := freePort(t)
	startServer(t, filepath.Join(base, "redis-auth.log"), "redis-server", "--port", strconv.Itoa(authPort),
		"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", base, "--requirepass", "s3cret")
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
	waitFor(t, "the password-protected Redis to answer", func() bool {
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
