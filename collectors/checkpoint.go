package collectors

import (
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// checkpoint keeps one log source's read state (a file source's
// positions, a journal source's cursor) in a bucket of the state file, so
// that a restart resumes where the last run stopped. It is the one place
// that reads and writes that state: LogFile and Journal differ only in
// what T is, when they save, and what counts as a change.
type checkpoint[T any] struct {
	bucket *state.Bucket // nil: no state file, nothing is kept
	key    string
	logger *slog.Logger
	// same reports whether state b needs no write once a is saved; an
	// unchanged state is not written again, so an idle source costs no
	// write (and no fsync) per second.
	same func(a, b T) bool
	// unreadable and saveFailed are the operator's messages when the
	// saved state cannot be read or written.
	unreadable, saveFailed string

	saved    T
	hasSaved bool
}

// newCheckpoint returns the checkpoint of source key in bucket; without a
// state file (opts.State nil) it keeps nothing.
func newCheckpoint[T any](opts Options, bucket, key string, same func(a, b T) bool, unreadable, saveFailed string) *checkpoint[T] {
	c := &checkpoint[T]{key: key, logger: opts.Logger, same: same, unreadable: unreadable, saveFailed: saveFailed}
	if opts.State != nil {
		c.bucket = opts.State.Bucket(bucket)
	}
	return c
}

// load reads the saved state into st and reports whether there was one.
// An unreadable state is logged and counts as none: the source starts as
// on a first run.
func (c *checkpoint[T]) load(st *T) bool {
	if c.bucket == nil {
		return false
	}
	ok, err := c.bucket.GetJSON(c.key, st)
	if err != nil {
		c.logger.Error(c.unreadable, "err", err)
		var zero T
		*st = zero
		return false
	}
	if ok {
		c.saved, c.hasSaved = *st, true
	}
	return ok
}

// dirty reports whether st differs from what was last saved.
func (c *checkpoint[T]) dirty(st T) bool { return !c.hasSaved || !c.same(c.saved, st) }

// save writes st unless it is unchanged (force writes it anyway); a
// failed write is logged and retried at the next save.
func (c *checkpoint[T]) save(st T, force bool) {
	if c.bucket == nil || (!force && !c.dirty(st)) {
		return
	}
	if err := c.bucket.PutJSON(c.key, st); err != nil {
		c.logger.Error(c.saveFailed, "err", err)
		return
	}
	c.saved, c.hasSaved = st, true
}

// restartBackoff is the capped exponential backoff of a supervised
// connection or process (journalctl, the systemd D-Bus): min, 2×min, …,
// max, without jitter. It is cenkalti/backoff's, as notify's retries use.
func restartBackoff(minWait, maxWait time.Duration) *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     minWait,
		RandomizationFactor: 0,
		Multiplier:          2,
		MaxInterval:         maxWait,
	}
	b.Reset()
	return b
}
