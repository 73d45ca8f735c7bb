package notify

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// The outbox lives in the state file under one top-level bucket:
//
//	notify/events        seq → event JSON (one copy, whatever the outputs)
//	notify/meta          seq, count, bytes, dropped counters
//	notify/sev/<rank>    seq → ∅, index to find the oldest of a severity
//	notify/q/<output>    seq → ∅, what the output still has to accept
//	notify/dead/<output> seq → deadLetter JSON, what the output refused
//	notify/outputs       the names of the outputs the outbox has served
//
// seq is a big-endian counter, so every bucket iterates in the order the
// events were produced. An event is deleted once no queue or dead-letter
// bucket refers to it. Every change is one bbolt transaction (one fsync),
// so a SIGKILL leaves either the state before or the state after.
const (
	bktRoot   = "notify"
	bktEvents = "events"
	bktMeta   = "meta"
	bktSev    = "sev"
	bktQueue  = "q"
	bktDead   = "dead"
	// keyOutputs (in meta) lists the outputs the outbox has served, so
	// that one that appears is told what fires.
	keyOutputs = "outputs"
)

// Stored is an event read back from the outbox with its sequence number.
type Stored struct {
	Seq   uint64
	Event alert.Event
}

// envelope is an event as the outbox keeps it: the event's JSON (the
// webhook schema) plus what only delivery needs. Events written by versions
// without the envelope decode into it unchanged.
type envelope struct {
	alert.Event
	HoldUntil time.Time `json:"hold_until,omitzero"`
}

func encodeEvent(e *alert.Event) ([]byte, error) {
	return json.Marshal(envelope{Event: *e, HoldUntil: e.HoldUntil})
}

func decodeEvent(data []byte, e *alert.Event) error {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return err
	}
	*e = env.Event
	e.HoldUntil = env.HoldUntil
	return nil
}

// outbox is the durable queue. Its methods are safe for concurrent use
// because bbolt serialises write transactions.
type outbox struct {
	st        *state.Store
	maxEvents int
	maxBytes  int64
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func keySeq(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// sub returns a nested bucket of the outbox's root, created in write
// transactions; nil when it does not exist in a read transaction.
func sub(tx *state.Tx, path ...string) (*state.TxBucket, error) {
	return tx.Bucket(append([]string{bktRoot}, path...)...)
}

func getInt(meta *state.TxBucket, key string) int64 {
	v := meta.Get([]byte(key))
	if v == nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(v), 10, 64)
	return n
}

func putInt(meta *state.TxBucket, key string, n int64) error {
	return meta.Put([]byte(key), []byte(strconv.FormatInt(n, 10)))
}

// add writes events for every output in outputs, in one transaction, and
// returns what the bounds made it drop.
func (o *outbox) add(outputs []string, events []alert.Event) (dropped []Stored, err error) {
	err = o.st.Update(func(tx *state.Tx) error {
		dropped, err = o.appendTx(tx, outputs, events)
		return err
	})
	return dropped, err
}

// replace drops the queued events of ev's kind, then writes ev for every
// output in outputs, in one transaction (heartbeats: only the newest one
// says anything).
func (o *outbox) replace(outputs []string, ev alert.Event) (dropped []Stored, err error) {
	err = o.st.Update(func(tx *state.Tx) error {
		if err := o.supersedeTx(tx, ev.Kind); err != nil {
			return err
		}
		dropped, err = o.appendTx(tx, outputs, []alert.Event{ev})
		return err
	})
	return dropped, err
}

// appendTx writes events for every output in outputs inside tx, then drops
// the oldest lowest-severity events while a bound is exceeded. It returns
// what it dropped.
func (o *outbox) appendTx(tx *state.Tx, outputs []string, events []alert.Event) ([]Stored, error) {
	if len(events) == 0 {
		return nil, nil
	}
	c, err := loadCounters(tx)
	if err != nil {
		return nil, err
	}
	for i := range events {
		if err := o.putEvent(tx, c, outputs, &events[i]); err != nil {
			return nil, err
		}
	}
	dropped, ok, err := o.evict(tx, c)
	if !ok {
		return dropped, err
	}
	c.dropped += int64(len(dropped))
	return dropped, c.save()
}

// counters are the outbox's totals in notify/meta, read at the start of a
// write and saved at its end.
type counters struct {
	meta                      *state.TxBucket
	seq, count, size, dropped int64
}

func loadCounters(tx *state.Tx) (*counters, error) {
	meta, err := sub(tx, bktMeta)
	if err != nil {
		return nil, err
	}
	return &counters{meta: meta, seq: getInt(meta, "seq"), count: getInt(meta, "count"),
		size: getInt(meta, "bytes"), dropped: getInt(meta, "dropped")}, nil
}

func (c *counters) save() error {
	for _, kv := range []struct {
		key string
		n   int64
	}{{"seq", c.seq}, {"count", c.count}, {"dropped", c.dropped}, {"bytes", c.size}} {
		if err := putInt(c.meta, kv.key, kv.n); err != nil {
			return err
		}
	}
	return nil
}

// putEvent writes e under the next seq, indexes it by severity and queues
// it for every output in outputs.
func (o *outbox) putEvent(tx *state.Tx, c *counters, outputs []string, e *alert.Event) error {
	data, err := encodeEvent(e)
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", e.ID, err)
	}
	evb, err := sub(tx, bktEvents)
	if err != nil {
		return err
	}
	c.seq++
	k := seqKey(uint64(c.seq))
	if err := evb.Put(k, data); err != nil {
		return err
	}
	c.count++
	c.size += int64(len(data))
	sev, err := sub(tx, bktSev, strconv.Itoa(e.Rank()))
	if err != nil {
		return err
	}
	if err := sev.Put(k, nil); err != nil {
		return err
	}
	for _, out := range outputs {
		q, err := sub(tx, bktQueue, out)
		if err != nil {
			return err
		}
		if err := q.Put(k, nil); err != nil {
			return err
		}
	}
	if len(outputs) == 0 {
		// No output wants it: nothing to keep. It was still produced
		// (and counted in seq), which keeps ids and order honest.
		return o.deleteEvent(tx, k, &c.count, &c.size)
	}
	return nil
}

