package agent

import (
	"bytes"
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

// TestNotifyTestCommand: "notify test" reports each output's result and
// fails when one refuses.
func TestNotifyTestCommand(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no such team", http.StatusBadRequest) }))
	defer bad.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "alerts.jsonl")
	cases := []struct {
		name     string
		webhooks string
		code     int
		want     []string
	}{
		{"all accept", fmt.Sprintf("[{name: central, url: %q}]", ok.URL), 0, []string{"OK   central", "OK   file:" + out}},
		{"one refuses", fmt.Sprintf("[{name: central, url: %q}, {name: chat, url: %q}]", ok.URL, bad.URL), 1, []string{"OK   central", "FAIL chat", "400 Bad Request", "OK   file:" + out}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("test.yaml", fmt.Appendf(nil, "agent: {state_dir: %s}\nnotify:\n  webhooks: %s\n  files: [{path: %s}]\n", dir, tc.webhooks, out))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if code := NotifyTest(context.Background(), cfg, BuildInfo{Version: "t"}, &b); code != tc.code {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.code, b.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
	data, _ := os.ReadFile(out)
	if strings.Count(string(data), "TokPulseNotifyTest") < 2 {
		t.Errorf("the file output did not get the test alert: %s", data)
	}
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
