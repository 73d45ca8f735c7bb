package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// TestNotifyTestDirect: "notify test --direct" reports each output's
// result from this process and fails when one refuses.
func TestNotifyTestDirect(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no such team", http.StatusBadRequest) }))
	defer bad.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "alerts.jsonl")
	cases := []struct {
		name     string
		webhooks string
		want     map[string]string // output: "" when OK, else a part of the error
	}{
		{"all accept", fmt.Sprintf("[{name: central, url: %q}]", ok.URL), map[string]string{"central": "", "file:" + out: ""}},
		{"one refuses", fmt.Sprintf("[{name: central, url: %q}, {name: chat, url: %q}]", ok.URL, bad.URL),
			map[string]string{"central": "", "chat": "400 Bad Request", "file:" + out: ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("test.yaml", fmt.Appendf(nil, "agent: {state_dir: %s}\nnotify:\n  webhooks: %s\n  files: [{path: %s}]\n", dir, tc.webhooks, out))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := NotifyTestDirect(context.Background(), cfg, "test.yaml", BuildInfo{Version: "t"})
			if err != nil {
				t.Fatal(err)
			}
			if rep.ConfigFile != "test.yaml" || rep.PID != os.Getpid() || rep.User == "" || len(rep.Outputs) != len(tc.want) {
				t.Fatalf("report %+v, want one result per output of test.yaml, from this process", rep)
			}
			for _, o := range rep.Outputs {
				want, known := tc.want[o.Output]
				switch {
				case !known:
					t.Errorf("unexpected output %q", o.Output)
				case want == "" && !o.OK, want != "" && (o.OK || !strings.Contains(o.Error, want)):
					t.Errorf("%s: ok=%v error %q, want error containing %q", o.Output, o.OK, o.Error, want)
				}
			}
		})
	}
	data, _ := os.ReadFile(out)
	if strings.Count(string(data), "TokPulseNotifyTest") < 2 {
		t.Errorf("the file output did not get the test alert: %s", data)
	}
}

