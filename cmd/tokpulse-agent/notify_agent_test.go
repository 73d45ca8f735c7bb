package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokpulse/tokpulse-agent/agent"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// account is a system user the test runs a process as.
type account struct {
	name     string
	uid, gid uint32
}

func lookupAccount(t *testing.T, name string) account {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return account{name, uint32(uid), uint32(gid)}
}

// command runs the agent's binary as acct.
func (acct account) command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: acct.uid, Gid: acct.gid}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent", "LANG=C.UTF-8"}
	return cmd
}

// openDir is a directory every user may enter, as /etc/tokpulse-agent is.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// installBinary copies the agent's binary where every user may run it
// (the build directory is private to root).
func installBinary(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(testutil.AgentBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tokpulse-agent")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// startAs starts `tokpulse-agent run --config cfg` as acct, waits until it
// serves /-/ready on addr, and kills it (by PID) at the end of the test.
func startAs(t *testing.T, acct account, bin, cfg, addr string) *exec.Cmd {
	t.Helper()
	cmd := acct.command(bin, "run", "--config", cfg)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", out.String())
		}
	})
	testutil.Eventually(t, 20*time.Second, "the agent to serve /-/ready", func() bool {
		select {
		case <-done:
			t.Fatalf("the agent exited:\n%s", out.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return cmd
}

// events decodes the events of every request the receiver got, checking
// each against docs/webhook.md (schema, signature with its key).
func events(t *testing.T, rc *testutil.Receiver) []alert.Event {
	t.Helper()
	var out []alert.Event
	for _, r := range rc.Requests() {
		for _, raw := range rc.Check(t, r) {
			var e alert.Event
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
	}
	return out
}

// TestServicePath runs the agent as an unprivileged user (daemon, standing
// in for tokpulse-agent) whose webhook secret only that user can read,
// with a signing webhook receiver, and proves issue 15's two complaints
// fixed on the real binary:
//
//   - the texts are runbook-grade: a failing health probe's initial event
//     carries the rule's first steps, the probe's status and body excerpt
//     (and not the other failing probe's), and a link to the runbook
//     section; its resolution says what recovered, with no instructions;
//   - `notify test`, run as another user (nobody) who cannot read the
//     secret, has the agent send through its outputs and reports OK, where
//     `notify test --direct` from that user fails on the secret: before,
//     the CLI said OK from root while the service could not send.
func TestServicePath(t *testing.T) {
	testutil.RequireRoot(t)
	svc, operator := lookupAccount(t, "daemon"), lookupAccount(t, "nobody")
	dir := openDir(t)
	bin := installBinary(t, dir)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "webhook.key")
	if err := os.WriteFile(secret, []byte("s3cret-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{state, secret} {
		if err := os.Chown(p, int(svc.uid), int(svc.gid)); err != nil {
			t.Fatal(err)
		}
	}
	rc := testutil.NewReceiver(t, "s3cret-key")
	var healthy atomic.Bool
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && healthy.Load() {
			_, _ = io.WriteString(w, `{"status":"ok"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"error","database":"unreachable"}`)
	}))
	defer app.Close()
	addr := testutil.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfg, fmt.Sprintf(`agent: {hostname: web-1, interval: 1s, state_dir: %s}
web: {listen: %q}
probes:
  - {name: health, url: %q, interval: 1s, timeout: 1s}
  - {name: performance, url: %q, interval: 1s, timeout: 1s}
rule_files: ["builtin:runbook.yml"]
notify:
  heartbeat: 0s
  runbook_url: https://github.com/example/tokpulse/blob/main/docs/INCIDENT_RUNBOOK.md
  webhooks:
    - {name: central, url: %q, secret_file: %s}
`, state, addr, app.URL+"/health", app.URL+"/performance/status", rc.URL, secret))
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	agentCmd := startAs(t, svc, bin, cfg, addr)

	t.Run("runbook texts", func(t *testing.T) {
		var initial, resolved alert.Event
		testutil.Eventually(t, 30*time.Second, "TokPulseHealthCheckFailed at the receiver", func() bool {
			for _, e := range events(t, rc) {
				if e.AlertName == "TokPulseHealthCheckFailed" && e.Kind == alert.KindInitial {
					initial = e
					return true
				}
			}
			return false
		})
		for _, want := range []string{
			"🚨 INCIDENT ALERT\nSeverity: P1",
			"Runbook: Complete Service Outage – https://github.com/example/tokpulse/blob/main/docs/INCIDENT_RUNBOOK.md#complete-service-outage",
			"First steps: The /health endpoint of TokPulse did not answer as expected",
			"• Last failure of probe health (GET " + app.URL + "/health): status",
			"status=503",
			`body: {"status":"error","database":"unreachable"}`,
		} {
			if !strings.Contains(initial.Text, want) {
				t.Errorf("initial text lacks %q:\n%s", want, initial.Text)
			}
		}
		for _, not := range []string{"value 0", "performance", "Filesystems"} {
			if strings.Contains(initial.Text, not) {
				t.Errorf("initial text has %q:\n%s", not, initial.Text)
			}
		}
		for _, s := range initial.Evidence {
			if s.Source == "probe/performance" {
				t.Errorf("the other probe's failure is in the health alert's evidence: %+v", s)
			}
		}
		if len(initial.Evidence) == 0 || initial.Evidence[0].Source != "probe/health" || !initial.Evidence[0].Relevant {
			t.Errorf("the health probe's failure is not the first, relevant evidence: %+v", initial.Evidence)
		}

		healthy.Store(true)
		testutil.Eventually(t, 30*time.Second, "its resolution at the receiver", func() bool {
			for _, e := range events(t, rc) {
				if e.AlertName == "TokPulseHealthCheckFailed" && e.Kind == alert.KindResolved {
					resolved = e
					return true
				}
			}
			return false
		})
		if !strings.Contains(resolved.Text, "Recovered: TokPulseHealthCheckFailed on web-1 no longer fires; it was: TokPulse health check is failing") ||
			strings.Contains(resolved.Text, "curl") || strings.Contains(resolved.Text, "systemctl") {
			t.Errorf("resolved text:\n%s", resolved.Text)
		}
	})

	t.Run("notify test through the agent", func(t *testing.T) {
		before := len(rc.Requests())
		out, err := operator.command(bin, "notify", "test", "--config", cfg).CombinedOutput()
		if err != nil {
			t.Fatalf("notify test as %s: %v\n%s", operator.name, err, out)
		}
		want := fmt.Sprintf("Configuration: %s\nAgent at http://%s (web.listen of %s)\nSent by the agent (pid %d, user daemon) through its outputs:\nOK   central (", cfg, addr, cfg, agentCmd.Process.Pid)
		if !strings.HasPrefix(string(out), want) {
			t.Errorf("output:\n%s\nwant it to start with\n%s", out, want)
		}
		var kinds []string
		for _, e := range events(t, rc)[before:] {
			if e.AlertName == "TokPulseNotifyTest" {
				kinds = append(kinds, string(e.Kind))
			}
		}
		if strings.Join(kinds, " ") != "initial resolved" {
			t.Errorf("the receiver got test events %v, want initial resolved, signed with the service's key", kinds)
		}
	})

	t.Run("notify test --direct cannot read the secret", func(t *testing.T) {
		out, err := operator.command(bin, "notify", "test", "--direct", "--config", cfg).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "permission denied") {
			t.Errorf("notify test --direct as %s: %v\n%s\nwant exit 1 and the secret's permission error", operator.name, err, out)
		}
	})
}

