package collectors

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// tcpProber is the kind of tcp:// probes.
var tcpProber = Prober{Run: ProbeTCP, Collect: func(d *ProbeDescs, name string, r *ProbeResult, ch chan<- prometheus.Metric) {
	collectPhases(d, name, r, tcpPhases, ch)
}}

// tcpPhases lists the timed phases of a TCP probe.
var tcpPhases = []string{"dns", "connect", "tls"}

// ProbeTCP connects to the probe's host:port and, when tls.enabled is set,
// completes a TLS handshake (verifying the certificate unless
// insecure_skip_verify is set). The connection is closed at once.
func ProbeTCP(ctx context.Context, t *ProbeTarget) ProbeResult {
	phases := map[string]time.Duration{}
	host, port := t.URL.Hostname(), t.URL.Port()

	// Resolve separately so that the dns phase is timed and a resolution
	// failure is told apart from a refused connection.
	addr := host
	if net.ParseIP(host) == nil {
		start := time.Now()
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		phases["dns"] = time.Since(start)
		if err != nil {
			return ProbeResult{Outcome: failed(classifyError(ctx, err), fmt.Errorf("resolving %s: %w", host, err)), Phases: phases}
		}
		if len(ips) == 0 {
			return ProbeResult{Outcome: failed(ReasonDNS, fmt.Errorf("%s resolves to no address", host)), Phases: phases}
		}
		addr = ips[0].String()
	}
	start := time.Now()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(addr, port))
	phases["connect"] = time.Since(start)
	if err != nil {
		return ProbeResult{Outcome: failed(classifyError(ctx, err), fmt.Errorf("connecting to %s: %w", t.URL.Host, err)), Phases: phases}
	}
	defer conn.Close()
	if !t.Config.TLS.Enabled {
		return ProbeResult{Outcome: Outcome{Success: true}, Phases: phases}
	}
	tc := t.TLS.Clone()
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	start = time.Now()
	tlsConn := tls.Client(conn, tc)
	err = tlsConn.HandshakeContext(ctx)
	phases["tls"] = time.Since(start)
	if err != nil {
		reason := classifyError(ctx, err)
		if reason == ReasonError {
			reason = ReasonTLS
		}
		return ProbeResult{Outcome: failed(reason, fmt.Errorf("TLS handshake with %s: %w", t.URL.Host, err)), Phases: phases}
	}
	return ProbeResult{Outcome: Outcome{Success: true}, Phases: phases}
}
