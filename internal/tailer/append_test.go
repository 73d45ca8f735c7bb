package tailer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// appendLine is line seq of TestConcurrentAppend: its length varies with
// seq, so that line ends fall everywhere in reads and passes, and its text
// follows from seq, so that a line split or glued to another is seen.
func appendLine(seq int) string {
	return fmt.Sprintf("seq=%09d %s", seq, strings.Repeat("x", seq%97))
}

// TestConcurrentAppend appends batches of numbered lines, one write(2) per
// batch as an application's logger does, while a Tailer reads the file the
// way the log collector drives it (a poll, at once again while More, else
// after a short pause), with reads and per-poll passes that end in the
// middle of lines and of writes. Every line must be handed over exactly
// once and intact: a line split at the end of a read, of a pass or of a
// write that was still under way would be counted twice (or malformed).
func TestConcurrentAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads some 20 MB; run without -short")
	}
	for _, tc := range []struct {
		name        string
		chunk, pass int
	}{
		{"real sizes", readChunk, readPassBytes},
		{"4 KiB reads, 3 per pass", 4 << 10, 12 << 10},
		{"odd reads, one per pass", 1000, 1},
		{"tiny reads, a few per pass", 37, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const lines = 200_000
			path := filepath.Join(t.TempDir(), "app.log")
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			counts := make([]uint8, lines)
			var bad []string
			tl := New(Config{Globs: []string{path}, PollInterval: time.Millisecond}, func(_ string, line []byte, cut bool) {
				seq, err := strconv.Atoi(strings.TrimPrefix(strings.Fields(string(line) + " x")[0], "seq="))
				if err != nil || cut || seq < 0 || seq >= lines || string(line) != appendLine(seq) {
					if len(bad) < 10 {
						bad = append(bad, fmt.Sprintf("%q (cut %v)", line, cut))
					}
					return
				}
				counts[seq]++
			}, nil)
			tl.chunkBytes, tl.passBytes = tc.chunk, int64(tc.pass)
			ctx := context.Background()
			tl.Start(nil, false, time.Time{})

			done := make(chan error, 1)
			go func() {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					done <- err
					return
				}
				defer f.Close()
				rng := rand.New(rand.NewPCG(1, 2))
				var buf []byte
				for seq := 0; seq < lines; {
					buf = buf[:0]
					for n := 1 + rng.IntN(2000); n > 0 && seq < lines; n-- {
						buf = append(buf, appendLine(seq)...)
						buf = append(buf, '\n')
						seq++
					}
					if _, err := f.Write(buf); err != nil {
						done <- err
						return
					}
					if rng.IntN(4) == 0 {
						time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
					}
				}
				done <- nil
			}()
			seen := func() int {
				n := 0
				for _, c := range counts {
					if c > 0 {
						n++
					}
				}
				return n
			}
			writing := true
			deadline := time.Now().Add(60 * time.Second)
			for polls := 0; ; polls++ {
				tl.Poll(ctx)
				if writing {
					select {
					case err := <-done:
						if err != nil {
							t.Fatal(err)
						}
						writing = false
					default:
					}
				}
				if !writing && !tl.More() && seen() == lines {
					t.Logf("%d polls", polls)
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("only %d of %d lines read within 60 s", seen(), lines)
					break
				}
				if !tl.More() {
					time.Sleep(100 * time.Microsecond)
				}
			}
			tl.Close()
			var wrong []string
			for seq, c := range counts {
				if c != 1 && len(wrong) < 10 {
					wrong = append(wrong, fmt.Sprintf("%d:x%d", seq, c))
				}
			}
			if len(wrong) > 0 || len(bad) > 0 {
				t.Errorf("lines not handed over exactly once: %v; malformed: %v", wrong, bad)
			}
		})
	}
}

// TestFingerprintAtPassLimit: a file first seen with a few bytes, then
// read at the per-poll limit, must get its full fingerprint at the first
// pass that read past it, not only once a pass reaches the file's end.
// With the few bytes' fingerprint, another log of the folder that starts
// alike (the same timestamp) passes for the copy of the file when it is
// truncated, and its lines are handed over as the file's.
func TestFingerprintAtPassLimit(t *testing.T) {
	dir := t.TempDir()
	app, other := filepath.Join(dir, "app.log"), filepath.Join(dir, "error.log")
	const stamp = "2026-12-01T12:00:00Z "
	if err := os.WriteFile(other, []byte(strings.Repeat(stamp+"ERROR not an app line\n", 10000)), 0o644); err != nil {
		t.Fatal(err)
	}
	appendFile(t, app, stamp) // the logger's first write, seen half done
	tl, r := newTest(t, Config{Globs: []string{app}})
	tl.chunkBytes, tl.passBytes = 4096, 4096
	ctx := context.Background()
	tl.Poll(ctx)
	appendFile(t, app, "INFO first\n"+strings.Repeat(stamp+"INFO app line\n", 5000))
	tl.Poll(ctx)
	if !tl.More() {
		t.Fatal("the pass read the whole file; the test needs one that ends at the limit")
	}
	if p := tl.Positions(); len(p) != 1 || p[0].FPLen != DefaultFingerprintBytes {
		t.Errorf("after a pass that ended at the limit, positions %+v; want a fingerprint of %d bytes", p, DefaultFingerprintBytes)
	}
	// "> app.log": truncated with no copy kept.
	if err := os.Truncate(app, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, app, stamp+"INFO after the truncation\n")
	for i := 0; i < 100; i++ {
		tl.Poll(ctx)
		if !tl.More() {
			break
		}
	}
	tl.Close()
	for _, l := range r.lines {
		if strings.Contains(l, "not an app line") {
			t.Fatalf("a line of %s handed over as one of %s: %q (%d lines in all)", other, app, l, len(r.lines))
		}
	}
	if n := len(r.lines); n == 0 || r.lines[n-1] != stamp+"INFO after the truncation" {
		t.Errorf("last line %q, want the one written after the truncation", r.lines[len(r.lines)-1])
	}
}