// TestNotifyTestDirectWarns: run as root, --direct reads a secret the
// service's user could not, says OK, and warns that the service could not
// send with it (issue 15: the OK of root's CLI meant nothing).
func TestNotifyTestDirectWarns(t *testing.T) {
	testutil.RequireRoot(t)
	dir := openDir(t)
	secret := filepath.Join(dir, "webhook.key")
	if err := os.WriteFile(secret, []byte("k\n"), 0o600); err != nil { // root:root 0600
		t.Fatal(err)
	}
	rc := testutil.NewReceiver(t, "k")
	cfg := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfg, fmt.Sprintf("agent: {state_dir: %s}\nnotify:\n  webhooks: [{name: central, url: %q, secret_file: %s}]\n", dir, rc.URL, secret))
	var out, errOut strings.Builder
	c := &cli{stdout: &out, stderr: &errOut, systemConfig: filepath.Join(dir, "absent.yaml"),
		service: agent.ServiceAccount{User: "daemon", Hidden: map[string]string{}}}
	if code := c.main([]string{"notify", "test", "--direct", "--config", cfg}); code != 0 || !strings.Contains(out.String(), "OK   central") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if want := "warning: notify.webhooks[0].secret_file: the service user daemon cannot read " + secret; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
	}
}

// TestNotifyTestTLS: the CLI reaches an agent that serves TLS from its web
// config file over HTTPS, trusting exactly the agent's certificate, and an
// agent behind basic auth with --http.config.file, as status does.
func TestNotifyTestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSignedCert(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	rc := testutil.NewReceiver(t, "")
	for _, tc := range []struct {
		name, web string
		http      string // --http.config.file content, "" for none
		code      int
		want      string
	}{
		{"tls: the agent's own certificate", fmt.Sprintf("tls_server_config: {cert_file: %s, key_file: %s}\n", certFile, keyFile), "", 0, "OK   central"},
		{"basic auth without credentials", fmt.Sprintf("tls_server_config: {cert_file: %s, key_file: %s}\nbasic_auth_users: {ops: %s}\n", certFile, keyFile, hash), "", 1,
			"the agent asks for basic auth"},
		{"basic auth with --http.config.file", fmt.Sprintf("tls_server_config: {cert_file: %s, key_file: %s}\nbasic_auth_users: {ops: %s}\n", certFile, keyFile, hash),
			fmt.Sprintf("basic_auth: {username: ops, password_file: %s}\ntls_config: {ca_file: %s}\n", filepath.Join(dir, "pw"), certFile), 0, "OK   central"},
		{"basic auth with a wrong password", fmt.Sprintf("tls_server_config: {cert_file: %s, key_file: %s}\nbasic_auth_users: {ops: %s}\n", certFile, keyFile, hash),
			fmt.Sprintf("basic_auth: {username: ops, password: nope}\ntls_config: {ca_file: %s}\n", certFile), 1, "401 Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := t.TempDir()
			writeConfig(t, filepath.Join(dir, "pw"), "pw\n")
			web := filepath.Join(sub, "web.yml")
			writeConfig(t, web, tc.web)
			addr := testutil.FreeAddr(t)
			cfg := filepath.Join(sub, "agent.yaml")
			writeConfig(t, cfg, fmt.Sprintf("agent: {state_dir: %s}\nweb: {listen: %q, config_file: %s}\nnotify:\n  heartbeat: 0s\n  webhooks: [{name: central, url: %q}]\n",
				filepath.Join(sub, "state"), addr, web, rc.URL))
			a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Addr: addr})
			a.WaitReady(t, 1, 20*time.Second)
			args := []string{"notify", "test", "--config", cfg}
			if tc.http != "" {
				hc := filepath.Join(sub, "http.yml")
				writeConfig(t, hc, tc.http)
				args = append(args, "--http.config.file", hc)
			}
			code, out, errOut := runCLI(t, filepath.Join(sub, "absent.yaml"), args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, out, errOut)
			}
			if tc.code == 0 && !strings.Contains(errOut, "Agent at https://"+addr) {
				t.Errorf("not reached over HTTPS:\n%s", errOut)
			}
			if tc.http == "" && tc.code == 0 {
				// status finds it the same way.
				if code, _, errOut := runCLI(t, filepath.Join(sub, "absent.yaml"), "status", "--config", cfg, "--json"); code != 0 {
					t.Errorf("status exited %d:\n%s", code, errOut)
				}
			}
		})
	}
}

