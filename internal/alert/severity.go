package alert

import (
	"fmt"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// Severity is the runbook's incident class, P1 (critical) to P4 (low). Rules
// set it with the label "severity".
type Severity string

// The runbook's classes.
const (
	P1 Severity = "P1"
	P2 Severity = "P2"
	P3 Severity = "P3"
	P4 Severity = "P4"
)

// Severities lists the classes from most to least urgent.
func Severities() []Severity { return []Severity{P1, P2, P3, P4} }

// Valid reports whether s is one of P1..P4.
func (s Severity) Valid() bool {
	switch s {
	case P1, P2, P3, P4:
		return true
	}
	return false
}

// Rank orders severities: P1 is 1, P4 is 4, anything else 5.
func (s Severity) Rank() int {
	for i, v := range Severities() {
		if v == s {
			return i + 1
		}
	}
	return 5
}

// Policy is the runbook's handling of one severity.
type Policy struct {
	// Response is the time within which the incident must be acknowledged.
	Response yamlx.Duration `yaml:"response"`
	// UpdateEvery is the stakeholder update cadence while the alert fires.
	UpdateEvery yamlx.Duration `yaml:"update_every"`
	// GroupWait gathers alerts that start together into one notification.
	GroupWait yamlx.Duration `yaml:"group_wait"`
	// Escalate lists who is paged after how long, in order.
	Escalate []Step `yaml:"escalate"`
}

// Step is one escalation step: after this long unresolved, notify To.
type Step struct {
	After yamlx.Duration `yaml:"after"`
	To    string         `yaml:"to"`
}

// Policies is the "severities:" section of agent.yaml.
type Policies struct {
	P1 Policy `yaml:"P1"`
	P2 Policy `yaml:"P2"`
	P3 Policy `yaml:"P3"`
	P4 Policy `yaml:"P4"`
}

// DefaultPolicies are the runbook's values ("Incident Classification" and
// "Escalation Procedures").
func DefaultPolicies() Policies {
	d := func(x time.Duration) yamlx.Duration { return yamlx.Duration(x) }
	return Policies{
		P1: Policy{Response: d(15 * time.Minute), UpdateEvery: d(30 * time.Minute),
			Escalate: []Step{{d(15 * time.Minute), "engineering-manager"}, {d(time.Hour), "cto"}}},
		P2: Policy{Response: d(time.Hour), UpdateEvery: d(2 * time.Hour),
			Escalate: []Step{{d(4 * time.Hour), "engineering-manager"}}},
		P3: Policy{Response: d(4 * time.Hour), UpdateEvery: d(24 * time.Hour), GroupWait: d(30 * time.Second),
			Escalate: []Step{{d(4 * time.Hour), "manager"}}},
		P4: Policy{Response: d(24 * time.Hour), UpdateEvery: d(24 * time.Hour), GroupWait: d(30 * time.Second),
			Escalate: []Step{{d(24 * time.Hour), "manager"}}},
	}
}

// For returns the policy of s (P4's for an unknown severity).
func (p Policies) For(s Severity) Policy {
	switch s {
	case P1:
		return p.P1
	case P2:
		return p.P2
	case P3:
		return p.P3
	}
	return p.P4
}

// Escalation returns the last step whose After has passed since activeAt,
// or "" when none has.
func (p Policy) Escalation(activeAt, now time.Time) string {
	_, step := p.EscalationLevel(activeAt, now, 0)
	return step
}

// EscalationLevel returns how many steps of the chain are reached (those
// whose After has passed since activeAt, but at least floor, at most all
// of them) and the last one's To ("" for none). A floor above the time
// gives is how an incident escalates early: an automated action that
// failed or had no effect raises it by one step.
func (p Policy) EscalationLevel(activeAt, now time.Time, floor int) (int, string) {
	level := 0
	for i, s := range p.Escalate {
		if now.Sub(activeAt) >= s.After.D() {
			level = i + 1
		}
	}
	level = min(max(level, floor), len(p.Escalate))
	if level == 0 {
		return 0, ""
	}
	return level, p.Escalate[level-1].To
}

// Validate implements yamlx.Validator.
func (p *Policies) Validate(v *yamlx.Checker, path string) {
	for _, s := range Severities() {
		pol := p.For(s)
		sp := yamlx.Join(path, string(s))
		if pol.Response.D() <= 0 {
			v.Errorf(yamlx.Join(sp, "response"), "must be positive; the runbook's value for %s is %s", s, DefaultPolicies().For(s).Response)
		}
		if pol.UpdateEvery.D() < time.Minute {
			v.Errorf(yamlx.Join(sp, "update_every"), "%s is too often; write at least 1m", pol.UpdateEvery)
		}
		var last time.Duration
		for i, st := range pol.Escalate {
			ip := yamlx.Index(yamlx.Join(sp, "escalate"), i)
			if st.To == "" {
				v.Errorf(yamlx.Join(ip, "to"), "must name whom to escalate to, e.g. engineering-manager")
			}
			if st.After.D() < last {
				v.Errorf(yamlx.Join(ip, "after"), "%s comes before the previous step's %s; list steps in order", st.After, yamlx.Duration(last))
			}
			last = st.After.D()
		}
	}
}

// String describes the policy in one line, for logs and `check`.
func (p Policy) String() string {
	return fmt.Sprintf("response %s, update every %s, %d escalation steps", p.Response, p.UpdateEvery, len(p.Escalate))
}
