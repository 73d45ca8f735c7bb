package collectors

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

// excerptBytes bounds the body excerpt kept as evidence.
const excerptBytes = 2048

// phaseTimer records the phases of the requests of one probe run through
// httptrace. With redirects there are several requests; their phases add up.
type phaseTimer struct {
	mu                                      sync.Mutex
	start                                   time.Time
	dnsStart, connStart, tlsStart, wroteReq time.Time
	phases                                  map[string]time.Duration
}

func (p *phaseTimer) add(phase string, since time.Time) {
	if since.IsZero() {
		return
	}
	p.mu.Lock()
	p.phases[phase] += time.Since(since)
	p.mu.Unlock()
}

func (p *phaseTimer) set(t *time.Time) {
	p.mu.Lock()
	*t = time.Now()
	p.mu.Unlock()
}

func (p *phaseTimer) get(t *time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return *t
}

func (p *phaseTimer) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		DNSStart:          func(httptrace.DNSStartInfo) { p.set(&p.dnsStart) },
		DNSDone:           func(httptrace.DNSDoneInfo) { p.add("dns", p.get(&p.dnsStart)) },
		ConnectStart:      func(string, string) { p.set(&p.connStart) },
		ConnectDone:       func(string, string, error) { p.add("connect", p.get(&p.connStart)) },
		TLSHandshakeStart: func() { p.set(&p.tlsStart) },
		TLSHandshakeDone:  func(tls.ConnectionState, error) { p.add("tls", p.get(&p.tlsStart)) },
		// first_byte is measured from the moment the request was
		// written, so it is the server's think time plus one round trip.
		WroteRequest:         func(httptrace.WroteRequestInfo) { p.set(&p.wroteReq) },
		GotFirstResponseByte: func() { p.add("first_byte", p.get(&p.wroteReq)) },
	}
}

func (p *phaseTimer) snapshot() map[string]time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]time.Duration, len(p.phases))
	for k, v := range p.phases {
		out[k] = v
	}
	return out
}

