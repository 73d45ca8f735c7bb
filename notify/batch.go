package notify

import (
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
)

// The batching stage: which queued events leave together, honouring each
// severity's group_wait.

// next picks the next batch: events in queue order, skipping (with every
// later event of the same alert) initial events still inside their
// severity's group_wait (HoldUntil), so that alerts starting together leave
// in one request while a P1 never waits behind a P3's group_wait. wait is
// when to look again. While draining for shutdown, nothing waits.
func (s *sender) next(draining bool) ([]Stored, time.Duration, error) {
	limit := s.out.MaxBatch()
	list, err := s.m.box.pending(s.out.Name(), max(limit*2, 256))
	if err != nil || len(list) == 0 {
		return nil, 0, err
	}
	if s.isolate != 0 && list[0].Seq <= s.isolate {
		limit = 1
	} else {
		s.isolate = 0
	}
	now := s.m.opts.Now()
	blocked := map[string]bool{}
	// open: the group_wait of the oldest new alert of a severity is over,
	// so every new alert of that severity queued since joins it (as
	// Alertmanager's group_wait does).
	open := map[string]bool{}
	var wait time.Duration
	var batch []Stored
	for _, st := range list {
		e := &st.Event
		key := e.Fingerprint
		if key == "" {
			key = e.ID
		}
		if blocked[key] {
			continue
		}
		if e.Kind == alert.KindInitial && !e.HoldUntil.IsZero() && !open[e.Severity] && !draining {
			if d := e.HoldUntil.Sub(now); d > 0 {
				blocked[key] = true
				if wait == 0 || d < wait {
					wait = d
				}
				continue
			}
			open[e.Severity] = true
		}
		batch = append(batch, st)
		if len(batch) >= limit {
			break
		}
	}
	return batch, wait, nil
}
