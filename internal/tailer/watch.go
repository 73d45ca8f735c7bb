package tailer

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchRetry is how often folders that could not be watched (not there
// yet) are tried again.
const watchRetry = 5 * time.Second

// Watch reports, on the returned channel, changes in the folders of the
// globs (inotify through fsnotify), so that the caller can poll at once
// instead of at the next PollInterval. It is only a wake-up: polling stays
// the source of truth, and where inotify is unavailable (network
// filesystems, exhausted watches) nothing arrives and polling alone works.
// The channel holds at most one pending wake-up; the watcher stops when ctx
// is cancelled.
func (t *Tailer) Watch(ctx context.Context) <-chan struct{} {
	wake := make(chan struct{}, 1)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.logger.Debug("inotify unavailable; relying on polling", "err", err)
		return wake
	}
	dirs := map[string]bool{} // folder → watched
	for _, g := range t.cfg.Globs {
		if d := filepath.Dir(g); !hasMeta(d) {
			dirs[d] = false
		}
	}
	add := func() {
		for d, ok := range dirs {
			if ok {
				continue
			}
			if _, err := os.Stat(d); err != nil {
				continue
			}
			if err := w.Add(d); err == nil {
				dirs[d] = true
			} else {
				t.logger.Debug("Cannot watch log folder; relying on polling", "dir", d, "err", err)
			}
		}
	}
	add()
	go func() {
		defer w.Close()
		retry := time.NewTicker(watchRetry)
		defer retry.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-retry.C:
				add()
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if !t.matches(ev.Name) {
					continue
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return wake
}

// matches reports whether name is matched by one of the globs.
func (t *Tailer) matches(name string) bool {
	for _, g := range t.cfg.Globs {
		if g == name {
			return true
		}
		if ok, _ := filepath.Match(g, name); ok {
			return true
		}
	}
	return false
}
