package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// TestAPIRefusesBrowserForgeries: POST /api/v1/outbox/requeue with Origin:
// https://evil.example and Content-Type: text/plain answered 200, with or
// without basic auth, and any Host was served, so a web page on the host
// could requeue and, through DNS rebinding, read status and evidence.
func TestAPIRefusesBrowserForgeries(t *testing.T) {
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	writeConfig(t, webCfg, "basic_auth_users:\n  ops: "+string(hash)+"\n")
	cfg := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfg, "agent:\n  hostname: web-1\n  state_dir: "+dir+"/state\nweb:\n  listen: "+addr+"\n  config_file: "+webCfg+"\n  allowed_hosts: [web-1.prod.example.com]\n")
	a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Addr: addr})
	a.WaitReady(t, 1, 15*time.Second)

	do := func(method, path string, header map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("ops", "s3cret")
		for k, v := range header {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const requeue = "/api/v1/outbox/requeue"
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		code               int
		body               string
	}{
		{"forged form-like POST", "POST", requeue, map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, 415, "needs Content-Type: application/json or the header X-TokPulse-Request"},
		{"POST without a content type", "POST", requeue, nil, 415, "needs Content-Type: application/json"},
		{"JSON POST from a foreign origin", "POST", requeue, map[string]string{"Origin": "https://evil.example", "Content-Type": "application/json"}, 403, "from another origin is refused"},
		{"JSON POST a browser marks cross-site", "POST", requeue, map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, 403, "from another origin is refused"},
		{"JSON POST from curl", "POST", requeue, map[string]string{"Content-Type": "application/json"}, 200, `"requeued":0`},
		{"marked POST from a script", "POST", requeue, map[string]string{"X-TokPulse-Request": "1"}, 200, `"requeued":0`},
		{"same-origin JSON POST", "POST", requeue, map[string]string{"Origin": "http://" + addr, "Content-Type": "application/json"}, 200, `"requeued":0`},
		{"rebinding name reading status", "GET", "/api/v1/status", map[string]string{"Host": "evil.example:" + port}, 421, "Host evil.example:" + port + " is not a name of this agent; add it to web.allowed_hosts"},
		{"rebinding name reading alerts", "GET", "/api/v1/alerts", map[string]string{"Host": "attacker.test"}, 421, "not a name of this agent"},
		{"rebinding name posting", "POST", requeue, map[string]string{"Host": "evil.example:" + port, "Content-Type": "application/json"}, 421, "not a name of this agent"},
		{"localhost", "GET", "/api/v1/status", map[string]string{"Host": "localhost:" + port}, 200, `"components"`},
		{"agent.hostname", "GET", "/api/v1/status", map[string]string{"Host": "WEB-1:" + port}, 200, `"components"`},
		{"an allowed name", "GET", "/metrics", map[string]string{"Host": "web-1.prod.example.com:" + port}, 200, "tokpulse_agent_build_info"},
		{"an IP address", "GET", "/api/v1/alerts", map[string]string{"Host": "[::1]:" + port}, 200, `"status": "success"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.method, tc.path, tc.header)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("%s %s = %d %q; want %d with %q", tc.method, tc.path, code, body, tc.code, tc.body)
			}
		})
	}
	_, body := do("GET", "/metrics", nil)
	for _, want := range []string{
		`tokpulse_agent_http_requests_refused_total{reason="content_type"} 2`,
		`tokpulse_agent_http_requests_refused_total{reason="cross_origin"} 2`,
		`tokpulse_agent_http_requests_refused_total{reason="host"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	a.Signal(t, syscall.SIGTERM)
	a.WaitExit(t, 10*time.Second)
}
