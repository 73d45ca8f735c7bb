package collectors

import (
	"sync"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

// evidenceRing keeps the last len(slots) lines; slots reuse their buffers
// so that a busy error pattern does not allocate per line. Lines are kept
// raw and redacted when read, which is rare, instead of per match.
type evidenceRing struct {
	mu    sync.Mutex
	slots []evidenceSlot
	next  int
	n     int
}

type evidenceSlot struct {
	t   time.Time
	buf []byte
}

func (r *evidenceRing) add(t time.Time, line []byte) {
	if len(r.slots) == 0 {
		return
	}
	if len(line) > evidenceLineBytes {
		line = line[:evidenceLineBytes]
	}
	r.mu.Lock()
	s := &r.slots[r.next]
	s.t = t
	s.buf = append(s.buf[:0], line...)
	r.next = (r.next + 1) % len(r.slots)
	r.n = min(r.n+1, len(r.slots))
	r.mu.Unlock()
}

// entries returns the kept lines, oldest first.
func (r *evidenceRing) entries() []evidence.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]evidence.Entry, 0, r.n)
	for i := 0; i < r.n; i++ {
		s := r.slots[(r.next-r.n+i+len(r.slots))%len(r.slots)]
		out = append(out, evidence.Entry{Time: s.t, Text: string(s.buf)})
	}
	return out
}
