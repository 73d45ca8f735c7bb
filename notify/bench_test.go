package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// countingReceiver accepts every POST and counts the events in it.
func countingReceiver(b *testing.B) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n.Add(int64(bytes.Count(body, []byte(`"kind":"`))))
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv, &n
}

// BenchmarkFlush10k measures how long 10,000 queued events (a receiver
// that was down) take to reach a local receiver once delivery starts.
// Budget: 10 s.
func BenchmarkFlush10k(b *testing.B) {
	const events = 10000
	srv, got := countingReceiver(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		got.Store(0)
		cfg := testConfig()
		cfg.Outbox.MaxEvents = events
		cfg.Webhooks = []WebhookConfig{webhookConfig(srv.URL, "")}
		st := openStore(b, b.TempDir())
		m, err := New(cfg, Options{Store: st, Host: "bench", Version: "b"})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		evs := make([]alert.Event, events)
		for j := range evs {
			evs[j] = event("bench", firing(fmt.Sprintf("Alert%05d", j), alert.Severities()[j%4], t0), t0)
		}
		if err := m.Enqueue(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.StartTimer()
		start := time.Now()
		m.Start(ctx)
		for got.Load() < events {
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/10k-events")
		b.StopTimer()
		m.Stop(ctx)
		cancel()
		_ = st.Close()
	}
}

// BenchmarkHandoverLatency measures one event from the tracker's hand-over
// (Enqueue, including the durable write) to the receiver's 2xx.
func BenchmarkHandoverLatency(b *testing.B) {
	srv, got := countingReceiver(b)
	cfg := testConfig()
	cfg.Webhooks = []WebhookConfig{webhookConfig(srv.URL, "")}
	st := openStore(b, b.TempDir())
	defer st.Close()
	m, err := New(cfg, Options{Store: st, Host: "bench", Version: "b"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(ctx)
	defer m.Stop(ctx)
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now := time.Now()
		if err := m.Enqueue(ctx, []alert.Event{event("bench", firing(fmt.Sprintf("A%d", i), alert.P1, now), now)}); err != nil {
			b.Fatal(err)
		}
		for got.Load() < int64(i+1) {
			time.Sleep(50 * time.Microsecond)
		}
		total += time.Since(now)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/alert")
}
