package collectors

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/state"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// Config is the part of agent.yaml that configures collectors. The agent
// inlines it at the top level of its own configuration. Each field is the
// key of one kind of collector in kinds below.
type Config struct {
	Host HostConfig `yaml:"host"`
	// Probes, Checks, Processes and Units: see probe.go, check.go,
	// process.go and unit.go.
	Probes    yamlx.List[ProbeConfig]   `yaml:"probes"`
	Checks    yamlx.List[CheckConfig]   `yaml:"checks"`
	Processes yamlx.List[ProcessConfig] `yaml:"processes"`
	Units     []string                  `yaml:"units"`
	// Logs and Journal: see logfile.go and journal.go.
	Logs    yamlx.List[LogConfig]     `yaml:"logs"`
	Journal yamlx.List[JournalConfig] `yaml:"journal"`
}

// DefaultConfig returns the collector configuration used where agent.yaml is
// silent.
func DefaultConfig() Config {
	return Config{Host: DefaultHostConfig()}
}

// Validate implements yamlx.Validator: each kind validates its key, then
// what spans kinds (log and journal sources share one name space).
func (c *Config) Validate(v *yamlx.Checker, path string) {
	for _, k := range kinds() {
		k.validate(c, v, path)
	}
	validateLogSources(v, c.Logs, c.Journal)
}

// kind is one kind of collector: its name, how its key of Config is
// validated and how its collectors are built. Both functions live in the
// kind's own file, beside the collector.
type kind struct {
	name     string
	validate func(c *Config, v *yamlx.Checker, path string)
	build    func(Config, Options) ([]Named, error)
}

// kinds lists every kind of collector, in the order they are validated and
// built. With Config's fields above, this table is the one place that
// lists them: a new kind is its own file plus its key in Config and its
// row here (CONTRIBUTING.md, "Adding a collector").
func kinds() []kind {
	return []kind{
		{"host", validateHost, buildHost},
		{"probes", validateProbes, buildProbes},
		{"checks", validateChecks, buildChecks},
		{"processes", validateProcesses, buildProcesses},
		{"systemd", validateUnits, buildUnits},
		{"logs", validateLogs, buildLogs},
		{"journal", validateJournal, buildJournal},
	}
}

// Paths locates the host's pseudo filesystems. They are configurable so that
// tests read fixtures under testdata/ and the agent can watch a host from a
// container that mounts the host's /proc, /sys and / elsewhere.
type Paths struct {
	Proc   string `yaml:"proc"`
	Sys    string `yaml:"sys"`
	Rootfs string `yaml:"rootfs"`
}

// DefaultPaths are the host's own.
func DefaultPaths() Paths { return Paths{Proc: "/proc", Sys: "/sys", Rootfs: "/"} }

// Validate implements yamlx.Validator.
func (p *Paths) Validate(v *yamlx.Checker, path string) {
	for _, kv := range [][2]string{{"proc", p.Proc}, {"sys", p.Sys}, {"rootfs", p.Rootfs}} {
		if !filepath.IsAbs(kv[1]) {
			v.Errorf(yamlx.Join(path, kv[0]), "%q is not an absolute path; write e.g. /host/%s", kv[1], kv[0])
		}
	}
}

// Options carries what every collector may need besides its own config.
type Options struct {
	Logger *slog.Logger
	Paths  Paths
	// Now is the clock; tests inject a fixed one.
	Now func() time.Time
	// State is the agent's state file, for collectors that must resume
	// where they stopped (log positions, journal cursors).
	State *state.Store
	// Redactor cleans every text a collector keeps as evidence.
	Redactor *evidence.Redactor
	// Counters carries the log sources' counters across reloads; nil
	// starts them at 0.
	Counters *Counters
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Redactor == nil {
		o.Redactor = evidence.NewRedactor()
	}
	if o.Paths == (Paths{}) {
		o.Paths = DefaultPaths()
	}
	return o
}

// Build returns the collectors that cfg enables, kind by kind (see kinds).
func Build(cfg Config, opts Options) ([]Named, error) {
	opts = opts.withDefaults()
	var out []Named
	for _, b := range kinds() {
		cs, err := b.build(cfg, opts)
		if err != nil {
			return nil, fmt.Errorf("building %s collector: %w", b.name, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// namedConfig is a list element validated on its own and named uniquely
// within its list (a probe, a check, a process group).
type namedConfig interface {
	Validate(v *yamlx.Checker, path string)
	name() string
}

// validateNamed validates every element of a list and rejects a name used
// twice, since the name is the metrics' label value.
func validateNamed[T any, PT interface {
	*T
	namedConfig
}](items []T, v *yamlx.Checker, path, kind string) {
	seen := map[string]bool{}
	for i := range items {
		p := yamlx.Index(path, i)
		it := PT(&items[i])
		it.Validate(v, p)
		if n := it.name(); n != "" && seen[n] {
			v.Errorf(yamlx.Join(p, "name"), "%s name %q is used twice; names must be unique", kind, n)
		} else {
			seen[n] = true
		}
	}
}
