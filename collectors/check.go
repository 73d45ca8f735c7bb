package collectors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/reaper"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// Check failure reasons, the values of the reason label of
// tokpulse_check_failures_total.
const (
	CheckReasonTimeout = "timeout" // the command ran past its timeout and was killed
	CheckReasonExit    = "exit"    // the command exited with a non-zero status
	CheckReasonStart   = "start"   // the command could not be started
	CheckReasonParse   = "parse"   // stdout held no number (value: stdout) or did not match expect_output
)

var checkReasons = []string{CheckReasonTimeout, CheckReasonExit, CheckReasonStart, CheckReasonParse}

// MaxConcurrentChecks bounds how many check commands run at once, so that a
// host in trouble (where every check is slow) is not also flooded with
// forks.
const MaxConcurrentChecks = 4

// CheckConfig is one entry of the checks: list: a command run on a
// schedule, successful when it exits with status 0.
type CheckConfig struct {
	Name string `yaml:"name"`
	// Command is the argv; no shell is involved unless it names one
	// (["sh", "-c", "..."]). $VAR and ${VAR} are replaced from env,
	// env_files and the agent's environment; $$ is a literal $.
	Command  []string          `yaml:"command"`
	Interval yamlx.Duration    `yaml:"interval"`
	Timeout  yamlx.Duration    `yaml:"timeout"`
	Env      map[string]string `yaml:"env"`
	// EnvFiles sets variables whose values are secrets (a DATABASE_URL
	// with a password): variable name → file holding the value.
	EnvFiles map[string]yamlx.SecretFile `yaml:"env_files"`
	// Value is "none" or "stdout": the first number of the output becomes
	// tokpulse_check_value.
	Value string `yaml:"value"`
	// ExpectOutput must match stdout for the check to succeed. Some
	// clients exit 0 on an error reply: redis-cli prints "NOAUTH
	// Authentication required." and exits 0 unless run with -e.
	ExpectOutput   yamlx.Regexp `yaml:"expect_output"`
	MaxOutputBytes int          `yaml:"max_output_bytes"`
}

// DefaultCheckConfig returns the defaults of one check.
func DefaultCheckConfig() CheckConfig {
	return CheckConfig{
		Interval:       yamlx.Duration(15 * time.Second),
		Timeout:        yamlx.Duration(10 * time.Second),
		Value:          "none",
		MaxOutputBytes: 64 << 10,
	}
}

// UnmarshalYAML seeds the defaults before decoding.
func (c *CheckConfig) UnmarshalYAML(node *yaml.Node) error {
	*c = DefaultCheckConfig()
	type plain CheckConfig
	return node.Decode((*plain)(c))
}

// Validate implements yamlx.Validator.
func (c *CheckConfig) Validate(v *yamlx.Checker, path string) {
	if c.Name == "" {
		v.Errorf(yamlx.Join(path, "name"), "every check needs a name; write e.g. name: redis_ping")
	}
	if len(c.Command) == 0 || c.Command[0] == "" {
		v.Errorf(yamlx.Join(path, "command"), "every check needs a command as a list of arguments; write e.g. command: [redis-cli, ping]")
	}
	if c.Value != "none" && c.Value != "stdout" {
		v.Errorf(yamlx.Join(path, "value"), "%q is not a value mode; write none or stdout", c.Value)
	}
	if c.Timeout <= 0 {
		v.Errorf(yamlx.Join(path, "timeout"), "timeout must be positive; write e.g. timeout: 10s")
	}
	if c.Interval <= 0 {
		v.Errorf(yamlx.Join(path, "interval"), "interval must be positive; write e.g. interval: 15s")
	} else if c.Timeout > c.Interval {
		v.Errorf(yamlx.Join(path, "timeout"), "timeout %v is longer than interval %v; make it shorter so that runs do not overlap", c.Timeout, c.Interval)
	}
	if c.MaxOutputBytes <= 0 {
		v.Errorf(yamlx.Join(path, "max_output_bytes"), "max_output_bytes must be positive; write e.g. max_output_bytes: 65536")
	}
	for _, k := range sortedKeys(c.EnvFiles) {
		if _, dup := c.Env[k]; dup {
			v.Errorf(yamlx.Join(path, "env_files"), "%s is set in both env and env_files; keep one", k)
		}
		v.CheckRunSecretFile(yamlx.Join(yamlx.Join(path, "env_files"), k), c.EnvFiles[k])
	}
}

func (c *CheckConfig) name() string { return c.Name }

// CheckResult is the outcome of one check run.
type CheckResult struct {
	Outcome
	ExitCode int
	// Value is the first number of stdout when HasValue.
	Value    float64
	HasValue bool
	// Stdout and Stderr are the first max_output_bytes of each.
	Stdout, Stderr string
	// Truncated reports that the output went past the bound.
	Truncated bool
}

// headBuffer keeps the first max bytes written to it and discards the rest,
// so that a command that prints gigabytes neither blocks on a full pipe nor
// fills the agent's memory.
type headBuffer struct {
	max       int
	buf       []byte
	truncated bool
}