// newProbeClient returns the HTTP client of one probe. Its transport has
// keep-alives off, so that every run opens (and times) a fresh connection and
// none is left open between runs; it is kept for the probe's lifetime so that
// a run does not allocate a transport.
func newProbeClient(t *ProbeTarget) *http.Client {
	cfg := t.Config
	return &http.Client{
		Transport: &http.Transport{
			// No proxy from the environment: a probe checks the target itself.
			Proxy:             nil,
			DialContext:       (&net.Dialer{}).DialContext,
			TLSClientConfig:   t.TLS.Clone(),
			DisableKeepAlives: true,
			// The probe's context bounds every phase.
			TLSHandshakeTimeout: 0,
		},
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if !cfg.FollowRedirects || len(via) > cfg.MaxRedirects {
				// The last 3xx response is then judged like any other,
				// so a redirect loop fails with reason status.
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// httpProber is the kind of http:// and https:// probes.
var httpProber = Prober{Run: ProbeHTTP, Collect: func(d *ProbeDescs, name string, r *ProbeResult, ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(d.Status, prometheus.GaugeValue, float64(r.StatusCode), name)
	collectPhases(d, name, r, httpPhases, ch)
}}

// httpPhases lists the timed phases of an HTTP probe.
var httpPhases = []string{"dns", "connect", "tls", "first_byte"}

// ProbeHTTP sends one request and judges the response by the probe's
// expectations. Each run uses its own transport with keep-alives off, so
// that every run measures a fresh connect and leaves no connection behind.
func ProbeHTTP(ctx context.Context, t *ProbeTarget) ProbeResult {
	cfg := t.Config
	timer := &phaseTimer{start: time.Now(), phases: map[string]time.Duration{}}
	fail := func(reason string, err error) ProbeResult {
		return ProbeResult{Outcome: failed(reason, err), Phases: timer.snapshot()}
	}

	var body io.Reader
	if cfg.Body != "" {
		body = strings.NewReader(cfg.Body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, timer.trace()), cfg.Method, t.URL.String(), body)
	if err != nil {
		return fail(ReasonError, fmt.Errorf("building the request: %w", err))
	}
	req.Header.Set("User-Agent", "tokpulse-agent")
	for k, v := range cfg.Headers {
		req.Header.Set(k, v)
	}
	for _, k := range sortedKeys(cfg.HeaderFiles) {
		v, err := cfg.HeaderFiles[k].Read()
		if err != nil {
			return fail(ReasonError, fmt.Errorf("header %s: %w", k, err))
		}
		req.Header.Set(k, v.Reveal())
	}
	if h := cfg.Headers["Host"]; h != "" {
		req.Host = h
	}

	client := t.client
	if client == nil {
		client = newProbeClient(t)
	}
	resp, err := client.Do(req)
	if err != nil {
		// net/http writes the URL (perhaps one redirected to) into the
		// error, which reaches logs, status and evidence.
		err = evidence.HideURLError(err, func(raw string) string { return showURL(cfg, raw) })
		return fail(classifyError(ctx, err), err)
	}
	defer resp.Body.Close()

	// Read one byte past the bound to tell "exactly the bound" from "more".
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(resp.Body, cfg.MaxBodyBytes+1))
	r := ProbeResult{StatusCode: resp.StatusCode, Excerpt: excerpt(buf.Bytes())}
	finish := func(reason string, err error) ProbeResult {
		r.Phases = timer.snapshot()
		r.Success = reason == ""
		r.Reason, r.Err = reason, err
		return r
	}
	if err != nil {
		return finish(classifyError(ctx, err), fmt.Errorf("reading the body after %d bytes: %w", n, err))
	}
	if n > cfg.MaxBodyBytes {
		return finish(ReasonBody, fmt.Errorf("body is larger than max_body_bytes (%d); raise the bound or probe a smaller endpoint", cfg.MaxBodyBytes))
	}
	b := buf.Bytes()

	// Values are extracted before the checks so that a failing service's
	// numbers are still exported.
	var doc any
	var docErr error
	if len(cfg.Expect.JSON) > 0 || len(cfg.Values) > 0 {
		docErr = json.Unmarshal(b, &doc)
		if docErr == nil {
			r.Values = extractValues(cfg.Values, doc)
		}
	}
	if !statusOK(cfg.Expect.Status, resp.StatusCode) {
		msg := fmt.Sprintf("status %d is not one of the expected %s", resp.StatusCode, statusList(cfg.Expect.Status))
		if resp.StatusCode >= 300 && resp.StatusCode < 400 && cfg.FollowRedirects {
			msg += fmt.Sprintf(" (stopped after max_redirects=%d; is there a redirect loop?)", cfg.MaxRedirects)
		}
		return finish(ReasonStatus, errors.New(msg))
	}
	if re := cfg.Expect.BodyMatches; !re.IsZero() && !re.Regexp.Match(b) {
		return finish(ReasonBody, fmt.Errorf("body does not match %q", re.String()))
	}
	if re := cfg.Expect.BodyNotMatches; !re.IsZero() && re.Regexp.Match(b) {
		return finish(ReasonBody, fmt.Errorf("body matches %q, which it must not: %q", re.String(), re.Find(b)))
	}
	if len(cfg.Expect.JSON) > 0 {
		if docErr != nil {
			return finish(ReasonJSON, fmt.Errorf("body is not JSON: %w", docErr))
		}
		for _, a := range cfg.Expect.JSON {
			if err := a.check(doc); err != nil {
				return finish(ReasonJSON, err)
			}
		}
	}
	return finish("", nil)
}

func statusOK(rs []StatusRange, code int) bool {
	for _, r := range rs {
		if r.contains(code) {
			return true
		}
	}
	return false
}

func statusList(rs []StatusRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		if r.Lo == r.Hi {
			parts[i] = strconv.Itoa(r.Lo)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return strings.Join(parts, ", ")
}

// excerpt returns the start of b as valid UTF-8 text.
func excerpt(b []byte) string {
	cut := false
	if len(b) > excerptBytes {
		b, cut = b[:excerptBytes], true
	}
	// A rune split by the cut becomes one replacement character.
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if cut {
		s += "…"
	}
	return s
}

func extractValues(vs []ProbeValue, doc any) map[string]float64 {
	if len(vs) == 0 {
		return nil
	}
	out := make(map[string]float64, len(vs))
	for _, v := range vs {
		for n := range v.Path.Select(doc).All() {
			if f, ok := toNumber(n); ok {
				out[v.Field] = f
				break
			}
		}
	}
	return out
}

// toNumber converts a JSON node to a number: numbers as they are, booleans
// as 0/1, strings that hold a number.
func toNumber(n any) (float64, bool) {
	switch v := n.(type) {
	case float64:
		return v, true
	case bool:
		return b2f(v), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}

// check returns an error that says which node failed which check.
func (a JSONAssertion) check(doc any) error {
	nodes := a.Path.Select(doc)
	path := a.Path.String()
	if a.Exists != nil {
		if *a.Exists != (len(nodes) > 0) {
			if *a.Exists {
				return fmt.Errorf("%s selects nothing, expected it to exist", path)
			}
			return fmt.Errorf("%s exists (%s), expected it not to", path, jsonText(nodes[0]))
		}
		if !*a.Exists {
			return nil
		}
	}
	if len(nodes) == 0 {
		return fmt.Errorf("%s selects nothing in the body", path)
	}
	for _, n := range nodes {
		if a.Equals != nil && !jsonEqual(n, a.Equals) {
			return fmt.Errorf("%s is %s, expected %s", path, jsonText(n), jsonText(a.Equals))
		}
		if a.NotEquals != nil && jsonEqual(n, a.NotEquals) {
			return fmt.Errorf("%s is %s, expected anything else", path, jsonText(n))
		}
		if !a.Matches.IsZero() {
			s, ok := n.(string)
			if !ok {
				s = jsonText(n)
			}
			if !a.Matches.Match(s) {
				return fmt.Errorf("%s is %s, which does not match %q", path, jsonText(n), a.Matches.String())
			}
		}
		if a.Min != nil || a.Max != nil {
			f, ok := toNumber(n)
			switch {
			case !ok:
				return fmt.Errorf("%s is %s, not a number", path, jsonText(n))
			case a.Min != nil && f < *a.Min:
				return fmt.Errorf("%s is %v, below min %v", path, f, *a.Min)
			case a.Max != nil && f > *a.Max:
				return fmt.Errorf("%s is %v, above max %v", path, f, *a.Max)
			}
		}
	}
	return nil
}

// jsonEqual compares a JSON node with a value written in YAML, where
// numbers may have decoded as int.
func jsonEqual(node, want any) bool {
	switch w := want.(type) {
	case int:
		f, ok := node.(float64)
		return ok && f == float64(w)
	case float64:
		f, ok := node.(float64)
		return ok && f == w
	case string, bool:
		return node == want
	}
	return jsonText(node) == jsonText(want)
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
