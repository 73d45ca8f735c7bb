package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// logsConfig is the logs: section of the shipped configuration
// (packaging/agent.yaml) with its files under dir: the app log with the
// runbook's patterns, the error log, and the access log with the request
// metrics and the 5xx and 429 lines kept as evidence.
func logsConfig(t testing.TB, dir string) string {
	return shipped(t, "logs", func(m map[string]any) bool {
		paths, _ := m["paths"].([]any)
		for i, p := range paths {
			paths[i] = strings.Replace(p.(string), "/var/log/tokpulse/", dir+"/", 1)
		}
		return true
	})
}

// logWriter appends lines to a file at a steady rate, as an application
// does, until stopped.
type logWriter struct {
	stop     chan struct{}
	done     chan struct{}
	stopOnce *sync.Once
	n        atomic.Int64
}

// writeLog starts appending line(i) for i = 0, 1, ... to path, perSecond
// lines a second in batches every 50 ms. The test's end stops it.
func writeLog(t *testing.T, path string, perSecond int, line func(i int64) string) *logWriter {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := &logWriter{stop: make(chan struct{}), done: make(chan struct{}), stopOnce: &sync.Once{}}
	batch := max(perSecond/20, 1)
	go func() {
		defer close(w.done)
		defer f.Close()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			var b strings.Builder
			for range batch {
				b.WriteString(line(w.n.Load()) + "\n")
				w.n.Add(1)
			}
			if _, err := f.WriteString(b.String()); err != nil {
				t.Errorf("writing %s: %v", path, err)
				return
			}
		}
	}()
	t.Cleanup(w.Stop)
	return w
}

// Stop ends the writer and waits for its last write.
func (w *logWriter) Stop() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