// TestNotifyTestPinsTheCertificate: a server on the agent's address with
// another certificate is not trusted.
func TestNotifyTestPinsTheCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSignedCert(t, dir)
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the CLI sent a request to a server with another certificate")
	}))
	defer other.Close()
	web := filepath.Join(dir, "web.yml")
	writeConfig(t, web, fmt.Sprintf("tls_server_config: {cert_file: %s, key_file: %s}\n", certFile, keyFile))
	cfg := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfg, fmt.Sprintf("agent: {state_dir: %s}\nweb: {listen: %q, config_file: %s}\n", dir, other.Listener.Addr(), web))
	code, _, errOut := runCLI(t, filepath.Join(dir, "absent.yaml"), "notify", "test", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "not the agent's") {
		t.Errorf("exit %d, want 1 and the certificate refused:\n%s", code, errOut)
	}
}

// TestNotifyTestNoAgent: without a running agent, notify test says so and
// points at --direct.
func TestNotifyTestNoAgent(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfg, fmt.Sprintf("agent: {state_dir: %s}\nweb: {listen: %q}\n", dir, testutil.FreeAddr(t)))
	code, _, errOut := runCLI(t, filepath.Join(dir, "absent.yaml"), "notify", "test", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "cannot reach the agent") || !strings.Contains(errOut, "--direct") {
		t.Errorf("exit %d:\n%s", code, errOut)
	}
	if code, _, errOut := runCLI(t, filepath.Join(dir, "absent.yaml"), "notify", "test", "--direct", "--url", "http://x"); code != 2 {
		t.Errorf("--direct with --url exited %d, want a usage error:\n%s", code, errOut)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and localhost and its
// key into dir.
func selfSignedCert(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "web-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost", "web-1"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeConfig(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeConfig(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	return certFile, keyFile
}
