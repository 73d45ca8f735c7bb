package tailer

import (
	"context"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// Watch reports, on the returned channel, changes in the folders of the
// globs (inotify through fsnotify), so that the caller can poll at once
// instead of at the next PollInterval. It is only a wake-up: polling stays
// the source of truth, and where inotify is unavailable (network
// filesystems, exhausted watches) nothing arrives and polling alone works.
// The channel holds at most one pending wake-up; the watcher stops when ctx
// is cancelled. Folders that cannot be watched yet (not there) are tried
// again after each Poll, so that the watcher itself never wakes the
// process on a timer. Watch must be called from the goroutine that calls
// Poll.
func (t *Tailer) Watch(ctx context.Context) <-chan struct{} {
	wake := make(chan struct{}, 1)
	t.rewatch = make(chan struct{}, 1)
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
		missing := false
		for d, ok := range dirs {
			if ok {
				continue
			}
			if _, err := os.Stat(d); err != nil {
				missing = true
				continue
			}
			if err := w.Add(d); err == nil {
				dirs[d] = true
			} else {
				missing = true
				t.logger.Debug("Cannot watch log folder; relying on polling", "dir", d, "err", err)
			}
		}
		t.unwatched.Store(missing)
	}
	add()
	retry := t.rewatch
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case <-retry:
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
