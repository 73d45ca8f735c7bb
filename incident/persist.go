package incident

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// meta is the tracker's bookkeeping in MetaBucket.
type meta struct {
	// LastEvaluation is when the tracker last committed an evaluation
	// (saved at most every metaSaveEvery, and at a clean stop); the next
	// start takes the time since as the agent's downtime.
	LastEvaluation time.Time `json:"last_evaluation"`
}

const metaKey = "tracker"

// restore loads the incidents from the state file (migrating the layout of
// versions before the tracker existed) and adjusts pending ones for the
// time the agent was down.
func (t *Tracker) restore() error {
	if t.opts.State == nil {
		return nil
	}
	recs, err := t.readRecords()
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		if recs, err = migrateLegacy(t.opts.State, t.opts.Host, t.logger); err != nil {
			return err
		}
	}
	var m meta
	if _, err := t.opts.State.Bucket(MetaBucket).GetJSON(metaKey, &m); err != nil {
		t.logger.Warn("The tracker's bookkeeping in the state file is unreadable; taking the downtime as zero", "err", err)
	}
	now := t.opts.Now()
	var down time.Duration
	if !m.LastEvaluation.IsZero() && now.After(m.LastEvaluation) {
		down = now.Sub(m.LastEvaluation)
	}
	held, dropped := 0, 0
	for _, inc := range recs {
		switch inc.State {
		case alert.StatePending:
			if down > t.opts.OutageTolerance {
				// Too long unobserved: its `for` starts again at the next
				// evaluation that sees it.
				t.gone[inc.key()] = true
				dropped++
				continue
			}
			// The time the agent was down does not count towards `for`
			// (nobody watched), the time before does. Nothing was
			// announced yet, so the incident id may follow.
			inc.ActiveAt = inc.ActiveAt.Add(down)
			inc.IncidentID = alert.IncidentID(t.opts.Host, inc.Fingerprint, inc.ActiveAt)
			inc.dirty = true
			inc.held = true
			held++
		case alert.StateFiring:
			inc.held = true
			held++
		}
		key := alert.Rule{Group: inc.Group, Name: inc.AlertName}.Key()
		if t.byRule[key] == nil {
			t.byRule[key] = map[string]*incident{}
		}
		t.byRule[key][inc.Fingerprint] = inc
	}
	if held > 0 || dropped > 0 {
		t.logger.Info("Incidents restored from the state file; held until their rules see fresh data",
			"held", held, "pending_restarted", dropped, "downtime", down.Round(time.Second))
	}
	return nil
}

// readRecords reads every incident record; a corrupt one is dropped with a
// warning rather than hiding the others.
func (t *Tracker) readRecords() ([]*incident, error) {
	var out []*incident
	err := t.opts.State.Bucket(Bucket).ForEach(func(k, v []byte) error {
		inc := &incident{}
		if err := json.Unmarshal(v, &inc.record); err != nil || inc.Fingerprint == "" {
			t.logger.Warn("Dropping a corrupt incident record", "key", string(k), "err", err)
			t.gone[string(k)] = true
			return nil
		}
		inc.lset = labels.FromMap(inc.Labels)
		if string(k) != inc.key() {
			t.gone[string(k)] = true
			inc.dirty = true
		}
		out = append(out, inc)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading incidents from the state file: %w (move the state file aside to start afresh)", err)
	}
	return out, nil
}

// persist writes the changed incidents and deletes the dropped ones in one
// transaction, and the time of the last evaluation when it is due.
func (t *Tracker) persist(ts time.Time) error {
	if t.opts.State == nil {
		t.each(func(inc *incident) { inc.dirty = false })
		clear(t.gone)
		return nil
	}
	put := map[string][]byte{}
	var err error
	t.each(func(inc *incident) {
		if !inc.dirty || err != nil {
			return
		}
		var data []byte
		if data, err = json.Marshal(&inc.record); err == nil {
			put[inc.key()] = data
		}
	})
	if err != nil {
		return fmt.Errorf("encoding an incident: %w", err)
	}
	del := make([]string, 0, len(t.gone))
	for k := range t.gone {
		if _, again := put[k]; !again {
			del = append(del, k)
		}
	}
	if err := t.opts.State.Bucket(Bucket).Apply(put, del); err != nil {
		return fmt.Errorf("saving incidents to the state file: %w (check free space in agent.state_dir)", err)
	}
	t.each(func(inc *incident) { inc.dirty = false })
	clear(t.gone)
	return t.saveMeta(ts, len(put) > 0 || len(del) > 0)
}

// saveMeta records ts (or now, when zero) as the last evaluation, when
// force is set or the last save is older than metaSaveEvery.
func (t *Tracker) saveMeta(ts time.Time, force bool) error {
	if t.opts.State == nil {
		return nil
	}
	if ts.IsZero() {
		ts = t.opts.Now()
	}
	if !force && ts.Sub(t.lastMeta) < metaSaveEvery {
		return nil
	}
	if err := t.opts.State.Bucket(MetaBucket).PutJSON(metaKey, meta{LastEvaluation: ts}); err != nil {
		return fmt.Errorf("saving the tracker's bookkeeping: %w", err)
	}
	t.lastMeta = ts
	return nil
}