// TestNotifyTestAPI: POST /api/v1/notify/test makes the running agent send
// the test incident through its own outputs and answer per output; it
// refuses a request without a JSON content type (a browser's form post)
// and a second test while one runs.
func TestNotifyTestAPI(t *testing.T) {
	rc := testutil.NewReceiver(t, "s3cret")
	release := make(chan struct{})
	var held atomic.Bool
	arrived := make(chan struct{}, 8)
	rc.SetRespond(func(n int, w http.ResponseWriter, r *http.Request) bool {
		if held.Load() {
			arrived <- struct{}{}
			<-release
		}
		return false
	})
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "unknown token", http.StatusUnauthorized) }))
	defer refuse.Close()
	dir := t.TempDir()
	secret := filepath.Join(dir, "webhook.key")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := testutil.FreeAddr(t)
	cfgFile := filepath.Join(dir, "agent.yaml")
	yaml := fmt.Sprintf(`agent: {state_dir: %s, interval: 1s, hostname: web-1}
web: {listen: %q}
notify:
  heartbeat: 0s
  runbook_url: https://git.example.com/ops/INCIDENT_RUNBOOK.md
  webhooks:
    - {name: central, url: %q, secret_file: %s}
    - {name: chat, url: %q}
`, dir, listen, rc.URL, secret, refuse.URL)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	runAgent(t, Options{ConfigFile: cfgFile, Build: BuildInfo{Version: "t"}, Notifier: nopNotifier{}})
	testutil.Eventually(t, 15*time.Second, "ready", func() bool {
		resp, err := http.Get("http://" + listen + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	post := func(contentType string) (int, NotifyTestReport) {
		t.Helper()
		resp, err := http.Post("http://"+listen+"/api/v1/notify/test", contentType, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Data NotifyTestReport }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Data
	}

	t.Run("per output", func(t *testing.T) {
		code, rep := post("application/json")
		if code != http.StatusOK || rep.ConfigFile != cfgFile || rep.PID != os.Getpid() || len(rep.Outputs) != 2 {
			t.Fatalf("answer %d %+v", code, rep)
		}
		if o := rep.Outputs[0]; o.Output != "central" || !o.OK {
			t.Errorf("central: %+v", o)
		}
		if o := rep.Outputs[1]; o.Output != "chat" || o.OK || !strings.Contains(o.Error, "401 Unauthorized") {
			t.Errorf("chat: %+v, want the receiver's refusal", o)
		}
		reqs := rc.Requests()
		if len(reqs) != 2 {
			t.Fatalf("receiver got %d requests, want the firing and the resolved test events", len(reqs))
		}
		for i, kind := range []string{"initial", "resolved"} {
			var e alert.Event
			if err := json.Unmarshal(rc.Check(t, reqs[i])[0], &e); err != nil { // signed with the agent's secret
				t.Fatal(err)
			}
			if string(e.Kind) != kind || e.AlertName != "TokPulseNotifyTest" || e.Host != "web-1" ||
				e.RunbookURL != "https://git.example.com/ops/INCIDENT_RUNBOOK.md" || !strings.Contains(e.Text, e.RunbookURL) {
				t.Errorf("event %d: %+v\n%s", i, e, e.Text)
			}
		}
	})

	t.Run("form post refused", func(t *testing.T) {
		n := len(rc.Requests())
		if code, _ := post("text/plain"); code != http.StatusUnsupportedMediaType {
			t.Errorf("text/plain POST answered %d, want 415", code)
		}
		if len(rc.Requests()) != n {
			t.Error("a refused request sent notifications")
		}
	})

	t.Run("one at a time", func(t *testing.T) {
		held.Store(true)
		first := make(chan int, 1)
		go func() {
			code, _ := post("application/json")
			first <- code
		}()
		<-arrived // the first test is at the receiver
		if code, _ := post("application/json"); code != http.StatusConflict {
			t.Errorf("a second test while one runs answered %d, want 409", code)
		}
		held.Store(false)
		close(release)
		if code := <-first; code != http.StatusOK {
			t.Errorf("the first test answered %d", code)
		}
	})
}

// TestAgentDeliversAndServesOutbox runs a whole agent: an alert handed to
// its sink reaches the webhook, /api/v1/outbox shows the output, a reload
// keeps delivering, and shutdown drains.
func TestAgentDeliversAndServesOutbox(t *testing.T) {
	var got atomic.Int32
	var mu sync.Mutex
	seen := map[string]bool{}
	var fail atomic.Bool
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var b struct{ Events []struct{ ID string } }
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		for _, e := range b.Events {
			if !seen[e.ID] {
				seen[e.ID] = true
				got.Add(1) // at least once: count each id once
			}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	dir := t.TempDir()
	listen := testutil.FreeAddr(t)
	cfgFile := filepath.Join(dir, "agent.yaml")
	yaml := fmt.Sprintf("agent: {state_dir: %s, interval: 1s}\nweb: {listen: %q}\nnotify:\n  heartbeat: 0s\n  webhooks: [{name: central, url: %q}]\n", dir, listen, recv.URL)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	reload := make(chan struct{}, 1)
	a, err := New(Options{ConfigFile: cfgFile, Reload: reload, Build: BuildInfo{Version: "t"}, Notifier: nopNotifier{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	testutil.Eventually(t, 15*time.Second, "ready", func() bool {
		resp, err := http.Get("http://" + listen + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	now := time.Now()
	fire := func(name string) {
		t.Helper()
		err := a.notifier.Enqueue(ctx, []alert.Event{{ID: name, Kind: alert.KindInitial, Status: "firing", Fingerprint: name, AlertName: name,
			Severity: "P1", Labels: map[string]string{"alertname": name}, Host: "h", CreatedAt: now}})
		if err != nil {
			t.Fatal(err)
		}
	}
	fire("first")
	testutil.Eventually(t, 15*time.Second, "first delivery", func() bool { return got.Load() == 1 })

	resp, err := http.Get("http://" + listen + "/api/v1/outbox")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Data struct {
			Outputs map[string]struct{ Pending int } `json:"outputs"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, ok := st.Data.Outputs["central"]; !ok {
		t.Fatalf("/api/v1/outbox lacks the output: %+v", st)
	}
	resp, err = http.Post("http://"+listen+"/api/v1/outbox/requeue?output=central", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rq struct{ Data struct{ Requeued int } }
	if err := json.NewDecoder(resp.Body).Decode(&rq); err != nil || resp.StatusCode != http.StatusOK || rq.Data.Requeued != 0 {
		t.Fatalf("requeue: %d %+v %v", resp.StatusCode, rq, err)
	}
	resp.Body.Close()

	reload <- struct{}{}
	fire("second")
	testutil.Eventually(t, 15*time.Second, "delivery after reload", func() bool { return got.Load() == 2 })

	// Down at shutdown: the event stays in the state file for next time.
	fail.Store(true)
	fire("third")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fail.Store(false)
	a2, err := New(Options{ConfigFile: cfgFile, Build: BuildInfo{Version: "t"}, Notifier: nopNotifier{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { done <- a2.Run(ctx2) }()
	testutil.Eventually(t, 15*time.Second, "delivery after restart", func() bool { return got.Load() == 3 })
	cancel2()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestDefaultConfigShowsAlerts: the embedded configuration writes alerts
// to stdout, so that "make run" shows them.
func TestDefaultConfigShowsAlerts(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if names := cfg.Notify.OutputNames(); len(names) != 1 || names[0] != "stdout" {
		t.Fatalf("default outputs %v, want [stdout]", names)
	}
}
