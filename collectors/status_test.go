package collectors

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

func TestProbeAndCheckStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	pc := DefaultProbeConfig()
	pc.Name, pc.URL = "health", srv.URL+"/health"
	// A refused connection's error quotes the URL, secret included.
	refused := DefaultProbeConfig()
	refused.Name, refused.URL = "refused", "http://"+testutil.FreeAddr(t)+"/health?token=s3cr3t"
	probes, err := NewProbes([]ProbeConfig{pc, refused}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cc := DefaultCheckConfig()
	cc.Name, cc.Command, cc.Value = "queue", []string{"echo", "(integer) 17"}, "stdout"
	checks := NewChecks([]CheckConfig{cc}, Options{})

	if st := probes.Status(); len(st) != 2 || st[0].Detail != "not run yet" || !st[0].LastRun.IsZero() {
		t.Errorf("before any run: %+v", st)
	}
	probes.RunOnce(context.Background(), 0)
	probes.RunOnce(context.Background(), 1)
	checks.RunOnce(context.Background(), 0)

	p := probes.Status()[0]
	if p.Kind != "probe" || p.Name != "health" || p.OK || p.Reason != ReasonStatus || !strings.Contains(p.Detail, "HTTP 503") || p.LastRun.IsZero() {
		t.Errorf("probe status %+v; want a failed run with reason status and HTTP 503", p)
	}
	r := probes.Status()[1]
	if r.Reason != ReasonRefused || !strings.Contains(r.Detail, "/health?token=") || strings.Contains(r.Detail, "s3cr3t") {
		t.Errorf("refused probe status %+v; want reason refused and the URL with its token redacted", r)
	}
	c := checks.Status()[0]
	if c.Kind != "check" || !c.OK || !strings.HasPrefix(c.Detail, "value 17, took ") {
		t.Errorf("check status %+v; want OK with value 17", c)
	}

	// The Set lists the parts after the collectors themselves.
	set := NewSet([]Named{{Name: "probes", Collector: probes}, {Name: "checks", Collector: checks}}, 0, nil)
	var kinds []string
	for _, s := range set.Status() {
		kinds = append(kinds, s.Kind+"/"+s.Name)
	}
	if got := strings.Join(kinds, ","); got != "collector/probes,collector/checks,probe/health,probe/refused,check/queue" {
		t.Errorf("Set.Status kinds = %s", got)
	}
}