// accessLine is one access-log line in the shipped format (nginx combined
// plus rt_ms).
func accessLine(status int, path string) string {
	return fmt.Sprintf(`127.0.0.1 - - [%s] "GET %s HTTP/1.1" %d 512 "-" "Mozilla/5.0" rt_ms=%d`,
		time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700"), path, status, 12)
}

// every reports whether line i is one of pct in 100, spread evenly
// (never two in a row below 50 %), so that any window of the log holds
// pct % of such lines up to one line.
func every(i, pct int64) bool {
	return (i+1)*pct/100 > i*pct/100
}

// metricSum returns the sum of the samples in the agent's /metrics whose
// line starts with prefix and contains every one of contains.
func (s *scenario) metricSum(prefix string, contains ...string) float64 {
	s.t.Helper()
	_, body := s.agent.Get(s.t, "/metrics")
	sum := 0.0
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		ok := true
		for _, c := range contains {
			ok = ok && strings.Contains(l, c)
		}
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// TestErrorRate: an access log written at a steady 100 requests a second,
// 3 % of them 503 → nothing; 8 % → the P2 TokPulseHighErrorRate once the
// windowed rate has stayed above 5 % for `for` (5m and rate[5m] in the pack,
// 5s here), with the failing requests as evidence; resolved when it drops
// back to 3 %.
func TestErrorRate(t *testing.T) {
	t.Parallel()
	s := newScenario(t, "errorrate")
	var pct atomic.Int64
	pct.Store(3)
	writeLog(t, s.dir+"/access.log", 100, func(i int64) string {
		if every(i, pct.Load()) {
			return accessLine(503, "/api/videos/upload")
		}
		return accessLine(200, "/api/videos")
	})
	s.start(agentOptions{Body: logsConfig(t, s.dir)})

	// 3 %: long enough for the rule's window and `for` twice over, measured
	// in requests the agent has read rather than in time slept.
	m := matcher{alert: "TokPulseHighErrorRate", labels: map[string]string{"source": "access"}}
	base := s.metricSum("tokpulse_http_requests_total{", `source="access"`)
	testutil.Eventually(t, 60*time.Second, "the agent to read 2,000 requests at 3 % errors", func() bool {
		// Not even pending: the windowed rate must stay under 5 %.
		if got := s.agentAlerts(m); len(got) > 0 {
			t.Fatalf("3 %% errors made %s %s", m.alert, got[0].State)
		}
		return s.metricSum("tokpulse_http_requests_total{", `source="access"`)-base >= 2000
	})
	if r := s.metricSum("tokpulse_http_requests_total{", `source="access"`, `status="503"`) / s.metricSum("tokpulse_http_requests_total{", `source="access"`); r < 0.025 || r > 0.035 {
		t.Fatalf("the agent counted %.2f %% errors, want 3 %%", 100*r)
	}

	crossed := time.Now()
	pct.Store(8)
	e := s.waitFiring(m, "P2", crossed, 40*time.Second)
	if e.Value == nil || *e.Value < 6 || *e.Value > 10 {
		t.Errorf("value %v, want about 8 (%%)", e.Value)
	}
	if ev := e.evidenceText(map[string]string{"source": "access", "pattern": "server_error"}); !strings.Contains(ev, `"GET /api/videos/upload HTTP/1.1" 503 512`) {
		t.Errorf("evidence lacks the failing requests:\n%s", e.evidenceText(nil))
	}
	pct.Store(3)
	s.waitResolved(m, e, 30*time.Second)
}

// TestRateLimiting: a burst of 429 answers in the access log (20 % of
// requests) and "rate limit exceeded" lines in the app log → the P2
// TokPulseRateLimited (429 share above 5 % for 5m in the pack, 5s here) and
// the P3 TokPulseRateLimitLogged with the lines, their API keys redacted;
// both resolve after the burst.
func TestRateLimiting(t *testing.T) {
	t.Parallel()
	s := newScenario(t, "ratelimit")
	const apiKey = "ak_e2e_5f4e3d2c1b"
	s.secrets = append(s.secrets, apiKey)
	var burst atomic.Bool
	access := writeLog(t, s.dir+"/access.log", 100, func(i int64) string {
		if burst.Load() && every(i, 20) {
			return accessLine(429, "/api/tiktok/sync")
		}
		return accessLine(200, "/api/videos")
	})
	app := writeLog(t, s.dir+"/app.log", 10, func(i int64) string {
		ts := time.Now().UTC().Format(time.RFC3339Nano)
		if burst.Load() {
			return ts + " WARN rate limit exceeded for client 10.0.0.7 on /api/tiktok/sync api_key=" + apiKey
		}
		return ts + " INFO request served path=/api/videos"
	})
	s.start(agentOptions{Body: logsConfig(t, s.dir)})
	testutil.Eventually(t, 20*time.Second, "the agent to read both logs", func() bool {
		return s.metricSum("tokpulse_http_requests_total{", `source="access"`) > 200 &&
			s.metricSum("tokpulse_log_lines_total{", `source="app"`) > 20
	})

	crossed := time.Now()
	burst.Store(true)
	rl := matcher{alert: "TokPulseRateLimited", labels: map[string]string{"source": "access"}}
	logged := matcher{alert: "TokPulseRateLimitLogged", labels: map[string]string{"source": "app", "pattern": "rate_limit"}}
	le := s.waitFiring(logged, "P3", crossed, 20*time.Second)
	ev := le.evidenceText(map[string]string{"source": "app", "pattern": "rate_limit"})
	if !strings.Contains(ev, "rate limit exceeded for client 10.0.0.7") || !strings.Contains(ev, "api_key=[REDACTED]") {
		t.Errorf("evidence lacks the redacted rate-limit lines:\n%s", ev)
	}
	re := s.waitFiring(rl, "P2", crossed, 40*time.Second)
	if re.Value == nil || *re.Value < 15 || *re.Value > 25 {
		t.Errorf("value %v, want about 20 (%% of requests answered 429)", re.Value)
	}
	if ev := re.evidenceText(map[string]string{"source": "access", "pattern": "too_many_requests"}); !strings.Contains(ev, `"GET /api/tiktok/sync HTTP/1.1" 429`) {
		t.Errorf("evidence lacks the 429 requests:\n%s", re.evidenceText(nil))
	}

	burst.Store(false)
	s.waitResolved(rl, re, 30*time.Second)
	s.waitResolved(logged, le, 40*time.Second)
	access.Stop()
	app.Stop()
}
