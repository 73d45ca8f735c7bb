package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/agent"
)

// apiFlags are the flags of the commands that talk to the running agent
// (status, notify test): where it is and how to authenticate.
type apiFlags struct {
	url, httpConfig *string
}

// declareAPIFlags declares --url and --http.config.file on fs.
func declareAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		url:        fs.String("url", "", "base `URL` of the agent's HTTP server, e.g. https://127.0.0.1:9847 (default: from web.listen and web.config_file of the configuration)"),
		httpConfig: fs.String("http.config.file", "", "HTTP client configuration `FILE` (Prometheus' format, as amtool's: basic_auth, tls_config) for an agent behind TLS or basic auth"),
	}
}

// agentAPI is the running agent's HTTP API, as the CLI reaches it.
type agentAPI struct {
	base   string
	client *http.Client
	// via says how base was found, for the line that names the agent.
	via string
}

// connect finds the agent: at --url, or at web.listen of the
// configuration file (cfg, its web section; ignored with --url) over
// HTTPS when its web.config_file sets TLS, trusting exactly the
// certificate the agent serves. An agent behind basic auth needs
// --http.config.file (the password is stored hashed on the agent's side),
// which then defines the whole client, TLS included, as amtool's does.
func connect(f apiFlags, cfg agent.WebConfig, configFile string) (*agentAPI, error) {
	api := &agentAPI{base: strings.TrimRight(*f.url, "/"), via: "--url"}
	var web webServerConfig
	if api.base == "" {
		api.base, api.via = "http://"+loopback(cfg.Listen), "web.listen of "+configName(configFile)
		if cfg.ConfigFile != "" {
			var err error
			if web, err = readWebConfig(cfg.ConfigFile); err != nil {
				return nil, fmt.Errorf("web.config_file of %s: %w (run as root, or pass --url and --http.config.file)", configName(configFile), err)
			}
			if web.certFile != "" {
				api.base = "https://" + loopback(cfg.Listen)
				api.via += " and the TLS of " + cfg.ConfigFile
			}
		}
	}
	if *f.httpConfig != "" {
		hc, _, err := promconfig.LoadHTTPConfigFile(*f.httpConfig)
		if err != nil {
			return nil, fmt.Errorf("--http.config.file %s: %w", *f.httpConfig, err)
		}
		if api.client, err = promconfig.NewClientFromConfig(*hc, "tokpulse-agent"); err != nil {
			return nil, fmt.Errorf("--http.config.file %s: %w", *f.httpConfig, err)
		}
		return api, nil
	}
	if web.basicAuth {
		return nil, fmt.Errorf("the agent asks for basic auth (basic_auth_users in %s); pass --http.config.file with basic_auth: {username: …, password_file: …}", cfg.ConfigFile)
	}
	api.client = &http.Client{}
	if web.certFile != "" {
		pinned, err := pinnedTLS(web.certFile)
		if err != nil {
			return nil, fmt.Errorf("web.config_file %s: %w (pass --url and --http.config.file with tls_config instead)", cfg.ConfigFile, err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig, tr.Proxy = pinned, nil
		api.client.Transport = tr
	}
	return api, nil
}

// loopback is where to reach an agent listening on listen from this host:
// a wildcard address (":9847", "0.0.0.0:9847") is reached on loopback.
func loopback(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port)
}

// webServerConfig is what the CLI needs of an exporter-toolkit web config
// file: whether the agent serves TLS (and with which certificate) and
// whether it asks for basic auth.
type webServerConfig struct {
	certFile  string
	basicAuth bool
}

func readWebConfig(path string) (webServerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return webServerConfig{}, err
	}
	var raw struct {
		TLS *struct {
			CertFile string `yaml:"cert_file"`
		} `yaml:"tls_server_config"`
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return webServerConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	var w webServerConfig
	if raw.TLS != nil && raw.TLS.CertFile != "" {
		w.certFile = raw.TLS.CertFile
		if !filepath.IsAbs(w.certFile) {
			w.certFile = filepath.Join(filepath.Dir(path), w.certFile) // as exporter-toolkit resolves it
		}
	}
	w.basicAuth = len(raw.Users) > 0
	return w, nil
}

// pinnedTLS trusts exactly the certificate in certFile, the one the agent
// serves: whoever answers on the agent's port must hold its key. Names
// are not checked, since the certificate is for the host's name and the
// CLI dials the loopback address.
func pinnedTLS(certFile string) (*tls.Config, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	want, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is VerifyConnection's: the served certificate must be
		// the pinned one, byte for byte.
		InsecureSkipVerify: true, //nolint:gosec // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want.Raw) {
				return errors.New("the server's certificate is not the agent's (tls_server_config.cert_file)")
			}
			return nil
		},
	}, nil
}

// do sends a request to path of the API and returns the answer's body;
// an answer other than 2xx is an error that quotes the agent.
func (api *agentAPI) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, api.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if method != http.MethodGet {
		// The agent refuses state-changing requests that a web page in a
		// browser could forge, which carry neither (docs/api.md).
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(agent.HeaderRequest, "1")
	}
	resp, err := api.client.Do(req)
	if err != nil {
		return nil, &unreachableError{api.base, err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", api.base, err)
	}
	if resp.StatusCode/100 != 2 {
		return b, &statusError{code: resp.StatusCode, msg: fmt.Sprintf("agent at %s answered %s to %s %s: %s", api.base, resp.Status, method, path, strings.TrimSpace(string(b)))}
	}
	return b, nil
}

// unreachableError is an agent that did not answer at all.
type unreachableError struct {
	base string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the agent at %s: %v (is it running? systemctl status tokpulse-agent)", e.base, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// statusError is an answer other than 2xx.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// apiTimeout bounds a request to the agent: a notify test waits for every
// output, each within its own timeout, up to the agent's 2 minutes.
const apiTimeout = 150 * time.Second
