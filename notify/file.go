package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// FileConfig writes events as JSON lines to a file, or to stdout with "-".
type FileConfig struct {
	Name      string        `yaml:"name"`
	Path      string        `yaml:"path"`
	Templates TemplateFiles `yaml:"templates"`
}

func (f *FileConfig) name() string {
	if f.Name != "" {
		return f.Name
	}
	if f.Path == "-" {
		return "stdout"
	}
	return "file:" + f.Path
}

func (f *FileConfig) validate(v *yamlx.Checker, p string) {
	if f.Path == "" {
		v.Errorf(yamlx.Join(p, "path"), "must be set; write a file path such as /var/log/tokpulse-agent/alerts.jsonl, or \"-\" for stdout")
	}
	f.Templates.validate(v, yamlx.Join(p, "templates"))
}

// build implements outputConfig.
func (f *FileConfig) build(env buildEnv) (Output, error) { return newFile(*f, env) }

// file appends events as JSON lines to a file, or writes them to stdout.
// The file is opened for each batch so that logrotate can move it away.
type file struct {
	name   string
	path   string
	stdout io.Writer
	tmpl   *templates
	mu     sync.Mutex
}

func newFile(c FileConfig, env buildEnv) (*file, error) {
	t, err := loadTemplates(c.Templates, env.templates)
	if err != nil {
		return nil, err
	}
	stdout := env.stdout
	if stdout == nil {
		stdout = os.Stdout
	}
	return &file{name: c.name(), path: c.Path, stdout: stdout, tmpl: t}, nil
}

func (f *file) Name() string  { return f.name }
func (f *file) MaxBatch() int { return 1000 }

// Send implements Output.
func (f *file) Send(_ context.Context, events []alert.Event) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i := range events {
		events[i].Text = f.tmpl.render(&events[i])
		if err := enc.Encode(&events[i]); err != nil {
			return &SendError{Err: err, Permanent: true}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path == "-" {
		if _, err := f.stdout.Write(b.Bytes()); err != nil {
			return &SendError{Err: fmt.Errorf("writing alerts to stdout: %w", err)}
		}
		return nil
	}
	fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return &SendError{Err: fmt.Errorf("opening %s: %w (create its directory, writable by the agent's user)", f.path, err)}
	}
	if _, err := fh.Write(b.Bytes()); err != nil {
		_ = fh.Close()
		return &SendError{Err: fmt.Errorf("writing %s: %w", f.path, err)}
	}
	if err := fh.Close(); err != nil {
		return &SendError{Err: fmt.Errorf("closing %s: %w", f.path, err)}
	}
	return nil
}
