package collectors

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theory/jsonpath"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/safefile"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// Probe failure reasons, the values of the reason label of
// tokpulse_probe_failures_total. The set is fixed so that rules and
// dashboards can rely on it.
const (
	ReasonTimeout = "timeout" // the probe's timeout expired
	ReasonRefused = "refused" // the connection was refused
	ReasonDNS     = "dns"     // the host name did not resolve
	ReasonTLS     = "tls"     // the TLS handshake or certificate check failed
	ReasonStatus  = "status"  // the HTTP status was not an expected one
	ReasonBody    = "body"    // the body failed a regex or exceeded its bound
	ReasonJSON    = "json"    // the body was not JSON or failed an assertion
	ReasonError   = "error"   // anything else (reset connections, bad config files)
)

// probeReasons lists every reason, in the order the failure counters are
// exported; each starts at 0 so that rate() works from the first failure.
var probeReasons = []string{ReasonTimeout, ReasonRefused, ReasonDNS, ReasonTLS, ReasonStatus, ReasonBody, ReasonJSON, ReasonError}

// ProbeConfig is one entry of the probes: list. The kind of probe follows
// from the URL's scheme: http:// and https:// probe over HTTP, tcp://
// connects (and optionally completes a TLS handshake).
type ProbeConfig struct {
	Name    string            `yaml:"name"`
	URL     string            `yaml:"url"`
	Method  string            `yaml:"method"`
	Headers map[string]string `yaml:"headers"`
	// HeaderFiles sets headers whose values are secrets (an Authorization
	// token): header name → file holding the value.
	HeaderFiles     map[string]yamlx.SecretFile `yaml:"header_files"`
	Body            string                      `yaml:"body"`
	Interval        yamlx.Duration              `yaml:"interval"`
	Timeout         yamlx.Duration              `yaml:"timeout"`
	TLS             ProbeTLSConfig              `yaml:"tls"`
	FollowRedirects bool                        `yaml:"follow_redirects"`
	MaxRedirects    int                         `yaml:"max_redirects"`
	MaxBodyBytes    int64                       `yaml:"max_body_bytes"`
	Expect          ProbeExpect                 `yaml:"expect"`
	Values          []ProbeValue                `yaml:"values"`
	// SecretPath marks the URL's path (and query) as a credential: logs,
	// status and evidence show the URL as scheme://host/… only. Without
	// it, passwords and secret-looking query parameters (token=…) are
	// still redacted.
	SecretPath bool `yaml:"secret_path"`
}

// ProbeTLSConfig configures TLS for https:// probes and, when Enabled, a
// TLS handshake after a tcp:// probe connects.
type ProbeTLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// ProbeExpect is what a successful HTTP probe returns.
type ProbeExpect struct {
	// Status lists accepted status codes: 200, "2xx" or "200-299".
	Status         []StatusRange   `yaml:"status"`
	BodyMatches    yamlx.Regexp    `yaml:"body_matches"`
	BodyNotMatches yamlx.Regexp    `yaml:"body_not_matches"`
	JSON           []JSONAssertion `yaml:"json"`
}

// JSONAssertion checks the nodes an RFC 9535 JSONPath selects in the body.
// The path must select at least one node (unless exists is false) and every
// selected node must pass every check that is set.
type JSONAssertion struct {
	Path      JSONPath     `yaml:"path"`
	Equals    any          `yaml:"equals"`
	NotEquals any          `yaml:"not_equals"`
	Matches   yamlx.Regexp `yaml:"matches"`
	Min       *float64     `yaml:"min"`
	Max       *float64     `yaml:"max"`
	Exists    *bool        `yaml:"exists"`
}

// ProbeValue exports the number a JSONPath selects in the body as
// tokpulse_probe_value{probe,field}. Booleans export as 0 and 1, and
// strings holding a number as that number.
type ProbeValue struct {
	Field string   `yaml:"field"`
	Path  JSONPath `yaml:"path"`
}

// JSONPath is an RFC 9535 JSONPath query compiled when the file is read.
type JSONPath struct {
	*jsonpath.Path
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *JSONPath) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return yamlx.Fail(node, "expected a JSONPath such as $.status")
	}
	q, err := jsonpath.Parse(node.Value)
	if err != nil {
		return yamlx.Fail(node, "invalid JSONPath %q: %v (RFC 9535 syntax, e.g. $.checks.db.status)", node.Value, err)
	}
	p.Path = q
	return nil
}