func (h *headBuffer) Write(p []byte) (int, error) {
	n := len(p)
	room := h.max - len(h.buf)
	if len(p) > room {
		h.truncated = true
		p = p[:max(room, 0)]
	}
	h.buf = append(h.buf, p...)
	return n, nil
}

// numberRE finds the first number in a command's output ("(integer) 42",
// "42", "-1.5e3").
var numberRE = regexp.MustCompile(`[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?`)

// RunCheck runs cfg's command once and judges it. Whether the command
// succeeds, fails or outlives ctx, everything it started is killed when it
// ends (see internal/reaper).
func RunCheck(ctx context.Context, cfg CheckConfig) CheckResult {
	start := time.Now()
	r := runCheck(ctx, cfg)
	r.Duration = time.Since(start)
	return r
}

func runCheck(ctx context.Context, cfg CheckConfig) CheckResult {
	env := map[string]string{}
	for k, v := range cfg.Env {
		env[k] = v
	}
	for k, f := range cfg.EnvFiles {
		s, err := f.Read()
		if err != nil {
			return CheckResult{Outcome: failed(CheckReasonStart, fmt.Errorf("env_files %s: %w", k, err))}
		}
		env[k] = s.Reveal()
	}
	argv, err := expandArgv(cfg.Command, env)
	if err != nil {
		return CheckResult{Outcome: failed(CheckReasonStart, err)}
	}
	cmdEnv := os.Environ()
	for _, k := range sortedKeys(env) {
		cmdEnv = append(cmdEnv, k+"="+env[k])
	}
	// Under a reaper (internal/reaper): a child subreaper that runs the
	// command in its own process group and, when it ends, kills
	// everything it started, children that called setsid included. A
	// reaper asked to stop (the timeout) that has not exited a second
	// later is killed.
	cmd, err := reaper.Command(ctx, argv, cmdEnv, time.Second)
	if err != nil {
		return CheckResult{Outcome: failed(CheckReasonStart, fmt.Errorf("starting %s: %w", argv[0], err))}
	}
	stdout := &headBuffer{max: cfg.MaxOutputBytes}
	stderr := &headBuffer{max: cfg.MaxOutputBytes}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	err = cmd.Run()
	r := CheckResult{ExitCode: -1}
	if cmd.ProcessState != nil {
		r.ExitCode = cmd.ProcessState.ExitCode()
	}
	r.Stdout, r.Stderr = string(stdout.buf), string(stderr.buf)
	r.Truncated = stdout.truncated || stderr.truncated
	var exitErr *exec.ExitError
	var startErr *reaper.StartError
	switch {
	case err != nil && ctx.Err() == context.DeadlineExceeded:
		r.Reason, r.Err = CheckReasonTimeout, fmt.Errorf("%s did not finish within %v and was killed with everything it started", argv[0], cfg.Timeout)
		return r
	case errors.As(err, &startErr):
		r.ExitCode = -1
		r.Reason, r.Err = CheckReasonStart, fmt.Errorf("starting %s: %s (is it installed and on the agent's PATH?)", argv[0], startErr.Msg)
		return r
	case err != nil && cmd.ProcessState == nil:
		r.Reason, r.Err = CheckReasonStart, fmt.Errorf("starting %s: %w (is it installed and on the agent's PATH?)", argv[0], err)
		return r
	case errors.As(err, &exitErr):
		r.Reason, r.Err = CheckReasonExit, fmt.Errorf("%s exited with status %d: %s", argv[0], r.ExitCode, firstLine(r.Stderr, r.Stdout))
		return r
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		r.Reason, r.Err = CheckReasonStart, fmt.Errorf("running %s: %w", argv[0], err)
		return r
	}
	if re := cfg.ExpectOutput; !re.IsZero() && !re.Match(strings.TrimRight(r.Stdout, "\r\n")) {
		r.Reason, r.Err = CheckReasonParse, fmt.Errorf("%s printed %q, which does not match expect_output %q", argv[0], firstLine(r.Stdout), re.String())
		return r
	}
	if cfg.Value == "stdout" {
		m := numberRE.FindString(r.Stdout)
		f, perr := strconv.ParseFloat(m, 64)
		if m == "" || perr != nil {
			r.Reason, r.Err = CheckReasonParse, fmt.Errorf("%s printed no number (value: stdout): %q", argv[0], firstLine(r.Stdout))
			return r
		}
		r.Value, r.HasValue = f, true
	}
	r.Success = true
	return r
}

// expandArgv replaces $VAR and ${VAR} from env, then the agent's
// environment. An unset variable is an error rather than an empty string,
// because psql "" connects somewhere else than the operator meant.
func expandArgv(argv []string, env map[string]string) ([]string, error) {
	var missing []string
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = os.Expand(a, func(k string) string {
			if k == "$" {
				return "$"
			}
			if v, ok := env[k]; ok {
				return v
			}
			if v, ok := os.LookupEnv(k); ok {
				return v
			}
			missing = append(missing, k)
			return ""
		})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("variables %s are not set; set them in the check's env or env_files, or in the agent's environment (write $$ for a literal $)", strings.Join(missing, ", "))
	}
	return out, nil
}

