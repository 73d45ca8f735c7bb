package incident

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
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
		for i := range inc.Actions {
			run := &inc.Actions[i]
			if run.State != runRunning {
				continue
			}
			// The agent stopped while it ran: a command was killed with
			// it, a restart job went on in systemd. Its own result is
			// lost; whether the alert resolves in time still says whether
			// it worked. It never runs again for this incident.
			run.State, run.EndedAt, inc.dirty = runVerifying, now, true
			run.Reason = "the agent stopped while it ran; its own result is unknown"
			t.logger.Info("An automated action was under way when the agent stopped; verifying it from now", "action", run.Name,
				"alertname", inc.AlertName, "incident_id", inc.IncidentID)
		}
		key := alert.Rule{Group: inc.Group, Name: inc.AlertName}.Key()
		if t.byRule[key] == nil {
			t.byRule[key] = map[string]*incident{}
		}
		t.byRule[key][inc.Fingerprint] = inc
	}
	if err := t.restoreActions(); err != nil {
		return err
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

// restoreActions loads the actions' budgets and last runs.
func (t *Tracker) restoreActions() error {
	err := t.opts.State.Bucket(ActionsBucket).ForEach(func(k, v []byte) error {
		key := string(k)
		switch {
		case strings.HasPrefix(key, "budget/"):
			var b budget
			if err := json.Unmarshal(v, &b); err != nil || b.Action == "" {
				t.logger.Warn("Dropping a corrupt action budget; that action may run once more for that alert", "key", key, "err", err)
				t.act.dirtyKeys[key] = true
				return nil
			}
			t.act.budgets[key] = &b
		case strings.HasPrefix(key, "last/"):
			var at time.Time
			if err := json.Unmarshal(v, &at); err == nil {
				t.act.lastRun[strings.TrimPrefix(key, "last/")] = at
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading action budgets from the state file: %w (move the state file aside to start afresh)", err)
	}
	return nil
}

// persist writes the changed incidents and deletes the dropped ones, with
// the actions' budgets, in one transaction, and the time of the last
// evaluation when it is due.
func (t *Tracker) persist(ts time.Time) error {
	if t.opts.State == nil {
		t.each(func(inc *incident) { inc.dirty = false })
		clear(t.gone)
		clear(t.act.dirtyKeys)
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
	actPut, actDel, err := t.actionChanges()
	if err != nil {
		return err
	}
	if len(put) == 0 && len(del) == 0 && len(actPut) == 0 && len(actDel) == 0 {
		return t.saveMeta(ts, false)
	}
	// One transaction: a run recorded in its incident is always counted
	// in its budget, whatever moment a crash picks.
	err = t.opts.State.Update(func(tx *state.Tx) error {
		if err := tx.Apply(Bucket, put, del); err != nil {
			return err
		}
		return tx.Apply(ActionsBucket, actPut, actDel)
	})
	if err != nil {
		return fmt.Errorf("saving incidents to the state file: %w (check free space in agent.state_dir)", err)
	}
	t.each(func(inc *incident) { inc.dirty = false })
	clear(t.gone)
	clear(t.act.dirtyKeys)
	return t.saveMeta(ts, len(put) > 0 || len(del) > 0)
}

// actionChanges encodes the actions' budgets and last runs that changed
// since the last persist; those that are gone are to be deleted.
func (t *Tracker) actionChanges() (put map[string][]byte, del []string, err error) {
	put = map[string][]byte{}
	for k := range t.act.dirtyKeys {
		var v any
		if b, ok := t.act.budgets[k]; ok {
			v = b
		} else if at, ok := t.act.lastRun[strings.TrimPrefix(k, "last/")]; ok && strings.HasPrefix(k, "last/") {
			v = at
		}
		if v == nil {
			del = append(del, k)
			continue
		}
		data, err := json.Marshal(v)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding an action budget: %w", err)
		}
		put[k] = data
	}
	return put, del, nil
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
