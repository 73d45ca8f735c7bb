package collectors

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"

	"github.com/theory/jsonpath"
)

// hangingListener accepts connections and never answers; it closes them
// when the test ends.
func hangingListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func testMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"ok","checks":{"db":"ok","redis":"ok"}}`)
	})
	mux.HandleFunc("/degraded", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"degraded","checks":{"db":"down","redis":"ok"},"token":"s3cr3t-value"}`)
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, "database connection refused password=hunter2")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/health", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/performance/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"response_time_p95_ms": 412.5, "error_rate": 0.012, "queue": {"depth": "17"}, "healthy": true, "name": "api"}`)
	})
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-123" || r.Header.Get("X-Env") != "prod" || r.Method != "POST" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	})
	mux.HandleFunc("/errors", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "recent errors: none\n")
	})
	return mux
}

func TestProbeHTTP(t *testing.T) {
	srv := httptest.NewServer(testMux())
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(testMux())
	defer tlsSrv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("Bearer tok-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hang := hangingListener(t)
	closed := closedPort(t)

	for _, tc := range []struct {
		name       string
		yaml       string
		wantReason string // "" for success
		wantStatus int
		wantErr    string
		wantValues map[string]float64
	}{
		{name: "healthy", yaml: `url: URL/health`, wantStatus: 200},
		{name: "method, headers, header_files and body", yaml: "url: URL/auth\nmethod: POST\nbody: ping\nheaders: {X-Env: prod}\nheader_files: {Authorization: " + tokenFile + "}\nexpect: {body_matches: '^got ping$'}", wantStatus: 200},
		{name: "missing header file", yaml: "url: URL/auth\nheader_files: {Authorization: /nonexistent/token}", wantReason: ReasonError, wantErr: "/nonexistent/token"},
		{name: "500", yaml: `url: URL/broken`, wantReason: ReasonStatus, wantStatus: 500, wantErr: "status 500"},
		{name: "500 accepted by expect", yaml: "url: URL/broken\nexpect: {status: [200, \"5xx\"]}", wantStatus: 500},
		{name: "slow beyond the timeout", yaml: "url: URL/slow\ntimeout: 300ms", wantReason: ReasonTimeout},
		{name: "accepts and never answers", yaml: "url: http://" + hang + "/\ntimeout: 300ms", wantReason: ReasonTimeout},
		{name: "connection refused", yaml: "url: http://" + closed + "/", wantReason: ReasonRefused},
		{name: "endless body", yaml: "url: URL/endless\nmax_body_bytes: 65536", wantReason: ReasonBody, wantStatus: 200, wantErr: "larger than max_body_bytes"},
		{name: "bad TLS certificate", yaml: "url: TLSURL/health", wantReason: ReasonTLS, wantErr: "certificate"},
		{name: "TLS with the CA file", yaml: "url: TLSURL/health\ntls: {ca_file: " + caFile + "}", wantStatus: 200},
		{name: "TLS with insecure_skip_verify", yaml: "url: TLSURL/health\ntls: {insecure_skip_verify: true}", wantStatus: 200},
		{name: "redirect followed", yaml: "url: URL/moved", wantStatus: 200},
		{name: "redirect not followed", yaml: "url: URL/moved\nfollow_redirects: false\nexpect: {status: [301]}", wantStatus: 301},
		{name: "redirect loop", yaml: "url: URL/loop\nmax_redirects: 5", wantReason: ReasonStatus, wantStatus: 302, wantErr: "redirect loop"},
		{name: "body must match", yaml: "url: URL/errors\nexpect: {body_matches: 'errors: none'}", wantStatus: 200},
		{name: "body must match, fails", yaml: "url: URL/errors\nexpect: {body_matches: 'all good'}", wantReason: ReasonBody, wantStatus: 200},
		{name: "body must not match, fails", yaml: "url: URL/errors\nexpect: {body_not_matches: 'errors'}", wantReason: ReasonBody, wantStatus: 200},
		{name: "JSON assertion passes", yaml: "url: URL/health\nexpect: {json: [{path: $.status, equals: ok}, {path: '$.checks.*', equals: ok}]}", wantStatus: 200},
		{name: "JSON assertion fails", yaml: "url: URL/degraded\nexpect: {json: [{path: $.status, equals: ok}]}", wantReason: ReasonJSON, wantStatus: 200, wantErr: `$["status"] is "degraded", expected "ok"`},
		{name: "JSON assertion on every node", yaml: "url: URL/degraded\nexpect: {json: [{path: '$.checks.*', equals: ok}]}", wantReason: ReasonJSON, wantErr: `"down"`, wantStatus: 200},
		{name: "JSON path selects nothing", yaml: "url: URL/health\nexpect: {json: [{path: $.missing, exists: true}]}", wantReason: ReasonJSON, wantStatus: 200, wantErr: "selects nothing"},
		{name: "JSON not JSON", yaml: "url: URL/errors\nexpect: {json: [{path: $.status, equals: ok}]}", wantReason: ReasonJSON, wantStatus: 200, wantErr: "not JSON"},
		{name: "JSON min and max", yaml: "url: URL/performance/status\nexpect: {json: [{path: $.response_time_p95_ms, max: 400}]}", wantReason: ReasonJSON, wantStatus: 200, wantErr: "above max 400"},
		{
			name:       "JSON extraction",
			yaml:       "url: URL/performance/status\nvalues:\n- {field: p95_ms, path: $.response_time_p95_ms}\n- {field: error_rate, path: $.error_rate}\n- {field: queue_depth, path: $.queue.depth}\n- {field: healthy, path: $.healthy}\n- {field: name, path: $.name}\n- {field: absent, path: $.nope}",
			wantStatus: 200,
			wantValues: map[string]float64{"p95_ms": 412.5, "error_rate": 0.012, "queue_depth": 17, "healthy": 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.NewReplacer("TLSURL", tlsSrv.URL, "URL", srv.URL).Replace(tc.yaml)
			cfg := decodeConfig(t, "probes:\n- name: p\n  "+strings.ReplaceAll(src, "\n", "\n  "))
			target, err := newProbeTarget(cfg.Probes[0])
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Probes[0].Timeout.D())
			defer cancel()
			r := ProbeHTTP(ctx, target)
			if r.Success != (tc.wantReason == "") || r.Reason != tc.wantReason {
				t.Fatalf("success=%v reason=%q err=%v; want reason %q", r.Success, r.Reason, r.Err, tc.wantReason)
			}
			if tc.wantStatus != 0 && r.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", r.StatusCode, tc.wantStatus)
			}
			if tc.wantErr != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want it to contain %q", r.Err, tc.wantErr)
			}
			if tc.wantValues != nil && fmt.Sprint(r.Values) != fmt.Sprint(tc.wantValues) {
				t.Errorf("values = %v, want %v", r.Values, tc.wantValues)
			}
			if r.StatusCode != 0 && r.Phases["connect"] <= 0 {
				t.Errorf("connect phase = %v, want it measured", r.Phases["connect"])
			}
		})
	}
}