func firstLine(texts ...string) string {
	for _, t := range texts {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		line, _, _ := strings.Cut(t, "\n")
		if len(line) > 200 {
			line = line[:200] + "…"
		}
		return line
	}
	return "no output"
}

// Checks runs the configured checks, each on its own schedule and at most
// MaxConcurrentChecks at once, and reports their last results.
type Checks struct {
	scheduled[CheckConfig, *CheckResult]
	sem   chan struct{}
	value *prometheus.Desc
}

// checkKind is what sets checks apart for the scheduled type.
var checkKind = kindSpec[CheckConfig]{
	kind: "check",
	job: func(c CheckConfig) jobSpec {
		return jobSpec{name: c.Name, key: configKey(c), interval: c.Interval.D(), timeout: c.Timeout.D()}
	},
	reasons:      checkReasons,
	durationHelp: "How long the last run of the check took.",
	// Checks wait for a free slot too: allow each a second run's time.
	warmFactor: 2,
}

// NewChecks returns the collector of cfgs.
func NewChecks(cfgs []CheckConfig, opts Options) *Checks {
	opts = opts.withDefaults()
	c := &Checks{
		sem:   make(chan struct{}, MaxConcurrentChecks),
		value: prometheus.NewDesc("tokpulse_check_value", "The first number the check printed in its last successful run (value: stdout).", []string{"check"}, nil),
	}
	c.init(checkKind, cfgs, opts)
	return c
}

// Families implements Warmer: the families a check's result fills.
func (c *Checks) Families() []string {
	return []string{"tokpulse_check_success", "tokpulse_check_value", "tokpulse_check_duration_seconds"}
}

// Inherit implements Inheritor: a check whose configuration did not change
// keeps its last result and failure counters over a reload.
func (c *Checks) Inherit(old Collector) {
	if o, ok := old.(*Checks); ok {
		c.inherit(&o.scheduled)
	}
}

func validateChecks(c *Config, v *yamlx.Checker, path string) {
	validateNamed(c.Checks, v, yamlx.Join(path, "checks"), "check")
}

func buildChecks(cfg Config, opts Options) ([]Named, error) {
	if len(cfg.Checks) == 0 {
		return nil, nil
	}
	// Not reused: env_files are read again at every reload.
	return []Named{{Name: "checks", Collector: NewChecks(cfg.Checks, opts), Key: configKey(cfg.Checks)}}, nil
}

// Run implements Runner.
func (c *Checks) Run(ctx context.Context) {
	c.run(ctx, func(ctx context.Context, i int) { c.RunOnce(ctx, i) })
}

// RunOnce runs check i now (once a slot is free) and records its result.
func (c *Checks) RunOnce(ctx context.Context, i int) CheckResult {
	cfg := c.jobs[i].cfg
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return CheckResult{}
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout.D())
	r := RunCheck(cctx, cfg)
	cancel()
	<-c.sem
	if ctx.Err() != nil {
		return r // stopping: the cut-short run says nothing
	}
	r.Time = c.now()
	c.record(i, &r)
	return r
}

// Update implements Collector; it reports the last results and never runs
// a command.
func (c *Checks) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.update(ch, func(j *job[CheckConfig, *CheckResult], r *CheckResult) {
		if r.HasValue {
			ch <- prometheus.MustNewConstMetric(c.value, prometheus.GaugeValue, r.Value, j.name)
		}
	})
	return nil
}

// evidenceOutputBytes bounds each output kept in an evidence section.
const evidenceOutputBytes = 4096

// Evidence implements evidence.Provider: the last failure of each check
// with its reason, error and output.
func (c *Checks) Evidence() []evidence.Section {
	return c.evidence("check_output",
		func(j *job[CheckConfig, *CheckResult], f *CheckResult) string {
			return fmt.Sprintf("Last failure of check %s (%s): %s", j.name, j.cfg.Command[0], f.Reason)
		},
		func(f *CheckResult) []evidence.Entry {
			entries := []evidence.Entry{{Time: f.Time, Text: c.redact.Redact(fmt.Sprintf("reason=%s exit=%d duration=%s error=%v", f.Reason, f.ExitCode, f.Duration.Round(time.Millisecond), f.Err))}}
			for _, o := range []struct{ name, text string }{{"stdout", f.Stdout}, {"stderr", f.Stderr}} {
				if strings.TrimSpace(o.text) == "" {
					continue
				}
				t := o.text
				if len(t) > evidenceOutputBytes {
					t = strings.ToValidUTF8(t[:evidenceOutputBytes], "\uFFFD") + "…"
				}
				entries = append(entries, evidence.Entry{Time: f.Time, Text: o.name + ": " + c.redact.Redact(t)})
			}
			return entries
		})
}

// Status implements StatusProvider: one line per check.
func (c *Checks) Status() []Status {
	return c.status(func(r *CheckResult, d string) string {
		if r.HasValue {
			return fmt.Sprintf("value %g, %s", r.Value, d)
		}
		return d
	})
}
