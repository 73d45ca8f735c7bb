package notify

import (
	"encoding/json"
	"fmt"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// The outbox's view of the configured outputs: queues of removed outputs
// are dropped, new outputs are told what fires.

// removeOutputs forgets the queues of outputs not in keep, returning how many
// events each had pending.
func (o *outbox) removeOutputs(keep []string) (map[string]int, error) {
	removed := map[string]int{}
	err := o.st.Update(func(tx *state.Tx) error {
		want := map[string]bool{}
		for _, k := range keep {
			want[k] = true
		}
		var keys [][]byte
		for _, parent := range []string{bktQueue, bktDead} {
			pb, err := sub(tx, parent)
			if err != nil {
				return err
			}
			var gone [][]byte
			_ = pb.ForEachSub(func(name []byte) error {
				if !want[string(name)] {
					gone = append(gone, append([]byte(nil), name...))
					_ = pb.Sub(string(name)).ForEach(func(k, _ []byte) error {
						keys = append(keys, append([]byte(nil), k...))
						if parent == bktQueue {
							removed[string(name)]++
						}
						return nil
					})
				}
				return nil
			})
			for _, name := range gone {
				if err := pb.DeleteSub(string(name)); err != nil {
					return err
				}
			}
		}
		return o.release(tx, keys)
	})
	return removed, err
}

// catchUp records names as the outputs the outbox serves and queues events
// (the initial events of what fires now) for those among them it did not
// serve before. A state file written before the list existed counts the
// outputs that have a queue as served. It returns the new outputs.
func (o *outbox) catchUp(names []string, events []alert.Event) (added []string, dropped []Stored, err error) {
	err = o.st.Update(func(tx *state.Tx) error {
		meta, err := sub(tx, bktMeta)
		if err != nil {
			return err
		}
		known := map[string]bool{}
		if v := meta.Get([]byte(keyOutputs)); v != nil {
			var list []string
			if err := json.Unmarshal(v, &list); err != nil {
				return fmt.Errorf("the outbox's list of outputs is corrupt: %w", err)
			}
			for _, n := range list {
				known[n] = true
			}
		} else if q, _ := sub(tx, bktQueue); q != nil {
			_ = q.ForEachSub(func(name []byte) error {
				known[string(name)] = true
				return nil
			})
		}
		added = nil
		for _, n := range names {
			if !known[n] {
				added = append(added, n)
			}
		}
		if len(added) > 0 && len(events) > 0 {
			if dropped, err = o.appendTx(tx, added, events); err != nil {
				return err
			}
		}
		list, err := json.Marshal(names)
		if err != nil {
			return err
		}
		return meta.Put([]byte(keyOutputs), list)
	})
	return added, dropped, err
}