// MarshalYAML writes the query back.
func (p JSONPath) MarshalYAML() (any, error) {
	if p.Path == nil {
		return "", nil
	}
	return p.String(), nil
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// UnmarshalYAML accepts 200, "2xx" and "200-299".
func (s *StatusRange) UnmarshalYAML(node *yaml.Node) error {
	bad := func() error {
		return yamlx.Fail(node, "%q is not a status code or range; write 200, \"2xx\" or \"200-299\"", node.Value)
	}
	if node.Kind != yaml.ScalarNode {
		return bad()
	}
	v := strings.TrimSpace(node.Value)
	switch {
	case len(v) == 3 && strings.HasSuffix(strings.ToLower(v), "xx") && v[0] >= '1' && v[0] <= '5':
		d := int(v[0]-'0') * 100
		*s = StatusRange{d, d + 99}
	case strings.Contains(v, "-"):
		a, b, _ := strings.Cut(v, "-")
		lo, err1 := strconv.Atoi(strings.TrimSpace(a))
		hi, err2 := strconv.Atoi(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || lo > hi {
			return bad()
		}
		*s = StatusRange{lo, hi}
	default:
		c, err := strconv.Atoi(v)
		if err != nil {
			return bad()
		}
		*s = StatusRange{c, c}
	}
	if s.Lo < 100 || s.Hi > 599 {
		return yamlx.Fail(node, "status %q is outside 100-599", node.Value)
	}
	return nil
}

// MarshalYAML writes the range back.
func (s StatusRange) MarshalYAML() (any, error) {
	if s.Lo == s.Hi {
		return s.Lo, nil
	}
	return fmt.Sprintf("%d-%d", s.Lo, s.Hi), nil
}

func (s StatusRange) contains(code int) bool { return code >= s.Lo && code <= s.Hi }

// DefaultProbeConfig returns the defaults of one probe.
func DefaultProbeConfig() ProbeConfig {
	return ProbeConfig{
		Method:          "GET",
		Interval:        yamlx.Duration(10 * time.Second),
		Timeout:         yamlx.Duration(5 * time.Second),
		FollowRedirects: true,
		MaxRedirects:    10,
		MaxBodyBytes:    1 << 20,
		Expect:          ProbeExpect{Status: []StatusRange{{200, 299}}},
	}
}

// UnmarshalYAML seeds the defaults before decoding.
func (p *ProbeConfig) UnmarshalYAML(node *yaml.Node) error {
	*p = DefaultProbeConfig()
	type plain ProbeConfig
	return node.Decode((*plain)(p))
}

// Validate implements yamlx.Validator.
func (p *ProbeConfig) Validate(c *yamlx.Checker, path string) {
	if p.Name == "" {
		c.Errorf(yamlx.Join(path, "name"), "every probe needs a name; write e.g. name: health")
	}
	u, err := url.Parse(p.URL)
	switch {
	case p.URL == "":
		c.Errorf(yamlx.Join(path, "url"), "every probe needs a url; write e.g. url: http://127.0.0.1:3000/health or tcp://127.0.0.1:5432")
	case err != nil:
		c.Errorf(yamlx.Join(path, "url"), "%q is not a URL: %v", p.URL, err)
	case probers()[u.Scheme].Run == nil:
		c.Errorf(yamlx.Join(path, "url"), "scheme %q is not supported; write http://, https:// or tcp://host:port", u.Scheme)
	case u.Host == "":
		c.Errorf(yamlx.Join(path, "url"), "%q has no host; write e.g. %s://127.0.0.1:3000/", p.URL, u.Scheme)
	case u.Scheme == "tcp" && u.Port() == "":
		c.Errorf(yamlx.Join(path, "url"), "%q has no port; write tcp://host:port", p.URL)
	case u.Scheme != "tcp" && p.TLS.Enabled:
		c.Errorf(yamlx.Join(path, "tls.enabled"), "tls.enabled is for tcp:// probes; an HTTP probe uses TLS when its URL is https://")
	}
	if p.Timeout <= 0 {
		c.Errorf(yamlx.Join(path, "timeout"), "timeout must be positive; write e.g. timeout: 5s")
	}
	if p.Interval <= 0 {
		c.Errorf(yamlx.Join(path, "interval"), "interval must be positive; write e.g. interval: 10s")
	} else if p.Timeout > p.Interval {
		c.Errorf(yamlx.Join(path, "timeout"), "timeout %v is longer than interval %v; make it shorter so that runs do not overlap", p.Timeout, p.Interval)
	}
	if p.MaxBodyBytes <= 0 {
		c.Errorf(yamlx.Join(path, "max_body_bytes"), "max_body_bytes must be positive; write e.g. max_body_bytes: 1048576")
	}
	if p.MaxRedirects < 0 {
		c.Errorf(yamlx.Join(path, "max_redirects"), "max_redirects must not be negative")
	}
	if (p.TLS.CertFile == "") != (p.TLS.KeyFile == "") {
		c.Errorf(yamlx.Join(path, "tls"), "cert_file and key_file go together; set both or neither")
	} else if _, err := buildTLSConfig(p.TLS); err != nil {
		// Read as NewProbes reads them, so that check refuses what would
		// stop the agent from starting.
		c.Errorf(yamlx.Join(path, "tls"), "%v", err)
	}
	for _, h := range sortedKeys(p.HeaderFiles) {
		c.CheckRunSecretFile(yamlx.Join(yamlx.Join(path, "header_files"), h), p.HeaderFiles[h])
	}
	for i, a := range p.Expect.JSON {
		ap := yamlx.Index(yamlx.Join(path, "expect.json"), i)
		if a.Path.Path == nil && !c.Written(yamlx.Join(ap, "path")) {
			c.Errorf(yamlx.Join(ap, "path"), "every JSON assertion needs a path; write e.g. path: $.status")
		}
		if a.Equals == nil && a.NotEquals == nil && a.Matches.IsZero() && a.Min == nil && a.Max == nil && a.Exists == nil {
			c.Errorf(ap, "the assertion checks nothing; add equals, not_equals, matches, min, max or exists")
		}
	}
	fields := map[string]bool{}
	for i, v := range p.Values {
		vp := yamlx.Index(yamlx.Join(path, "values"), i)
		if v.Field == "" {
			c.Errorf(yamlx.Join(vp, "field"), "every value needs a field name (the field label); write e.g. field: p95_ms")
		} else if fields[v.Field] {
			c.Errorf(yamlx.Join(vp, "field"), "field %q appears twice in this probe; give each a distinct name", v.Field)
		}
		fields[v.Field] = true
		if v.Path.Path == nil && !c.Written(yamlx.Join(vp, "path")) {
			c.Errorf(yamlx.Join(vp, "path"), "every value needs a path; write e.g. path: $.p95_ms")
		}
	}
}

func (c *ProbeConfig) name() string { return c.Name }

// ProbeResult is the outcome of one probe run. A failed run carries the
// reason (one of the Reason constants) and the error that tells the
// operator what happened.
type ProbeResult struct {
	Outcome
	// Phases holds the time spent in each phase that happened (dns,
	// connect, tls, first_byte).
	Phases     map[string]time.Duration
	StatusCode int
	// Values holds the numbers extracted from a JSON body, by field.
	Values map[string]float64
	// Excerpt is the start of the body, for evidence.
	Excerpt string
}

// ProbeFn runs one probe. It returns when the probe finished or ctx
// expired, whichever comes first.
type ProbeFn func(ctx context.Context, t *ProbeTarget) ProbeResult

// ProbeTarget is a probe's configuration with what is prepared once at
// build time (the TLS configuration).
type ProbeTarget struct {
	Config ProbeConfig
	URL    *url.URL
	TLS    *tls.Config
	// Display is the URL as logs, status and evidence show it.
	Display string

	prober Prober
	client *http.Client // HTTP probes only
}

// Prober is one kind of probe, as blackbox_exporter's prober/ has them:
// the function that runs it and the metrics its result fills beyond
// success, duration, failures and values. Each lives in its own file
// (probe_http.go, probe_tcp.go).
type Prober struct {
	Run ProbeFn
	// Collect exports what this kind measures (its phases, a status
	// code) for the probe named name.
	Collect func(d *ProbeDescs, name string, r *ProbeResult, ch chan<- prometheus.Metric)
}

// ProbeDescs are the probe metrics a Prober fills.
type ProbeDescs struct {
	Phase, Status *prometheus.Desc
}

// collectPhases exports the phases a kind times, 0 for those that did
// not happen, so that every series of the kind exists after the first run.
func collectPhases(d *ProbeDescs, name string, r *ProbeResult, phases []string, ch chan<- prometheus.Metric) {
	for _, ph := range phases {
		ch <- prometheus.MustNewConstMetric(d.Phase, prometheus.GaugeValue, r.Phases[ph].Seconds(), name, ph)
	}
}

// probers returns the kinds of probe by URL scheme. This table is the one
// place that lists them; adding a kind is a file with its ProbeFn and a
// line here (and its scheme in ProbeConfig.Validate's message).
func probers() map[string]Prober {
	return map[string]Prober{
		"http":  httpProber,
		"https": httpProber,
		"tcp":   tcpProber,
	}
}

// newProbeTarget prepares a probe for running.
func newProbeTarget(cfg ProbeConfig) (*ProbeTarget, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("probe %s: parsing url: %w", cfg.Name, err)
	}
	tc, err := buildTLSConfig(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", cfg.Name, err)
	}
	pr, ok := probers()[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("probe %s: scheme %q is not supported", cfg.Name, u.Scheme)
	}
	t := &ProbeTarget{Config: cfg, URL: u, TLS: tc, Display: showURL(cfg, cfg.URL), prober: pr}
	if u.Scheme == "http" || u.Scheme == "https" {
		t.client = newProbeClient(t)
	}
	return t, nil
}

// showURL is how a URL of the probe (its own, or one it was redirected
// to) appears in errors, logs, status and evidence: scheme://host/… when
// the path is secret, else without a password (the Redactor then hides
// token=… and the like in the query).
func showURL(cfg ProbeConfig, raw string) string {
	if cfg.SecretPath {
		return evidence.HostOnlyURL(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return evidence.HostOnlyURL(raw)
	}
	return u.Redacted()
}

func buildTLSConfig(c ProbeTLSConfig) (*tls.Config, error) {
	tc := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // only when the operator sets it
	if c.CAFile != "" {
		pool, err := safefile.CertPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := safefile.KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// classifyError maps a network error to a failure reason.
func classifyError(ctx context.Context, err error) string {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var alertErr tls.AlertError
	var recErr tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidErr x509.CertificateInvalidError
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return ReasonTimeout
	case errors.As(err, &dnsErr):
		return ReasonDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.As(err, &certErr), errors.As(err, &alertErr), errors.As(err, &recErr),
		errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return ReasonTLS
	case errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	}
	return ReasonError
}

// Probes runs the configured probes, each on its own schedule, and reports
// their last results.
type Probes struct {
	scheduled[*ProbeTarget, *ProbeResult]
	descs ProbeDescs
	value *prometheus.Desc
}

// probeKind is what sets probes apart for the scheduled type.
var probeKind = kindSpec[*ProbeTarget]{
	kind: "probe",
	job: func(t *ProbeTarget) jobSpec {
		return jobSpec{name: t.Config.Name, key: configKey(t.Config), interval: t.Config.Interval.D(), timeout: t.Config.Timeout.D()}
	},
	reasons:      probeReasons,
	durationHelp: "How long the last run of the probe took, whole.",
}

// NewProbes prepares the probes of cfgs; it fails when a TLS file cannot be
// read.
func NewProbes(cfgs []ProbeConfig, opts Options) (*Probes, error) {
	opts = opts.withDefaults()
	targets := make([]*ProbeTarget, 0, len(cfgs))
	for _, c := range cfgs {
		t, err := newProbeTarget(c)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	p := &Probes{
		descs: ProbeDescs{
			Phase:  prometheus.NewDesc("tokpulse_probe_phase_duration_seconds", "Time the last run of the probe spent in each phase.", []string{"probe", "phase"}, nil),
			Status: prometheus.NewDesc("tokpulse_probe_http_status_code", "HTTP status code of the last run's response (the last one, after redirects); 0 when none came.", []string{"probe"}, nil),
		},
		value: prometheus.NewDesc("tokpulse_probe_value", "A number extracted from the JSON body of the last successful-enough response.", []string{"probe", "field"}, nil),
	}
	p.init(probeKind, targets, opts)
	return p, nil
}

// Families implements Warmer: the families a probe's result fills.
func (p *Probes) Families() []string {
	return []string{"tokpulse_probe_success", "tokpulse_probe_duration_seconds", "tokpulse_probe_phase_duration_seconds",
		"tokpulse_probe_http_status_code", "tokpulse_probe_value"}
}

// Inherit implements Inheritor: a probe whose configuration did not change
// keeps its last result and failure counters over a reload.
func (p *Probes) Inherit(old Collector) {
	if o, ok := old.(*Probes); ok {
		p.inherit(&o.scheduled)
	}
}

func validateProbes(c *Config, v *yamlx.Checker, path string) {
	validateNamed(c.Probes, v, yamlx.Join(path, "probes"), "probe")
}

func buildProbes(cfg Config, opts Options) ([]Named, error) {
	if len(cfg.Probes) == 0 {
		return nil, nil
	}
	p, err := NewProbes(cfg.Probes, opts)
	if err != nil {
		return nil, err
	}
	// Not reused: header_files and TLS files are read again at every
	// reload.
	return []Named{{Name: "probes", Collector: p, Key: configKey(cfg.Probes)}}, nil
}

// Run implements Runner: each probe runs on its own interval with a random
// phase until ctx is cancelled.
func (p *Probes) Run(ctx context.Context) {
	p.run(ctx, func(ctx context.Context, i int) { p.RunOnce(ctx, i) })
}

// RunOnce runs probe i now and records its result.
func (p *Probes) RunOnce(ctx context.Context, i int) ProbeResult {
	t := p.jobs[i].cfg
	pctx, cancel := context.WithTimeout(ctx, t.Config.Timeout.D())
	start := time.Now()
	r := t.prober.Run(pctx, t)
	cancel()
	r.Duration = time.Since(start)
	r.Time = p.now()
	if ctx.Err() != nil {
		// The agent is stopping or reloading: the cut-short run says
		// nothing about the target.
		return r
	}
	p.record(i, &r)
	return r
}

// Update implements Collector; it reports the last results and never
// probes.
func (p *Probes) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	p.update(ch, func(j *job[*ProbeTarget, *ProbeResult], r *ProbeResult) {
		j.cfg.prober.Collect(&p.descs, j.name, r, ch)
		for f, v := range r.Values {
			ch <- prometheus.MustNewConstMetric(p.value, prometheus.GaugeValue, v, j.name, f)
		}
	})
	return nil
}

// Evidence implements evidence.Provider: the last failure of each probe
// that failed at least once, with its reason, error and a body excerpt.
func (p *Probes) Evidence() []evidence.Section {
	return p.evidence("probe_failure",
		func(j *job[*ProbeTarget, *ProbeResult], f *ProbeResult) string {
			return fmt.Sprintf("Last failure of probe %s (%s %s): %s", j.name, j.cfg.Config.Method, p.redact.Redact(j.cfg.Display), f.Reason)
		},
		func(f *ProbeResult) []evidence.Entry {
			entries := []evidence.Entry{{Time: f.Time, Text: p.redact.Redact(fmt.Sprintf("reason=%s error=%v duration=%s", f.Reason, f.Err, f.Duration.Round(time.Millisecond)))}}
			if f.StatusCode != 0 {
				entries = append(entries, evidence.Entry{Time: f.Time, Text: fmt.Sprintf("status=%d", f.StatusCode)})
			}
			if f.Excerpt != "" {
				entries = append(entries, evidence.Entry{Time: f.Time, Text: "body: " + p.redact.Redact(f.Excerpt)})
			}
			return entries
		})
}

// Status implements StatusProvider: one line per probe with its last
// result, so that `tokpulse-agent status` shows why a probe fails.
func (p *Probes) Status() []Status {
	return p.status(func(r *ProbeResult, d string) string {
		if r.StatusCode != 0 {
			return fmt.Sprintf("HTTP %d, %s", r.StatusCode, d)
		}
		return d
	})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sortedKeys returns m's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var (
	_ Runner            = (*Probes)(nil)
	_ Warmer            = (*Probes)(nil)
	_ Inheritor         = (*Probes)(nil)
	_ Warmer            = (*Checks)(nil)
	_ Inheritor         = (*Checks)(nil)
	_ Warmer            = (*LogFile)(nil)
	_ Warmer            = (*Journal)(nil)
	_ Warmer            = (*Units)(nil)
	_ evidence.Provider = (*Probes)(nil)
	_ Runner            = (*Checks)(nil)
	_ evidence.Provider = (*Checks)(nil)
	_ evidence.Provider = (*Processes)(nil)
	_ Runner            = (*Units)(nil)
	_ evidence.Provider = (*Units)(nil)
)
