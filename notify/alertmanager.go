package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// amAlert is one alert in Alertmanager's API v2 (POST /api/v2/alerts).
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// AlertmanagerConfig is one Alertmanager cluster: every URL is one replica
// and every alert is posted to all of them, as Prometheus does.
type AlertmanagerConfig struct {
	Name string   `yaml:"name"`
	URLs []string `yaml:"urls"`
	// ResendInterval is how often active alerts are re-posted; Alertmanager
	// resolves an alert that is not re-posted, so keep it within 30s-3m.
	ResendInterval  yamlx.Duration    `yaml:"resend_interval"`
	Timeout         yamlx.Duration    `yaml:"timeout"`
	BearerTokenFile yamlx.SecretFile  `yaml:"bearer_token_file"`
	Headers         map[string]string `yaml:"headers"`
	TLS             TLSConfig         `yaml:"tls"`
	MaxBatch        int               `yaml:"max_batch"`
}

// UnmarshalYAML seeds an Alertmanager cluster's defaults before decoding it.
func (a *AlertmanagerConfig) UnmarshalYAML(node *yaml.Node) error {
	type plain AlertmanagerConfig
	*a = AlertmanagerConfig{Timeout: yamlx.Duration(DefaultTimeout), MaxBatch: DefaultMaxBatch,
		ResendInterval: yamlx.Duration(DefaultResendInterval)}
	return node.Decode((*plain)(a))
}

func (a *AlertmanagerConfig) name() string {
	if a.Name != "" {
		return a.Name
	}
	return "alertmanager"
}

func (a *AlertmanagerConfig) validate(v *yamlx.Checker, p string) {
	if len(a.URLs) == 0 {
		v.Errorf(yamlx.Join(p, "urls"), "list at least one Alertmanager base URL, e.g. [http://alertmanager-1:9093, http://alertmanager-2:9093]")
	}
	for i, u := range a.URLs {
		validHTTPURL(v, yamlx.Index(yamlx.Join(p, "urls"), i), u, "http://alertmanager:9093")
	}
	if d := a.ResendInterval.D(); d < 30*time.Second || d > 3*time.Minute {
		v.Errorf(yamlx.Join(p, "resend_interval"), "%s is outside 30s-3m; Alertmanager resolves alerts it does not hear about; write e.g. 1m", a.ResendInterval)
	}
	if a.Timeout.D() <= 0 {
		v.Errorf(yamlx.Join(p, "timeout"), "must be positive; write e.g. 10s")
	}
	if a.MaxBatch < 1 || a.MaxBatch > 1000 {
		v.Errorf(yamlx.Join(p, "max_batch"), "%d is out of range; write 1 to 1000 (default %d)", a.MaxBatch, DefaultMaxBatch)
	}
	v.CheckSecretFile(yamlx.Join(p, "bearer_token_file"), a.BearerTokenFile)
	validHeaders(v, yamlx.Join(p, "headers"), a.Headers)
	a.TLS.validate(v, yamlx.Join(p, "tls"))
}

// build implements outputConfig.
func (a *AlertmanagerConfig) build(env buildEnv) (Output, error) { return newAlertmanager(*a, env) }

// alertmanager posts alerts to every replica of one Alertmanager cluster.
// Like Prometheus, it counts a post as accepted when at least one replica
// accepted it: the replicas gossip what they received.
type alertmanager struct {
	name      string
	cfg       AlertmanagerConfig
	client    *http.Client
	token     yamlx.Secret
	generator string
	host      string
	now       func() time.Time
}

