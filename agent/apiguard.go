package agent

import (
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// HeaderRequest is the header a client may send instead of a JSON content
// type on a state-changing request (POST /api/v1/outbox/requeue).
const HeaderRequest = "X-TokPulse-Request"

// apiGuard protects the HTTP server from browsers on the host: a web page
// can make the browser send requests to 127.0.0.1:9847, and a DNS name it
// controls can be pointed at 127.0.0.1 after the page loaded (DNS
// rebinding), after which the browser treats the agent as the page's own
// origin and lets it read the answers (status, alerts, evidence).
//
//   - Host must be a name of this agent: an IP address (a rebinding
//     attack needs a DNS name), localhost, agent.hostname, the host of
//     web.listen, or one of web.allowed_hosts. Otherwise 421.
//   - A state-changing request (not GET, HEAD or OPTIONS) must carry
//     Content-Type: application/json or the header X-TokPulse-Request; a
//     browser sends neither across origins without a CORS preflight, which
//     the agent never answers. Otherwise 415.
//   - A state-changing request from a foreign origin (Sec-Fetch-Site or
//     Origin, by net/http's CrossOriginProtection) is refused with 403.
type apiGuard struct {
	next    http.Handler
	cop     *http.CrossOriginProtection
	hosts   func() (hostname, listen string, allowed []string)
	logger  *slog.Logger
	refused *prometheus.CounterVec

	mu     sync.Mutex
	warned map[string]bool // Host values already logged, bounded
}

func newAPIGuard(next http.Handler, a *Agent) *apiGuard {
	g := &apiGuard{
		next: next,
		cop:  http.NewCrossOriginProtection(),
		hosts: func() (string, string, []string) {
			cfg := a.Config()
			return cfg.Agent.Hostname, cfg.Web.Listen, cfg.Web.AllowedHosts
		},
		logger: a.logger,
		refused: promauto.With(a.reg).NewCounterVec(prometheus.CounterOpts{
			Name: "tokpulse_agent_http_requests_refused_total",
			Help: "HTTP requests refused by the browser protections: reason host (Host not a name of this agent), content_type (a state-changing request without a JSON content type or X-TokPulse-Request) or cross_origin (a state-changing request from another origin).",
		}, []string{"reason"}),
		warned: map[string]bool{},
	}
	for _, r := range []string{"host", "content_type", "cross_origin"} {
		g.refused.WithLabelValues(r)
	}
	return g
}

func (g *apiGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.hostAllowed(r.Host) {
		g.refuse(w, "host", http.StatusMisdirectedRequest,
			"Host "+r.Host+" is not a name of this agent; add it to web.allowed_hosts (the agent refuses other names against DNS rebinding)")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if !jsonOrMarked(r) {
			g.refuse(w, "content_type", http.StatusUnsupportedMediaType,
				r.Method+" needs Content-Type: application/json or the header "+HeaderRequest+": 1 (browsers cannot send either from another site); e.g. curl -X POST -H 'Content-Type: application/json' …")
			return
		}
		if err := g.cop.Check(r); err != nil {
			g.refuse(w, "cross_origin", http.StatusForbidden, r.Method+" from another origin is refused: "+err.Error())
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

func (g *apiGuard) refuse(w http.ResponseWriter, reason string, code int, msg string) {
	g.refused.WithLabelValues(reason).Inc()
	g.mu.Lock()
	first := !g.warned[reason+"\x00"+msg] && len(g.warned) < 64
	if first {
		g.warned[reason+"\x00"+msg] = true
	}
	g.mu.Unlock()
	if first {
		g.logger.Warn("Refused an HTTP request", "reason", reason, "detail", msg)
	}
	http.Error(w, msg, code)
}

func jsonOrMarked(r *http.Request) bool {
	if r.Header.Get(HeaderRequest) != "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// hostAllowed reports whether the Host header names this agent.
func (g *apiGuard) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	if net.ParseIP(host) != nil || host == "localhost" {
		return true
	}
	hostname, listen, allowed := g.hosts()
	if host == strings.ToLower(hostname) {
		return true
	}
	if h, _, err := net.SplitHostPort(listen); err == nil && host == strings.ToLower(h) {
		return true
	}
	for _, a := range allowed {
		if host == strings.TrimSuffix(strings.ToLower(a), ".") {
			return true
		}
	}
	return false
}
