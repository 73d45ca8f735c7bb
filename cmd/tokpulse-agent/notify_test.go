package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestNotifyTestDirectSubcommand runs "tokpulse-agent notify test --direct"
// against a real receiver that accepts and one that refuses.
func TestNotifyTestDirectSubcommand(t *testing.T) {
	var posts atomic.Int32
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte("TokPulseNotifyTest")) {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer ok.Close()
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad token", http.StatusUnauthorized)
	}))
	defer refuse.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, urls string
		code       int
		want       string
	}{
		{"accepted", fmt.Sprintf("[{name: central, url: %q}]", ok.URL), 0, "Sent from this process (pid " + strconv.Itoa(os.Getpid())},
		{"refused", fmt.Sprintf("[{name: central, url: %q}, {name: other, url: %q}]", ok.URL, refuse.URL), 1, "FAIL other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, tc.name+".yaml")
			if err := os.WriteFile(cfg, fmt.Appendf(nil, "agent: {state_dir: %s}\nnotify:\n  webhooks: %s\n", dir, tc.urls), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			if code := run([]string{"notify", "test", "--direct", "--config", cfg}, &out, &errOut); code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("stdout lacks %q:\n%s", tc.want, out.String())
			}
		})
	}
	// Without --config, the system configuration (here the first test's
	// file standing in for /etc/tokpulse-agent/agent.yaml), named first.
	code, out, errOut := runCLI(t, filepath.Join(dir, "accepted.yaml"), "notify", "test", "--direct")
	if want := "Configuration: " + filepath.Join(dir, "accepted.yaml") + "\nSent from this process"; code != 0 || !strings.HasPrefix(out, want) || !strings.Contains(out, "\nOK   central") {
		t.Errorf("exit %d, want 0 and stdout to start with %q\nstdout:\n%s\nstderr:\n%s", code, want, out, errOut)
	}
	if posts.Load() != 6 { // firing and resolved, three times
		t.Errorf("receiver got %d test posts, want 6", posts.Load())
	}
}