// evict drops victims while a bound is exceeded and returns them. ok is
// false when it stopped on an error, and the transaction is then rolled
// back.
func (o *outbox) evict(tx *state.Tx, c *counters) (dropped []Stored, ok bool, err error) {
	evb, err := sub(tx, bktEvents)
	if err != nil {
		return nil, false, err
	}
	for c.count > int64(o.maxEvents) || c.size > o.maxBytes {
		k, err := o.victim(tx)
		if err != nil {
			return dropped, false, err
		}
		if k == nil {
			// Over a bound with no event left to drop: the saved totals
			// disagree with the buckets. Count again, and keep the
			// counters (seq above all: a sequence number used twice would
			// overwrite a queued event).
			c.count, c.size = 0, 0
			err := evb.ForEach(func(_, v []byte) error {
				c.count++
				c.size += int64(len(v))
				return nil
			})
			return dropped, err == nil, err
		}
		var ev alert.Event
		_ = decodeEvent(evb.Get(k), &ev)
		dropped = append(dropped, Stored{Seq: keySeq(k), Event: ev})
		if err := o.deleteEvent(tx, k, &c.count, &c.size); err != nil {
			return dropped, false, err
		}
	}
	return dropped, true, nil
}

// victim is the oldest event of the lowest severity: heartbeats first, then
// P4, P3, P2, and a P1 only when nothing else is left.
func (o *outbox) victim(tx *state.Tx) ([]byte, error) {
	for rank := 5; rank >= 1; rank-- {
		sev, err := sub(tx, bktSev, strconv.Itoa(rank))
		if err != nil {
			return nil, err
		}
		if k, _ := sev.First(); k != nil {
			return append([]byte(nil), k...), nil
		}
	}
	return nil, nil
}

