package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/tokpulse/tokpulse-agent/actions"
	tpcollectors "github.com/tokpulse/tokpulse-agent/collectors"
	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/safefile"
	"github.com/tokpulse/tokpulse-agent/notify"
	"github.com/tokpulse/tokpulse-agent/rules"
)

// configSource is where a configuration came from: the file the operator
// named (or the embedded default), or the last good copy in the state
// directory.
type configSource struct {
	// file is the configuration file as the operator named it; relative
	// paths in it resolve against its directory. Empty: the embedded
	// default.
	file string
	// name is what messages call it.
	name string
	data []byte
	// ruleGlobs are the rule_files to load; for a last good copy, the
	// copies of the rule files that loaded then.
	ruleGlobs []string
	// lastGood is set for the last good copy, with when it was saved.
	lastGood bool
	savedAt  time.Time
}

// readConfigSource reads the configuration file (the embedded default when
// file is empty).
func readConfigSource(file string) (*configSource, error) {
	if file == "" {
		return &configSource{name: DefaultConfigName, data: defaultConfigYAML}, nil
	}
	// A FIFO or a device as --config must not hang a start, check or a
	// reload, and a huge file must not take minutes: read it safely,
	// capped.
	data, err := safefile.ReadFile(file, safefile.MaxConfig, "configuration file")
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w (pass --config with the path of agent.yaml)", err)
	}
	return &configSource{file: file, name: file, data: data}, nil
}

// generation is everything built from one configuration, not yet in force:
// building one changes nothing that runs, so that a reload that fails at
// any step leaves the running agent exactly as it was.
type generation struct {
	src      *configSource
	cfg      *Config
	pipeline *pipeline
	rules    *rules.RuleSet
	outputs  *notify.Outputs
	// actions and their executor, handed to the tracker on install.
	actions  []incident.Action
	executor incident.Executor
}

// build decodes and validates src, builds its collectors (taking over the
// running ones of prev whose configuration did not change), loads its rule
// files and builds its outputs. Any error is returned with nothing built.
func (a *Agent) build(src *configSource, prev *pipeline) (*generation, error) {
	cfg, err := Parse(src.name, src.data)
	if err != nil {
		return nil, err
	}
	globs := src.ruleGlobs
	if !src.lastGood {
		globs = ruleGlobs(cfg, src.file)
	}
	rs, err := loadRules(withSelfRules(globs), a.logger)
	if err != nil {
		return nil, err
	}
	outs, err := notify.BuildOutputs(cfg.Notify, a.notifyOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("building notify outputs: %w", err)
	}
	p, err := newPipeline(cfg, a.collectorOptions(cfg), prev)
	if err != nil {
		return nil, err
	}
	g := &generation{src: src, cfg: cfg, pipeline: p, rules: rs, outputs: outs}
	g.actions, g.executor = a.buildActions(cfg)
	return g, nil
}

// buildActions returns cfg's actions as the tracker decides them, and the
// executor that runs them.
func (a *Agent) buildActions(cfg *Config) ([]incident.Action, incident.Executor) {
	list := make([]incident.Action, len(cfg.Actions))
	for i := range cfg.Actions {
		list[i] = cfg.Actions[i].Action()
	}
	// The units the installed polkit policy allows, named when polkit
	// refuses a restart.
	pol := actions.ReadPolicy(actions.DefaultPolicyDirs())
	return list, actions.NewExecutor(cfg.Actions, actions.Options{
		Logger: a.logger.With("component", "actions"), Redactor: evidence.NewRedactor(), PolicyUnits: pol.Units,
	})
}

// pipeline is the collectors of one generation.
type pipeline struct {
	set *tpcollectors.Set
	// reused names the members taken over, running, from the previous
	// pipeline.
	reused map[string]bool

	mu      sync.Mutex
	runners map[string]*runner // by member name
}

