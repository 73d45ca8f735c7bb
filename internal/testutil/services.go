package testutil

import (
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

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, err := net.SplitHostPort(FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return p
}

// Server is a throwaway daemon started by a test, in its own process
// group so that a wrapper (runuser) and its child stop together.
type Server struct {
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
}

// StartServer starts argv with its output in logFile and stops it at the
// end of the test.
func StartServer(t testing.TB, logFile string, argv ...string) *Server {
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
	s := &Server{Cmd: cmd, Log: logFile, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	return s
}

// Exited reports whether the server has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Stop asks the server to shut down (SIGINT to its group, PostgreSQL's
// "fast" shutdown), then kills the group if it lingers.
func (s *Server) Stop() {
	if s.Exited() {
		return
	}
	// The whole group: runuser does not pass signals on to postgres.
	_ = syscall.Kill(-s.Cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.Cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// LogText returns what the server wrote so far.
func (s *Server) LogText() string {
	b, _ := os.ReadFile(s.Log)
	return string(b)
}

// AsUser prefixes argv so that it runs as name when the test runs as root
// (PostgreSQL refuses to run as root).
func AsUser(name string, argv ...string) []string {
	if os.Geteuid() != 0 {
		return argv
	}
	return append([]string{"runuser", "-u", name, "--"}, argv...)
}

// PostgresBin finds a PostgreSQL server program; Debian keeps them under
// /usr/lib/postgresql/VERSION/bin, off the PATH.
func PostgresBin(t testing.TB, name string) string {
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

// serviceDir makes a directory the postgres user can reach, which
// t.TempDir's 0700 parents are not.
func serviceDir(t testing.TB, prefix string) string {
	t.Helper()
	base, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	return base
}

// Postgres is a throwaway PostgreSQL server on 127.0.0.1, trust
// authentication, user postgres.
type Postgres struct {
	Port int
	// URL is a connection URL for psql, with connect_timeout=3.
	URL    string
	Server *Server
	data   string
	sock   string
	t      testing.TB
}

// StartPostgres initialises a cluster in a temporary directory, starts it
// on a free port and waits until it answers queries.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	Require(t, "psql")
	base := serviceDir(t, "tokpulse-pg-")
	p := &Postgres{t: t, data: filepath.Join(base, "pgdata"), sock: filepath.Join(base, "pgsock"), Port: FreePort(t)}
	for _, d := range []string{p.data, p.sock} {
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
		for _, d := range []string{p.data, p.sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	initArgv := AsUser("postgres", PostgresBin(t, "initdb"), "-D", p.data, "-A", "trust", "-U", "postgres", "--no-sync")
	if out, err := exec.Command(initArgv[0], initArgv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.URL = fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/postgres?connect_timeout=3", p.Port)
	p.Start()
	return p
}

// Start (re)starts the server on its port and waits until it answers.
func (p *Postgres) Start() {
	t := p.t
	t.Helper()
	p.Server = StartServer(t, filepath.Join(filepath.Dir(p.data), "postgres.log"), AsUser("postgres", PostgresBin(t, "postgres"),
		"-D", p.data, "-k", p.sock, "-p", strconv.Itoa(p.Port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")...)
	Eventually(t, 30*time.Second, "PostgreSQL to accept queries", func() bool {
		if p.Server.Exited() {
			t.Fatalf("postgres exited:\n%s", p.Server.LogText())
		}
		return exec.Command("psql", p.URL, "-X", "-c", "SELECT 1;").Run() == nil
	})
}

// Stop shuts the server down and waits for it to exit.
func (p *Postgres) Stop() { p.Server.Stop() }

// Redis is a throwaway redis-server on 127.0.0.1 without persistence.
type Redis struct {
	Port   int
	Server *Server
	t      testing.TB
}

// StartRedis starts redis-server on a free port and waits until it
// answers PING.
func StartRedis(t testing.TB, extraArgs ...string) *Redis {
	t.Helper()
	Require(t, "redis-server")
	Require(t, "redis-cli")
	base := serviceDir(t, "tokpulse-redis-")
	r := &Redis{Port: FreePort(t), t: t}
	r.Server = StartServer(t, filepath.Join(base, "redis.log"), append([]string{"redis-server", "--port", strconv.Itoa(r.Port),
		"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", base}, extraArgs...)...)
	Eventually(t, 20*time.Second, "Redis to answer", func() bool {
		if r.Server.Exited() {
			t.Fatalf("redis-server exited:\n%s", r.Server.LogText())
		}
		out, err := exec.Command("redis-cli", "-p", strconv.Itoa(r.Port), "ping").Output()
		// A password-protected server answers NOAUTH: it is up all the same.
		return err == nil && (strings.TrimSpace(string(out)) == "PONG" || strings.Contains(string(out), "NOAUTH"))
	})
	return r
}

// CLI runs redis-cli against the server and returns its trimmed output.
func (r *Redis) CLI(args ...string) string {
	r.t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-e", "-p", strconv.Itoa(r.Port)}, args...)...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
