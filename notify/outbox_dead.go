package notify

import (
	"encoding/json"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// Dead letters: events an output refused for good, kept aside in
// notify/dead/<output> until the operator requeues them.

// DeadLetter is an event an output refused for good (a 4xx other than 408
// and 429); it stays in the outbox, outside the queue, until dropped.
type DeadLetter struct {
	Seq     uint64       `json:"seq"`
	ID      string       `json:"id"`
	Kind    alert.Kind   `json:"kind"`
	Alert   string       `json:"alertname,omitempty"`
	Reason  string       `json:"reason"`
	At      time.Time    `json:"at"`
	Payload *alert.Event `json:"-"`
}

// deadLetter moves seqs from output's queue to its dead-letter bucket.
func (o *outbox) deadLetter(output string, batch []Stored, reason string, now time.Time) error {
	return o.st.Update(func(tx *state.Tx) error {
		q, err := sub(tx, bktQueue, output)
		if err != nil {
			return err
		}
		dead, err := sub(tx, bktDead, output)
		if err != nil {
			return err
		}
		for _, s := range batch {
			k := seqKey(s.Seq)
			if err := q.Delete(k); err != nil {
				return err
			}
			data, _ := json.Marshal(DeadLetter{Seq: s.Seq, ID: s.Event.ID, Kind: s.Event.Kind, Alert: s.Event.AlertName, Reason: reason, At: now.UTC()})
			if err := dead.Put(k, data); err != nil {
				return err
			}
		}
		return nil
	})
}

// requeue moves output's dead letters (all outputs' when output is "")
// back into its queue, in their original order, and returns how many.
func (o *outbox) requeue(output string) (int, error) {
	n := 0
	err := o.st.Update(func(tx *state.Tx) error {
		pb, err := sub(tx, bktDead)
		if err != nil {
			return err
		}
		var names []string
		_ = pb.ForEachSub(func(name []byte) error {
			if output == "" || string(name) == output {
				names = append(names, string(name))
			}
			return nil
		})
		for _, name := range names {
			q, err := sub(tx, bktQueue, name)
			if err != nil {
				return err
			}
			dead := pb.Sub(name)
			var keys [][]byte
			_ = dead.ForEach(func(k, _ []byte) error {
				keys = append(keys, append([]byte(nil), k...))
				return nil
			})
			for _, k := range keys {
				if err := q.Put(k, nil); err != nil {
					return err
				}
				if err := dead.Delete(k); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}
