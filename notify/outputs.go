package notify

import (
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// outputConfig is what the configuration of each kind of output provides,
// beside its code (webhook.go, alertmanager.go, file.go): its name, its
// checks and its constructor. A kind of output is registered by one field
// of Config, a yamlx.List of a type whose pointer implements outputConfig.
type outputConfig interface {
	// name identifies the output in metrics, logs and the outbox.
	name() string
	// validate reports what is wrong under the YAML path p.
	validate(v *yamlx.Checker, p string)
	// build makes the output; it fails when a file it needs (a secret, a
	// template, a CA bundle) cannot be read.
	build(env buildEnv) (Output, error)
}

// buildEnv is what every output may need besides its own configuration.
type buildEnv struct {
	// templates are the notify-wide message templates, which an output's
	// own templates override key by key.
	templates   TemplateFiles
	host        string
	version     string
	externalURL string
	now         func() time.Time
	// stdout receives the "-" file output; nil means os.Stdout.
	stdout io.Writer
}

// placedOutput is one configured output with its YAML path.
type placedOutput struct {
	cfg  outputConfig
	path string
}

var outputConfigType = reflect.TypeFor[outputConfig]()

// outputConfigs lists every configured output, kind by kind in the order
// of Config's fields, then in the order written. path is the YAML path of
// the notify section (for validation messages).
func (c *Config) outputConfigs(path string) []placedOutput {
	var out []placedOutput
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		if f.Kind() != reflect.Slice || !reflect.PointerTo(sf.Type.Elem()).Implements(outputConfigType) {
			continue
		}
		key := yamlx.Join(path, yamlKey(sf))
		for j := range f.Len() {
			out = append(out, placedOutput{cfg: f.Index(j).Addr().Interface().(outputConfig), path: yamlx.Index(key, j)})
		}
	}
	return out
}

// yamlKey is a field's YAML key (its tag up to the first comma).
func yamlKey(sf reflect.StructField) string {
	tag := sf.Tag.Get("yaml")
	for i := range len(tag) {
		if tag[i] == ',' {
			return tag[:i]
		}
	}
	return tag
}

// OutputNames lists the names of every configured output, in order.
func (c *Config) OutputNames() []string {
	var n []string
	for _, o := range c.outputConfigs("") {
		n = append(n, o.cfg.name())
	}
	return n
}

// Outputs is a built set of outputs with the configuration they came from,
// ready to be applied; building has no effect on the running delivery.
type Outputs struct {
	cfg  Config
	list []Output
}

// Names returns the outputs' names.
func (o *Outputs) Names() []string {
	names := make([]string, len(o.list))
	for i, x := range o.list {
		names[i] = x.Name()
	}
	return names
}

// BuildOutputs builds every output of cfg; it fails when one cannot be
// built (an unreadable secret or template file, a bad CA file).
func BuildOutputs(cfg Config, opts Options) (*Outputs, error) {
	env := buildEnv{templates: cfg.Templates, host: opts.Host, version: opts.Version,
		externalURL: cfg.ExternalURL, now: opts.Now, stdout: opts.Stdout}
	if env.externalURL == "" {
		env.externalURL = opts.ExternalURL
	}
	if env.now == nil {
		env.now = time.Now
	}
	var outs []Output
	for _, c := range cfg.outputConfigs("") {
		o, err := c.cfg.build(env)
		if err != nil {
			return nil, fmt.Errorf("notify output %s: %w", c.cfg.name(), err)
		}
		outs = append(outs, o)
	}
	return &Outputs{cfg: cfg, list: outs}, nil
}
