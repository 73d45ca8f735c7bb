// Package state is the agent's one state file: a bbolt database under
// agent.state_dir holding what must survive a restart (log read positions,
// journal cursors, alert states, the delivery outbox). Each user keeps its
// data in its own bucket, so that the parts never see each other's keys.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tokpulse/tokpulse-agent/internal/safefile"
)

// FileName is the state file's name inside agent.state_dir.
const FileName = "state.db"

// Store is an open state file. It is safe for concurrent use.
type Store struct {
	db        *bolt.DB
	recovered *Recovery
}

// Recovery says that the state file was found damaged at Open and moved
// aside, and that the agent starts with empty state.
type Recovery struct {
	// MovedTo is where the damaged file now is.
	MovedTo string
	// Reason says what was wrong with it.
	Reason string
}

// Lost says, for the operator, what an empty state file costs: the same
// list as docs/install.md ("The state file").
const Lost = "log positions and journal cursors (sources start as on a first run, per start_at), alert states (active alerts are detected again and announced as new incidents), and undelivered events of the outbox"

// Open opens (creating if needed) the state file in dir. A file that is
// damaged (bbolt panics on some damage, which would put the agent in a
// restart loop of stack traces) or empty (a crash while it was created) is
// moved aside as state.db.corrupt-<UTC time>, and a new empty one is
// opened in its place: Recovered then says so. Open never panics.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating state directory: %w (set agent.state_dir to a directory the agent's user can write)", err)
	}
	path := filepath.Join(dir, FileName)
	reason := ""
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("state file %s: %w (set agent.state_dir to a directory the agent's user can read and write)", path, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("state file: %w; remove it, the agent creates the file itself", safefile.CheckRegular(path, fi))
	case fi.Size() == 0:
		reason = "the file is empty (0 bytes)"
	}
	if reason == "" {
		db, err := open(path)
		if err == nil {
			return &Store{db: db}, nil
		}
		var d *damage
		if !errors.As(err, &d) {
			return nil, err
		}
		reason = d.reason
	}
	moved := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	for i := 2; ; i++ { // never over an earlier damaged file
		if _, err := os.Lstat(moved); errors.Is(err, fs.ErrNotExist) {
			break
		}
		moved = fmt.Sprintf("%s.corrupt-%s-%d", path, time.Now().UTC().Format("20060102T150405Z"), i)
	}
	if err := os.Rename(path, moved); err != nil {
		return nil, fmt.Errorf("state file %s is damaged (%s) and cannot be moved aside: %w; move it away by hand to start with empty state", path, reason, err)
	}
	db, err := open(path)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, recovered: &Recovery{MovedTo: moved, Reason: reason}}, nil
}

// Recovered returns what Open did with a damaged state file, or nil when
// the file was sound (or new).
func (s *Store) Recovered() *Recovery { return s.recovered }

// damage is an error that says the file is damaged, not locked or
// unreadable: only then is it moved aside.
type damage struct{ reason string }

func (d *damage) Error() string { return d.reason }

// open opens the bbolt file at path and runs bbolt's consistency check over
// it. A panic of bbolt (it asserts on pages it does not expect) and an
// error of the check are reported as *damage.
func open(path string) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, &damage{fmt.Sprintf("bbolt failed on it: %v", r)}
		}
	}()
	// A second agent on the same file would block for ever on bbolt's
	// lock; fail fast and say why instead.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("state file %s is locked: is another tokpulse-agent running with the same agent.state_dir?", path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, &damage{err.Error()}
	case err != nil:
		return nil, fmt.Errorf("opening state file %s: %w (move it aside to start with empty state)", path, err)
	}
	var problems []string
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			if len(problems) < 3 {
				problems = append(problems, e.Error())
			}
		}
		return nil
	})
	if err == nil && len(problems) > 0 {
		err = &damage{"bbolt's consistency check: " + strings.Join(problems, "; ")}
	}
	if err != nil {
		_ = db.Close()
		var d *damage
		if errors.As(err, &d) {
			return nil, err
		}
		return nil, &damage{err.Error()}
	}
	return db, nil
}

// Close flushes and closes the file.
func (s *Store) Close() error { return s.db.Close() }

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
	return b.db.Update(func(tx *bolt.Tx) error { return (&Tx{tx: tx}).Apply(string(b.name), put, del) })
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
