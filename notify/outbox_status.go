package notify

import (
	"encoding/json"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// OutputStatus is what /api/v1/outbox shows per output.
type OutputStatus struct {
	Pending     int          `json:"pending"`
	Oldest      *time.Time   `json:"oldest_pending,omitempty"`
	DeadLetters []DeadLetter `json:"dead_letters"`
}

// Status is the outbox as a whole, for /api/v1/outbox.
type Status struct {
	Events  int64                   `json:"events"`
	Bytes   int64                   `json:"bytes"`
	Dropped int64                   `json:"dropped_total"`
	Limits  OutboxConfig            `json:"limits"`
	Outputs map[string]OutputStatus `json:"outputs"`
}

func (o *outbox) status(outputs []string) (Status, error) {
	st := Status{Outputs: map[string]OutputStatus{}, Limits: OutboxConfig{MaxEvents: o.maxEvents, MaxBytes: o.maxBytes}}
	for _, name := range outputs {
		st.Outputs[name] = OutputStatus{DeadLetters: []DeadLetter{}}
	}
	err := o.st.View(func(tx *state.Tx) error {
		meta, _ := sub(tx, bktMeta)
		if meta == nil {
			return nil
		}
		st.Events, st.Bytes, st.Dropped = getInt(meta, "count"), getInt(meta, "bytes"), getInt(meta, "dropped")
		evb, _ := sub(tx, bktEvents)
		for _, name := range outputs {
			os := st.Outputs[name]
			if q, _ := sub(tx, bktQueue, name); q != nil {
				os.Pending = q.Len()
				if k, _ := q.First(); k != nil && evb != nil {
					var ev alert.Event
					if decodeEvent(evb.Get(k), &ev) == nil {
						t := ev.CreatedAt
						os.Oldest = &t
					}
				}
			}
			if d, _ := sub(tx, bktDead, name); d != nil {
				_ = d.ForEach(func(_, v []byte) error {
					var dl DeadLetter
					if json.Unmarshal(v, &dl) == nil {
						os.DeadLetters = append(os.DeadLetters, dl)
					}
					return nil
				})
			}
			st.Outputs[name] = os
		}
		return nil
	})
	return st, err
}

// counts returns pending and dead-letter counts per output, cheaply, for
// the metrics.
func (o *outbox) counts(outputs []string) (pending, dead map[string]int, err error) {
	pending, dead = map[string]int{}, map[string]int{}
	err = o.st.View(func(tx *state.Tx) error {
		for _, name := range outputs {
			if q, _ := sub(tx, bktQueue, name); q != nil {
				pending[name] = q.Len()
			}
			if d, _ := sub(tx, bktDead, name); d != nil {
				dead[name] = d.Len()
			}
		}
		return nil
	})
	return pending, dead, err
}
