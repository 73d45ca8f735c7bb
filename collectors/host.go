package collectors

import (
	"github.com/tokpulse/tokpulse-agent/collectors/host"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// HostConfig is the `host:` section: the families of the host collector and
// their filters. It is defined in package host, beside the families.
type HostConfig = host.Config

// DefaultHostConfig returns the host collector's defaults.
func DefaultHostConfig() HostConfig { return host.DefaultConfig() }

func validateHost(c *Config, v *yamlx.Checker, path string) {
	c.Host.Validate(v, yamlx.Join(path, "host"))
}

func buildHost(cfg Config, opts Options) ([]Named, error) {
	h := host.New(cfg.Host, host.Options{
		Logger: opts.Logger.With("collector", "host"),
		Paths:  host.Paths{Proc: opts.Paths.Proc, Sys: opts.Paths.Sys, Rootfs: opts.Paths.Rootfs},
		Now:    opts.Now,
	})
	if len(h.Families()) == 0 {
		return nil, nil
	}
	// The host collector keeps state between gathers (counters that must
	// not step back, stuck mounts, the parsed os-release): a reload that
	// leaves host: and the paths alone keeps it.
	return []Named{{Name: "host", Collector: h, Key: configKey([]any{cfg.Host, opts.Paths}), Reuse: true}}, nil
}
