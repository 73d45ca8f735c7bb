package collectors

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestProbeTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	tlsSrv := httptest.NewTLSServer(testMux())
	defer tlsSrv.Close()
	tlsAddr := strings.TrimPrefix(tlsSrv.URL, "https://")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, yaml, wantReason string
		wantTLSPhase           bool
	}{
		{name: "listener", yaml: "url: tcp://" + ln.Addr().String()},
		{name: "localhost name", yaml: "url: tcp://localhost:" + portOf(ln.Addr().String())},
		{name: "closed port", yaml: "url: tcp://" + closedPort(t), wantReason: ReasonRefused},
		{name: "hanging TLS handshake", yaml: "url: tcp://" + hangingListener(t) + "\ntimeout: 300ms\ntls: {enabled: true}", wantReason: ReasonTimeout},
		{name: "TLS with an unknown CA", yaml: "url: tcp://" + tlsAddr + "\ntls: {enabled: true}", wantReason: ReasonTLS, wantTLSPhase: true},
		{name: "TLS with the CA", yaml: "url: tcp://" + tlsAddr + "\ntls: {enabled: true, ca_file: " + caFile + "}", wantTLSPhase: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := decodeConfig(t, "probes:\n- name: p\n  "+strings.ReplaceAll(tc.yaml, "\n", "\n  "))
			target, err := newProbeTarget(cfg.Probes[0])
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Probes[0].Timeout.D())
			defer cancel()
			r := ProbeTCP(ctx, target)
			if r.Success != (tc.wantReason == "") || r.Reason != tc.wantReason {
				t.Fatalf("success=%v reason=%q err=%v; want reason %q", r.Success, r.Reason, r.Err, tc.wantReason)
			}
			if tc.wantTLSPhase && r.Phases["tls"] <= 0 {
				t.Errorf("tls phase not measured: %v", r.Phases)
			}
		})
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestClassifyError covers the reasons the real-server tests cannot reach
// without traffic beyond loopback (a failing DNS lookup).
func TestClassifyError(t *testing.T) {
	expired, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-expired.Done()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want string
	}{
		{"dns", context.Background(), &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "db.internal", IsNotFound: true}}, ReasonDNS},
		{"refused", context.Background(), &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ReasonRefused},
		{"unknown CA", context.Background(), fmt.Errorf("get: %w", x509.UnknownAuthorityError{}), ReasonTLS},
		{"expired context", expired, errors.New("read: use of closed connection"), ReasonTimeout},
		{"deadline", context.Background(), fmt.Errorf("get: %w", context.DeadlineExceeded), ReasonTimeout},
		{"reset", context.Background(), &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, ReasonError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classifyError(tc.ctx, tc.err); got != tc.want {
				t.Errorf("classifyError(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
