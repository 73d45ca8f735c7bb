package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/safefile"
)

// Output is one destination of events. Send delivers a batch (in order) and
// returns nil only when the destination accepted all of it.
type Output interface {
	Name() string
	// MaxBatch is the most events one Send may carry.
	MaxBatch() int
	// Send returns a *SendError to say whether a failure is worth retrying.
	Send(ctx context.Context, events []alert.Event) error
}

// SendError is a failed delivery, classified.
type SendError struct {
	Err error
	// Permanent failures (a 4xx other than 408 and 429) are not retried:
	// the events are dead-lettered.
	Permanent bool
	// RetryAfter is the receiver's Retry-After, or 0.
	RetryAfter time.Duration
}

// Error returns the underlying error's text.
func (e *SendError) Error() string { return e.Err.Error() }

// Unwrap lets errors.Is and errors.As see the underlying error.
func (e *SendError) Unwrap() error { return e.Err }

// postError is the error of a POST to raw that got no answer. A webhook or
// Alertmanager URL is a credential (Slack's and Teams' webhooks carry
// their token in the path), and errors reach the log, the outbox's dead
// letters and `tokpulse-agent status`: the URL is shown as
// scheme://host/… only, and net/http's own copy of it (in *url.Error) is
// dropped.
func postError(raw string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("posting to %s: %w", evidence.HostOnlyURL(raw), err)
}

// classify turns an HTTP response into nil (2xx) or a *SendError.
func classify(resp *http.Response, now time.Time) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	e := &SendError{Err: fmt.Errorf("receiver answered %s: %q", resp.Status, string(body))}
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	case resp.StatusCode >= 400:
		e.Permanent = true
		e.Err = fmt.Errorf("%w; the receiver refuses these events for good: check the URL, the token and the receiver's logs, then see /api/v1/outbox", e.Err)
	default:
		// 1xx/3xx left over after redirects: the URL is probably wrong, but
		// the receiver may be mid-deploy, so keep trying.
	}
	return e
}

// retryAfter parses Retry-After (seconds or an HTTP date), capped at one
// hour so that a broken header cannot stall delivery for ever.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(h); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// permanent reports whether err is a failure not worth retrying.
func permanent(err error) bool {
	var se *SendError
	return errors.As(err, &se) && se.Permanent
}

func retryAfterOf(err error) time.Duration {
	var se *SendError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// build reads the CA bundle and client certificate of an output. Validate
// calls it too, so that `tokpulse-agent check` refuses what would stop the
// agent from starting.
func (t TLSConfig) build() (*tls.Config, error) {
	tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // the operator's explicit choice
	if t.CAFile != "" {
		pool, err := safefile.CertPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := safefile.KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// newHTTPClient builds a client with the output's TLS settings. Redirects
// are not followed: a POST must not silently turn into a GET elsewhere.
func newHTTPClient(t TLSConfig, timeout time.Duration) (*http.Client, error) {
	tc, err := t.build()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.Proxy = http.ProxyFromEnvironment
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}
