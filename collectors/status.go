package collectors

import (
	"fmt"
	"time"
)

// Status implements StatusProvider: one line per probe with its last
// result, so that `tokpulse-agent status` shows why a probe fails.
func (p *Probes) Status() []Status {
	out := make([]Status, 0, len(p.probes))
	for _, s := range p.probes {
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		st := Status{Kind: "probe", Name: s.target.Config.Name}
		if last == nil {
			st.Detail = "not run yet"
		} else {
			st.LastRun, st.OK, st.Reason = last.Time, last.Success, last.Reason
			st.Detail = resultDetail(last.Err, last.Duration)
			if last.StatusCode != 0 {
				st.Detail = fmt.Sprintf("HTTP %d, %s", last.StatusCode, st.Detail)
			}
		}
		st.Detail = p.redact.Redact(st.Detail)
		out = append(out, st)
	}
	return out
}

// Status implements StatusProvider: one line per check.
func (c *Checks) Status() []Status {
	out := make([]Status, 0, len(c.checks))
	for _, s := range c.checks {
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		st := Status{Kind: "check", Name: s.cfg.Name}
		if last == nil {
			st.Detail = "not run yet"
		} else {
			st.LastRun, st.OK, st.Reason = last.Time, last.Success, last.Reason
			st.Detail = resultDetail(last.Err, last.Duration)
			if last.HasValue {
				st.Detail = fmt.Sprintf("value %g, %s", last.Value, st.Detail)
			}
		}
		st.Detail = c.redact.Redact(st.Detail)
		out = append(out, st)
	}
	return out
}

// resultDetail is the error of a failed run, or how long a good one took.
func resultDetail(err error, d time.Duration) string {
	if err != nil {
		return err.Error()
	}
	return "took " + d.Round(time.Millisecond).String()
}
