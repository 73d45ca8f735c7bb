package agent

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// blockingCollector reports one gauge, after release is closed.
type blockingCollector struct{ release chan struct{} }

var blockingDesc = prometheus.NewDesc("blocking_gauge", "A gauge that waits.", nil, nil)

func (b blockingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- blockingDesc }
func (b blockingCollector) Collect(ch chan<- prometheus.Metric) {
	<-b.release
	ch <- prometheus.MustNewConstMetric(blockingDesc, prometheus.GaugeValue, 1)
}

// TestTimeoutGatherer serves /metrics through promhttp as newServer does
// and checks that a gather in time is served whole, that one past the
// timeout is answered with an error at the timeout, and that once every
// slot holds a hung gather, further scrapes fail at once instead of
// starting more goroutines.
func TestTimeoutGatherer(t *testing.T) {
	release := make(chan struct{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(blockingCollector{release})
	const timeout = 100 * time.Millisecond
	tg := newTimeoutGatherer(reg, timeout, 2)
	srv := httptest.NewServer(promhttp.HandlerForTransactional(tg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	defer srv.Close()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()

	get := func(t *testing.T) (int, string, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body), time.Since(start)
	}
	t.Run("hung gathers fail at the timeout", func(t *testing.T) {
		for range cap(tg.slots) {
			code, body, took := get(t)
			if code != http.StatusInternalServerError || !strings.Contains(body, "took longer than 100ms") {
				t.Fatalf("got %d %q, want 500 with the timeout", code, body)
			}
			if took < timeout {
				t.Fatalf("answered after %s, before the timeout %s", took, timeout)
			}
		}
	})
	t.Run("no slot left fails at once", func(t *testing.T) {
		code, body, _ := get(t)
		if code != http.StatusInternalServerError || !strings.Contains(body, "2 earlier gathers are still running") {
			t.Fatalf("got %d %q, want 500 naming the gathers still running", code, body)
		}
		if n := len(tg.slots); n != cap(tg.slots) {
			t.Fatalf("%d slots held, want %d", n, cap(tg.slots))
		}
	})
	t.Run("a gather in time is served", func(t *testing.T) {
		free() // the hung gathers end and give their slots back
		deadline := time.Now().Add(10 * time.Second)
		for len(tg.slots) > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		code, body, _ := get(t)
		if code != http.StatusOK || !strings.Contains(body, "blocking_gauge 1\n") {
			t.Fatalf("got %d %q, want 200 with blocking_gauge 1", code, body)
		}
	})
}
