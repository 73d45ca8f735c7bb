// Package state is the agent's one state file: a bbolt database under
// agent.state_dir holding what must survive a restart (log read positions,
// journal cursors, alert states, the delivery outbox). Each user keeps its
// data in its own bucket, so that the parts never see each other's keys.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the state file's name inside agent.state_dir.
const FileName = "state.db"

// Store is an open state file. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the state file in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating state directory: %w (set agent.state_dir to a directory the agent's user can write)", err)
	}
	path := filepath.Join(dir, FileName)
	// A second agent on the same file would block for ever on bbolt's
	// lock; fail fast and say why instead.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("state file %s is locked: is another tokpulse-agent running with the same agent.state_dir?", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening state file %s: %w (move it aside to start with empty state)", path, err)
	}
	return &Store{db: db}, nil
}

// Close flushes and closes the file.
func (s *Store) Close() error { return s.db.Close() }

// DB gives direct access for users that need transactions over several keys
// (the outbox). Keep to your own bucket.
func (s *Store) DB() *bolt.DB { return s.db }

// Bucket returns a handle on the named bucket; it is created on first write.
func (s *Store) Bucket(name string) *Bucket { return &Bucket{db: s.db, name: []byte(name)} }

// Bucket is one namespace in the state file.
type Bucket struct {
	db   *bolt.DB
	name []byte
}

// Get returns a copy of the value at key, or nil when absent.
func (b *Bucket) Get(key string) ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(b.name)
		if bk == nil {
			return nil
		}
		if v := bk.Get([]byte(key)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out, err
}

// Put stores value at key.
func (b *Bucket) Put(key string, value []byte) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(b.name)
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), value)
	})
}

// PutMany stores several keys in one transaction (one fsync).
func (b *Bucket) PutMany(kv map[string][]byte) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(b.name)
		if err != nil {
			return err
		}
		for k, v := range kv {
			if err := bk.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Apply deletes the keys in del, then stores put, in one transaction (one
// fsync): a crash leaves either all of it or none.
func (b *Bucket) Apply(put map[string][]byte, del []string) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(b.name)
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
	})
}

// Delete removes key; a missing key is not an error.
func (b *Bucket) Delete(key string) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(b.name)
		if bk == nil {
			return nil
		}
		return bk.Delete([]byte(key))
	})
}

// ForEach calls fn for every key in order. fn must not keep k or v.
func (b *Bucket) ForEach(fn func(k, v []byte) error) error {
	return b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(b.name)
		if bk == nil {
			return nil
		}
		return bk.ForEach(fn)
	})
}

// GetJSON decodes the JSON value at key into v and reports whether it existed.
func (b *Bucket) GetJSON(key string, v any) (bool, error) {
	data, err := b.Get(key)
	if err != nil || data == nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("state %s/%s is corrupt: %w", b.name, key, err)
	}
	return true, nil
}

// PutJSON stores v as JSON at key.
func (b *Bucket) PutJSON(key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}
