package state

import (
	"errors"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Update runs fn in one write transaction (one fsync): a crash or an error
// from fn leaves either everything fn wrote or none of it. Users that must
// change several keys or buckets together (the outbox, the incidents with
// their action budgets) take this instead of a Bucket handle.
func (s *Store) Update(fn func(tx *Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// View runs fn in a read transaction: a consistent snapshot of the file.
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Tx is one transaction over the state file; it is valid only inside the
// function given to Update or View.
type Tx struct{ tx *bolt.Tx }

// Writable reports whether tx is a write transaction (Update).
func (t *Tx) Writable() bool { return t.tx.Writable() }

// Bucket returns the bucket at path: a top-level name, then the names of
// nested buckets. In a write transaction missing buckets are created; in a
// read transaction it returns nil when one is missing, and callers treat
// that as empty.
func (t *Tx) Bucket(path ...string) (*TxBucket, error) {
	if len(path) == 0 {
		return nil, errors.New("state: a bucket path needs at least one name")
	}
	var b *bolt.Bucket
	for i, name := range path {
		var err error
		switch {
		case t.tx.Writable() && i == 0:
			b, err = t.tx.CreateBucketIfNotExists([]byte(name))
		case t.tx.Writable():
			b, err = b.CreateBucketIfNotExists([]byte(name))
		case i == 0:
			b = t.tx.Bucket([]byte(name))
		default:
			b = b.Bucket([]byte(name))
		}
		if err != nil {
			return nil, err
		}
		if b == nil {
			return nil, nil
		}
	}
	return &TxBucket{b: b}, nil
}

// Lookup returns the bucket at path, or nil when it does not exist; unlike
// Bucket it never creates one, even in a write transaction.
func (t *Tx) Lookup(path ...string) *TxBucket {
	if len(path) == 0 {
		return nil
	}
	b := t.tx.Bucket([]byte(path[0]))
	for _, name := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket([]byte(name))
	}
	if b == nil {
		return nil
	}
	return &TxBucket{b: b}
}

// Apply deletes the keys in del from the top-level bucket name, then
// stores put there; nothing to do leaves the file untouched.
func (t *Tx) Apply(name string, put map[string][]byte, del []string) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	bk, err := t.Bucket(name)
	if err != nil {
		return err
	}
	for _, k := range del {
		if err := bk.Delete([]byte(k)); err != nil {
			return err
		}
	}
	for k, v := range put {
		if err := bk.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

// DeleteBucket removes the top-level bucket name and all it holds; a
// missing bucket is not an error.
func (t *Tx) DeleteBucket(name string) error { return gone(t.tx.DeleteBucket([]byte(name))) }

// gone makes deleting a missing bucket a success: what the caller wants
// is its absence.
func gone(err error) error {
	if errors.Is(err, bolterrors.ErrBucketNotFound) {
		return nil
	}
	return err
}

// TxBucket is one bucket inside a transaction. Keys and values it returns
// are valid only until the transaction ends: copy what you keep.
type TxBucket struct{ b *bolt.Bucket }

// Get returns the value at key, or nil when absent.
func (b *TxBucket) Get(key []byte) []byte { return b.b.Get(key) }

// Put stores value at key (write transactions only).
func (b *TxBucket) Put(key, value []byte) error { return b.b.Put(key, value) }

// Delete removes key; a missing key is not an error.
func (b *TxBucket) Delete(key []byte) error { return b.b.Delete(key) }

// ForEach calls fn for every key in order; v is nil for a nested bucket.
// An error from fn stops the walk and is returned.
func (b *TxBucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }

// First returns the first key and value in order, or nil, nil when empty.
func (b *TxBucket) First() (k, v []byte) { return b.b.Cursor().First() }

// Scan calls fn for the keys in order until fn returns false.
func (b *TxBucket) Scan(fn func(k, v []byte) bool) {
	c := b.b.Cursor()
	for k, v := c.First(); k != nil && fn(k, v); k, v = c.Next() {
	}
}

// Len counts the keys.
func (b *TxBucket) Len() int { return b.b.Stats().KeyN }

// Sub returns the nested bucket name, or nil when it does not exist.
func (b *TxBucket) Sub(name string) *TxBucket {
	nb := b.b.Bucket([]byte(name))
	if nb == nil {
		return nil
	}
	return &TxBucket{b: nb}
}

// DeleteSub removes the nested bucket name and all it holds; a missing
// bucket is not an error.
func (b *TxBucket) DeleteSub(name string) error { return gone(b.b.DeleteBucket([]byte(name))) }

// ForEachSub calls fn with the name of every nested bucket, in order.
func (b *TxBucket) ForEachSub(fn func(name []byte) error) error { return b.b.ForEachBucket(fn) }
