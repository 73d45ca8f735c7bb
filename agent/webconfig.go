package agent

import (
	"fmt"
	"path/filepath"

	"github.com/prometheus/exporter-toolkit/web"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/safefile"
)

// CheckWebConfigFile validates an exporter-toolkit web configuration file
// (web.config_file or --web.config.file) as the HTTP server will read it.
// exporter-toolkit reads the file and the certificate files it names with
// os.ReadFile, which blocks for ever on a FIFO and never ends on
// /dev/zero, so each is first read here through safefile: a regular file,
// of bounded size.
func CheckWebConfigFile(path string) error {
	data, err := safefile.ReadFile(path, safefile.MaxWebConfig, "web.config_file")
	if err != nil {
		return fmt.Errorf("reading the web config file: %w", err)
	}
	// Only the file names; exporter-toolkit checks the rest below.
	var files struct {
		TLS struct {
			Cert     string `yaml:"cert_file"`
			Key      string `yaml:"key_file"`
			ClientCA string `yaml:"client_ca_file"`
		} `yaml:"tls_server_config"`
	}
	_ = yaml.Unmarshal(data, &files)
	dir := filepath.Dir(path)
	for _, f := range []struct{ key, path string }{
		{"tls_server_config.cert_file", files.TLS.Cert},
		{"tls_server_config.key_file", files.TLS.Key},
		{"tls_server_config.client_ca_file", files.TLS.ClientCA},
	} {
		if f.path == "" {
			continue
		}
		p := f.path
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p) // as exporter-toolkit resolves it
		}
		if _, err := safefile.ReadFile(p, safefile.MaxPEM, f.key); err != nil {
			return fmt.Errorf("web config file %s: %s: %w", path, f.key, err)
		}
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("invalid exporter-toolkit web config %s: %w", path, err)
	}
	return nil
}