func TestProbesCollector(t *testing.T) {
	srv := httptest.NewServer(testMux())
	defer srv.Close()
	cfg := decodeConfig(t, fmt.Sprintf(`
probes:
- name: health
  url: %[1]s/health
  interval: 50ms
  timeout: 40ms
  expect:
    json: [{path: $.status, equals: ok}]
- name: degraded
  url: %[1]s/degraded
  expect:
    json: [{path: $.status, equals: ok}]
- name: broken
  url: %[1]s/broken
- name: performance
  url: %[1]s/performance/status
  values: [{field: p95_ms, path: $.response_time_p95_ms}]
`, srv.URL))
	p, err := NewProbes(cfg.Probes, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := collect(t, p)
	if _, ok := before[`tokpulse_probe_success{probe="health"}`]; ok {
		t.Error("success reported before the first run")
	}
	if v, ok := before[`tokpulse_probe_failures_total{probe="health",reason="timeout"}`]; !ok || v != 0 {
		t.Errorf("failure counters do not start at 0: %v", before)
	}
	for i := range cfg.Probes {
		p.RunOnce(context.Background(), i)
	}
	p.RunOnce(context.Background(), 2)
	got := collect(t, p)
	for k, want := range map[string]float64{
		`tokpulse_probe_success{probe="health"}`:                            1,
		`tokpulse_probe_success{probe="degraded"}`:                          0,
		`tokpulse_probe_success{probe="broken"}`:                            0,
		`tokpulse_probe_http_status_code{probe="broken"}`:                   500,
		`tokpulse_probe_failures_total{probe="broken",reason="status"}`:     2,
		`tokpulse_probe_failures_total{probe="degraded",reason="json"}`:     1,
		`tokpulse_probe_failures_total{probe="health",reason="status"}`:     0,
		`tokpulse_probe_value{field="p95_ms",probe="performance"}`:          412.5,
		`tokpulse_probe_phase_duration_seconds{phase="tls",probe="health"}`: 0,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if got[`tokpulse_probe_duration_seconds{probe="health"}`] <= 0 {
		t.Error("duration not measured")
	}

	ev := p.Evidence()
	if len(ev) != 2 {
		t.Fatalf("evidence sections = %d, want 2 (degraded, broken): %+v", len(ev), ev)
	}
	for _, s := range ev {
		if s.Labels["probe"] == "" || s.Kind != "probe_failure" {
			t.Errorf("section %q lacks its probe label or kind: %+v", s.Title, s)
		}
		text := s.Title
		for _, e := range s.Entries {
			text += "\n" + e.Text
		}
		if strings.Contains(text, "hunter2") || strings.Contains(text, "s3cr3t-value") {
			t.Errorf("evidence leaks a secret:\n%s", text)
		}
		if s.Labels["probe"] == "broken" && !strings.Contains(text, "database connection refused") {
			t.Errorf("evidence lacks the body excerpt:\n%s", text)
		}
	}

	// The scheduled runs keep going on their own.
	lastTime := func() time.Time {
		s := p.jobs[0]
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.last.Time
	}
	t0 := lastTime()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	testutil.Eventually(t, 20*time.Second, "a scheduled run of the 50ms probe", func() bool { return lastTime().After(t0) })
	cancel()
	<-done
}

// BenchmarkProbeHTTP measures one run of an HTTP probe with a JSON
// assertion against a local server (which runs in the same process, so the
// time includes the server's share).
func BenchmarkProbeHTTP(b *testing.B) {
	srv := httptest.NewServer(testMux())
	defer srv.Close()
	c := DefaultProbeConfig()
	c.Name, c.URL = "health", srv.URL+"/health"
	c.Expect.JSON = []JSONAssertion{{Path: JSONPath{Path: jsonpath.MustParse("$.status")}, Equals: "ok"}}
	target, err := newProbeTarget(c)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := ProbeHTTP(context.Background(), target); !r.Success {
			b.Fatal(r.Err)
		}
	}
}

// TestProbeHTTPLeavesNoConnection runs a probe repeatedly and sees the
// server's connections all closed: each run opens its own and closes it.
func TestProbeHTTPLeavesNoConnection(t *testing.T) {
	var mu sync.Mutex
	open, opened := 0, 0
	srv := httptest.NewUnstartedServer(testMux())
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open++
			opened++
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.Start()
	defer srv.Close()
	c := DefaultProbeConfig()
	c.Name, c.URL = "health", srv.URL+"/health"
	target, err := newProbeTarget(c)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if r := ProbeHTTP(context.Background(), target); !r.Success || r.Phases["connect"] <= 0 {
			t.Fatalf("run failed or did not connect: %+v", r)
		}
	}
	testutil.Eventually(t, 20*time.Second, "every connection to close", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return open == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if opened != 5 {
		t.Errorf("%d connections for 5 runs, want one each", opened)
	}
}