// deleteEvent removes the event at k from every bucket.
func (o *outbox) deleteEvent(tx *state.Tx, k []byte, count, size *int64) error {
	evb, err := sub(tx, bktEvents)
	if err != nil {
		return err
	}
	if v := evb.Get(k); v != nil {
		var ev alert.Event
		if err := decodeEvent(v, &ev); err == nil {
			if sev, err := sub(tx, bktSev, strconv.Itoa(ev.Rank())); err == nil {
				_ = sev.Delete(k)
			}
		}
		*count--
		*size -= int64(len(v))
		if err := evb.Delete(k); err != nil {
			return err
		}
	}
	for _, parent := range []string{bktQueue, bktDead} {
		pb, err := sub(tx, parent)
		if err != nil {
			return err
		}
		if err := pb.ForEachSub(func(name []byte) error { return pb.Sub(string(name)).Delete(k) }); err != nil {
			return err
		}
	}
	return nil
}

// referenced reports whether a queue or dead-letter bucket still holds k.
func referenced(tx *state.Tx, k []byte) bool {
	for _, parent := range []string{bktQueue, bktDead} {
		pb, _ := sub(tx, parent)
		if pb == nil {
			continue
		}
		found := false
		_ = pb.ForEachSub(func(name []byte) error {
			if pb.Sub(string(name)).Get(k) != nil {
				found = true
			}
			return nil
		})
		if found {
			return true
		}
	}
	return false
}

// release deletes the events at keys that nothing refers to any more.
func (o *outbox) release(tx *state.Tx, keys [][]byte) error {
	return o.deleteEvents(tx, keys, func(k []byte) bool { return referenced(tx, k) })
}

// deleteEvents deletes the events at keys, except those keep (when not
// nil) wants kept, and updates the counters.
func (o *outbox) deleteEvents(tx *state.Tx, keys [][]byte, keep func(k []byte) bool) error {
	c, err := loadCounters(tx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if keep != nil && keep(k) {
			continue
		}
		if err := o.deleteEvent(tx, k, &c.count, &c.size); err != nil {
			return err
		}
	}
	return c.save()
}

// pending returns up to limit events that output has not yet accepted, in
// order.
func (o *outbox) pending(output string, limit int) ([]Stored, error) {
	var out []Stored
	err := o.st.View(func(tx *state.Tx) error {
		q, err := sub(tx, bktQueue, output)
		if q == nil || err != nil {
			return err
		}
		evb, _ := sub(tx, bktEvents)
		var err2 error
		q.Scan(func(k, _ []byte) bool {
			v := evb.Get(k)
			if v == nil {
				return true // dropped between transactions; ack will clean up
			}
			var ev alert.Event
			if err2 = decodeEvent(v, &ev); err2 != nil {
				err2 = fmt.Errorf("outbox event %d is corrupt: %w", keySeq(k), err2)
				return false
			}
			out = append(out, Stored{Seq: keySeq(k), Event: ev})
			return len(out) < limit
		})
		return err2
	})
	return out, err
}

// ack removes seqs from output's queue: the output accepted them.
func (o *outbox) ack(output string, seqs []uint64) error {
	return o.st.Update(func(tx *state.Tx) error {
		q, err := sub(tx, bktQueue, output)
		if err != nil {
			return err
		}
		keys := make([][]byte, len(seqs))
		for i, s := range seqs {
			keys[i] = seqKey(s)
			if err := q.Delete(keys[i]); err != nil {
				return err
			}
		}
		return o.release(tx, keys)
	})
}

// supersede drops the queued events of kind for every output (used for
// heartbeats: only the newest one matters).
func (o *outbox) supersedeTx(tx *state.Tx, kind alert.Kind) error {
	sev, err := sub(tx, bktSev, "5")
	if err != nil {
		return err
	}
	evb, err := sub(tx, bktEvents)
	if err != nil {
		return err
	}
	var keys [][]byte
	_ = sev.ForEach(func(k, _ []byte) error {
		var ev alert.Event
		if decodeEvent(evb.Get(k), &ev) == nil && ev.Kind == kind {
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	})
	if len(keys) == 0 {
		return nil
	}
	return o.deleteEvents(tx, keys, nil)
}
