package tailer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/tailer/rotatetest"
)

// TestRotationTorture writes 20,000 lines/s for 20 s, rotating every 5,000
// lines by each of the four methods in turn, and follows the file with a
// Tailer that is stopped cleanly once (a SIGTERM: it resumes from its final
// positions) and abandoned once (a SIGKILL: it resumes from its last
// once-a-second checkpoint). Every line must be counted exactly once, except
// after the kill, where the lines read since the last checkpoint may be
// counted twice and no more.
func TestRotationTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s torture test; run without -short")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	w := &rotatetest.Writer{Path: path, Rate: 20000, Every: 5000, Duration: 20 * time.Second}

	const maxSeq = 500000
	counts := make([]uint8, maxSeq)
	var mu sync.Mutex // guards counts between tailer generations
	bad := 0
	handler := func(_ string, line []byte, cut bool) {
		seq, ok := rotatetest.ParseSeq(line)
		if !ok || cut || seq >= maxSeq || string(line) != rotatetest.Line(seq) {
			bad++
			return
		}
		mu.Lock()
		counts[seq]++
		mu.Unlock()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	newTailer := func() *Tailer {
		return New(Config{Globs: []string{path}, PollInterval: 50 * time.Millisecond, RotateWait: time.Second, Logger: logger}, handler, nil)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.Run(ctx) }()
	waitFor(t, func() bool { _, err := os.Stat(path); return err == nil })

	// run follows until stop is closed; it returns the final positions
	// and the checkpoints it took once a second, with the line counts at
	// each.
	type checkpoint struct {
		pos   []Position
		lines int
		at    time.Time
	}
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range counts {
			n += int(c)
		}
		return n
	}
	// run drives a Tailer as the log collector does: a poll every 50 ms,
	// a checkpoint every second and after every change of files.
	run := func(saved []Position, resumed bool, savedAt time.Time, d time.Duration) (final []Position, last checkpoint) {
		tl := newTailer()
		tl.Start(saved, resumed, savedAt)
		deadline := time.After(d)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		poll := time.NewTicker(50 * time.Millisecond)
		defer poll.Stop()
		save := func() {
			// Positions first: every line before them is counted.
			last.at = time.Now()
			last.pos = tl.Positions()
			last.lines = total()
		}
		for {
			if tl.Poll(ctx) {
				save()
			}
			select {
			case <-tick.C:
				save()
			case <-poll.C:
			case <-deadline:
				tl.Close()
				return tl.Positions(), last
			}
		}
	}

	// Phase 1, then a clean stop (SIGTERM): resume from the final positions.
	final, _ := run(nil, false, time.Time{}, 6*time.Second)
	stoppedAt := time.Now()
	// Phase 2, then a kill (SIGKILL): resume from the last checkpoint.
	_, ck := run(final, true, stoppedAt, 6*time.Second)
	linesAtKill := total()
	dupBound := linesAtKill - ck.lines
	// Phase 3 until the writer is done, then drain.
	doneWriting := make(chan struct{})
	go func() {
		if err := <-werr; err != nil {
			t.Errorf("writer: %v", err)
		}
		close(doneWriting)
	}()
	tl := newTailer()
	rctx, rcancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { follow(rctx, tl, ck.pos, true, ck.at); close(stopped) }()
	<-doneWriting
	written := w.Written()
	distinct := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		n := int64(0)
		for _, c := range counts[:written] {
			if c > 0 {
				n++
			}
		}
		return n
	}
	waitForOK(func() bool { return distinct() == written })
	rcancel()
	<-stopped

	lost, twice, more := 0, 0, 0
	for seq := int64(0); seq < written; seq++ {
		switch c := counts[seq]; {
		case c == 0:
			lost++
		case c == 2:
			twice++
		case c > 2:
			more++
		}
	}
	var ranges []string
	for seq := int64(0); seq < written && len(ranges) < 20; seq++ {
		if counts[seq] != 1 {
			e := seq
			for e+1 < written && counts[e+1] == counts[seq] {
				e++
			}
			ranges = append(ranges, fmt.Sprintf("%d-%d:x%d", seq, e, counts[seq]))
			seq = e
		}
	}
	t.Logf("lines not counted once: %v", ranges)
	t.Logf("written %d lines, rotations %v; lost %d, counted twice %d (bound: %d lines read since the last checkpoint before the kill), more than twice %d, malformed %d",
		written, w.Rotations(), lost, twice, dupBound, more, bad)
	if lost != 0 || more != 0 || bad != 0 {
		t.Errorf("lost %d lines, %d counted more than twice, %d malformed", lost, more, bad)
	}
	if twice > dupBound {
		t.Errorf("%d lines counted twice; the bound is %d (lines read after the last checkpoint before the kill)", twice, dupBound)
	}
	for m, n := range w.Rotations() {
		if n < 3 {
			t.Errorf("only %d rotations by %s; the test must rotate by every method many times", n, m)
		}
	}
}

// waitForOK polls cond for up to 10 s and reports whether it held.
func waitForOK(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