func newAlertmanager(c AlertmanagerConfig, env buildEnv) (*alertmanager, error) {
	a := &alertmanager{name: c.name(), cfg: c, host: env.host, now: env.now,
		generator: strings.TrimSuffix(env.externalURL, "/") + "/api/v1/alerts"}
	var err error
	if a.client, err = newHTTPClient(c.TLS, c.Timeout.D()); err != nil {
		return nil, err
	}
	if c.BearerTokenFile != "" {
		if a.token, err = c.BearerTokenFile.Read(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *alertmanager) Name() string                  { return a.name }
func (a *alertmanager) MaxBatch() int                 { return a.cfg.MaxBatch }
func (a *alertmanager) ResendInterval() time.Duration { return a.cfg.ResendInterval.D() }

// toAM converts alert events; heartbeats have no Alertmanager form (the
// central Prometheus watches the agent's own up series instead), nor do
// automated actions' events, which change no alert's state (their
// escalation reaches Alertmanager with the update that follows).
func (a *alertmanager) toAM(events []alert.Event) []amAlert {
	now := a.now()
	var out []amAlert
	for _, e := range events {
		if e.Kind == alert.KindHeartbeat || e.Kind == alert.KindAction {
			continue
		}
		labels := map[string]string{}
		for k, v := range e.Labels {
			labels[k] = v
		}
		labels["alertname"] = e.AlertName
		labels["severity"] = e.Severity
		if _, ok := labels["host"]; !ok {
			labels["host"] = e.Host
		}
		ann := map[string]string{}
		for k, v := range e.Annotations {
			ann[k] = v
		}
		ann["incident_id"] = e.IncidentID
		// Alertmanager templates link runbooks by this annotation, the
		// Prometheus community's convention.
		if _, ok := ann["runbook_url"]; !ok && e.RunbookURL != "" {
			ann["runbook_url"] = e.RunbookURL
		}
		if e.Escalation != "" {
			ann["escalation_step"] = e.Escalation
		}
		al := amAlert{Labels: labels, Annotations: ann, GeneratorURL: a.generator}
		if e.StartedAt != nil {
			al.StartsAt = *e.StartedAt
		}
		if e.EndedAt != nil {
			al.EndsAt = *e.EndedAt
		} else {
			// As Prometheus does: valid for four resend intervals, so that
			// Alertmanager resolves the alert itself if the agent dies.
			al.EndsAt = now.Add(4 * a.cfg.ResendInterval.D())
		}
		out = append(out, al)
	}
	return out
}

// Send implements Output.
func (a *alertmanager) Send(ctx context.Context, events []alert.Event) error {
	alerts := a.toAM(events)
	if len(alerts) == 0 {
		return nil
	}
	return a.post(ctx, alerts)
}

// Resend re-posts the active alerts.
func (a *alertmanager) Resend(ctx context.Context, active []alert.Event) error {
	alerts := a.toAM(active)
	if len(alerts) == 0 {
		return nil
	}
	return a.post(ctx, alerts)
}

func (a *alertmanager) post(ctx context.Context, alerts []amAlert) error {
	body, err := json.Marshal(alerts)
	if err != nil {
		return &SendError{Err: err, Permanent: true}
	}
	errs := make([]error, len(a.cfg.URLs))
	var wg sync.WaitGroup
	for i, base := range a.cfg.URLs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.postOne(ctx, strings.TrimSuffix(base, "/")+"/api/v2/alerts", body)
		}()
	}
	wg.Wait()
	allPermanent := true
	var retry time.Duration
	for _, err := range errs {
		if err == nil {
			return nil
		}
		allPermanent = allPermanent && permanent(err)
		retry = max(retry, retryAfterOf(err))
	}
	return &SendError{Err: errors.Join(errs...), Permanent: allPermanent, RetryAfter: retry}
}

func (a *alertmanager) postOne(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return &SendError{Err: err, Permanent: true}
	}
	for k, v := range a.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token.Reveal())
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return &SendError{Err: postError(url, err)}
	}
	defer resp.Body.Close()
	defer func() { _, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) }()
	if err := classify(resp, a.now()); err != nil {
		se := err.(*SendError)
		se.Err = postError(url, se.Err)
		return se
	}
	return nil
}
