// Package testutil holds helpers shared by the tests that run the real
// tokpulse-agent binary: building it once, starting it with a config, a
// free port and a real sd_notify socket, and waiting for conditions with a
// deadline instead of sleeping.
package testutil

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// AgentBinary returns the path of the tokpulse-agent binary: the one named
// by $TOKPULSE_AGENT_BIN (set by `make test`), or one built for this test
// run.
func AgentBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TOKPULSE_AGENT_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("TOKPULSE_AGENT_BIN=%s: %v (run make build)", p, err)
		}
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tokpulse-agent-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "tokpulse-agent")
		cmd := exec.Command("go", "build", "-o", builtBin, "github.com/tokpulse/tokpulse-agent/cmd/tokpulse-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// RemoveBuiltBinary deletes the binary AgentBinary built, if any; call it
// from TestMain after m.Run.
func RemoveBuiltBinary() {
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Eventually polls cond every 10 ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// NotifySocket is a real unix datagram socket in the role of systemd's
// $NOTIFY_SOCKET; it records every message the agent sends.
type NotifySocket struct {
	Path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
}

// NewNotifySocket listens on a socket in a temporary directory.
func NewNotifySocket(t testing.TB) *NotifySocket {
	t.Helper()
	// Socket paths are limited to 108 bytes; t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "tpn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &NotifySocket{Path: path, conn: conn}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, string(buf[:n]))
			s.mu.Unlock()
		}
	}()
	return s
}

// Messages returns the messages received so far.
func (s *NotifySocket) Messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// Count returns how many messages start with prefix.
func (s *NotifySocket) Count(prefix string) int {
	n := 0
	for _, m := range s.Messages() {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// Agent is a running tokpulse-agent process.
type Agent struct {
	Cmd    *exec.Cmd
	Addr   string
	Notify *NotifySocket
	stderr *SyncBuffer
	done   chan struct{}
	err    error
}

// AgentOptions configure StartAgent.
type AgentOptions struct {
	Args []string // after "run"
	Env  []string
	Addr string // the web.listen of the config, for HTTP helpers
}

// StartAgent starts `tokpulse-agent run ARGS...` with a NOTIFY_SOCKET and
// stops it (SIGKILL, by PID) at the end of the test if it still runs.
func StartAgent(t testing.TB, o AgentOptions) *Agent {
	t.Helper()
	a := &Agent{Addr: o.Addr, Notify: NewNotifySocket(t), stderr: &SyncBuffer{}, done: make(chan struct{})}
	a.Cmd = exec.Command(AgentBinary(t), append([]string{"run"}, o.Args...)...)
	a.Cmd.Env = append(append(os.Environ(), "NOTIFY_SOCKET="+a.Notify.Path), o.Env...)
	a.Cmd.Stdout = a.stderr
	a.Cmd.Stderr = a.stderr
	if err := a.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.err = a.Cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			_ = a.Cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", a.Output())
		}
	})
	return a
}

// Output returns what the agent wrote to stdout and stderr so far.
func (a *Agent) Output() string { return a.stderr.String() }

// Signal sends sig to the agent.
func (a *Agent) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := a.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// WaitExit waits up to timeout for the process to end and returns its exit
// code.
func (a *Agent) WaitExit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(timeout):
		t.Fatalf("agent did not exit within %s", timeout)
	}
	if a.Cmd.ProcessState == nil {
		t.Fatalf("agent wait failed: %v", a.err)
	}
	return a.Cmd.ProcessState.ExitCode()
}

// WaitReady waits for READY=1 on the notify socket.
func (a *Agent) WaitReady(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, fmt.Sprintf("READY=1 #%d", n), func() bool {
		select {
		case <-a.done:
			t.Fatalf("agent exited before READY=1: %v\n%s", a.err, a.Output())
		default:
		}
		return a.Notify.Count("READY=1") >= n
	})
}

// Get fetches path from the agent's HTTP server and returns the body.
func (a *Agent) Get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// Require fails the test unless the named command is installed; CI's
// .ci/deps installs every command the tests require.
func Require(t testing.TB, cmd string) string {
	t.Helper()
	p, err := exec.LookPath(cmd)
	if err != nil {
		t.Fatalf("%s is required by this test and missing: run ./.ci/deps (as root) to install it", cmd)
	}
	return p
}

// RequireRoot fails the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 || runtime.GOOS != "linux" {
		t.Fatal("this test needs root on Linux (CI runs as root)")
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a process's
// output, a logger used by several goroutines).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
