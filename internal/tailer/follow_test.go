package tailer

import (
	"context"
	"time"
)

// follow polls t every PollInterval from the saved positions until ctx is
// cancelled, then closes it: the loop the agent's LogFile runs, without
// its checkpoints and inotify wake-ups, for tests that only need the
// tailer to keep reading.
func follow(ctx context.Context, t *Tailer, saved []Position, resumed bool, savedAt time.Time) {
	t.Start(saved, resumed, savedAt)
	tick := time.NewTicker(t.cfg.PollInterval)
	defer tick.Stop()
	for {
		_ = t.Poll(ctx)
		select {
		case <-ctx.Done():
			t.Close()
			return
		case <-tick.C:
		}
	}
}