// runner is one member's Run goroutine.
type runner struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// newPipeline builds cfg's collectors. A member of prev with the same name
// and configuration that may be reused is taken over as it runs (its
// counters, read positions and history stay); another one hands its
// history to its replacement when that can inherit it.
func newPipeline(cfg *Config, opts tpcollectors.Options, prev *pipeline) (*pipeline, error) {
	members, err := tpcollectors.Build(cfg.Config, opts)
	if err != nil {
		return nil, err
	}
	p := &pipeline{reused: map[string]bool{}, runners: map[string]*runner{}}
	if prev != nil {
		old := map[string]tpcollectors.Named{}
		for _, m := range prev.set.Members() {
			old[m.Name] = m
		}
		for i, m := range members {
			o, ok := old[m.Name]
			switch {
			case !ok:
			case m.Reuse && o.Key == m.Key:
				members[i] = o
				p.reused[m.Name] = true
			default:
				if inh, ok := m.Collector.(tpcollectors.Inheritor); ok {
					inh.Inherit(o.Collector)
				}
			}
		}
	}
	p.set = tpcollectors.NewSet(members, gatherTimeout(cfg), opts.Logger)
	return p, nil
}

// gatherTimeout bounds a gather, which must finish well inside one
// interval.
func gatherTimeout(cfg *Config) time.Duration {
	return min(cfg.Agent.Interval.D()*8/10, 30*time.Second)
}

func (p *pipeline) names() []string {
	var n []string
	for _, m := range p.set.Members() {
		n = append(n, m.Name)
	}
	return n
}

// start runs the members that work on their own schedule. Members taken
// over from prev keep running; prev's other members are stopped, and a
// member that replaces one of them (same name, new configuration) starts
// only once its predecessor has stopped: a log or journal source resumes
// from the read position it saves when it stops, and two sources reading
// the same files from the same saved position would count every line read
// meanwhile twice and checkpoint over each other. start returns once prev's
// members have stopped.
func (p *pipeline) start(ctx context.Context, prev *pipeline) {
	var old map[string]*runner
	if prev != nil {
		prev.mu.Lock()
		old = prev.runners
		prev.runners = map[string]*runner{}
		prev.mu.Unlock()
	}
	p.mu.Lock()
	for _, m := range p.set.Members() {
		if r, ok := old[m.Name]; ok && p.reused[m.Name] {
			p.runners[m.Name] = r
			delete(old, m.Name)
			continue
		}
		r, ok := m.Collector.(tpcollectors.Runner)
		if !ok {
			continue
		}
		var predecessor <-chan struct{}
		if o, ok := old[m.Name]; ok {
			predecessor = o.done
		}
		rctx, cancel := context.WithCancel(ctx)
		run := &runner{cancel: cancel, done: make(chan struct{})}
		p.runners[m.Name] = run
		go func() {
			defer close(run.done)
			if predecessor != nil {
				// Waiting here, not in start, delays only this member
				// while a slow predecessor stops (a check's command, a
				// journalctl that drains its output).
				<-predecessor
				if rctx.Err() != nil {
					return
				}
			}
			r.Run(rctx)
		}()
	}
	p.mu.Unlock()
	stopRunners(old)
}

// stop stops every member's Run and waits for them.
func (p *pipeline) stop() {
	p.mu.Lock()
	rs := p.runners
	p.runners = map[string]*runner{}
	p.mu.Unlock()
	stopRunners(rs)
}

func stopRunners(rs map[string]*runner) {
	for _, r := range rs {
		r.cancel()
	}
	for _, name := range slices.Sorted(maps.Keys(rs)) {
		<-rs[name].done
	}
}

// unknownFamilies returns the metric families of members that have not
// completed a run since they started: rules over them are held.
func (p *pipeline) unknownFamilies() map[string]bool {
	var out map[string]bool
	for _, m := range p.set.Members() {
		w, ok := m.Collector.(tpcollectors.Warmer)
		if !ok || w.Warm() {
			continue
		}
		if out == nil {
			out = map[string]bool{}
		}
		for _, f := range w.Families() {
			out[f] = true
		}
	}
	return out
}
