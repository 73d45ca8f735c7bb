package tailer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type recorder struct {
	lines  []string
	cuts   int
	errs   []error
	rot    []string
	trunc  int
	copied int64
	read   int64
	behind []int64
	// events: "read N" and "handed N after L lines", in order.
	events []string
}

func (r *recorder) handle(_ string, line []byte, cut bool) {
	r.lines = append(r.lines, string(line))
	if cut {
		r.cuts++
	}
}
func (r *recorder) ReadError(_ string, err error) { r.errs = append(r.errs, err) }
func (r *recorder) Rotated(_, how string)         { r.rot = append(r.rot, how) }
func (r *recorder) Truncated(_ string, n int64)   { r.trunc++; r.copied += n }
func (r *recorder) Read(_ string, n int, behind int64) {
	r.read += int64(n)
	r.behind = append(r.behind, behind)
	r.events = append(r.events, fmt.Sprintf("read %d", n))
}
func (r *recorder) Handed(_ string, n int) {
	r.events = append(r.events, fmt.Sprintf("handed %d after %d lines", n, len(r.lines)))
}
func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func newTest(t *testing.T, cfg Config) (*Tailer, *recorder) {
	r := &recorder{}
	return New(cfg, r.handle, r), r
}

func TestTailer(t *testing.T) {
	ctx := context.Background()
	t.Run("start at end reads only new lines, partial lines wait", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "a.log")
		appendFile(t, p, "old 1\nold 2\n")
		tl, r := newTest(t, Config{Globs: []string{p}, StartAtEnd: true})
		tl.Start(nil, false, time.Time{})
		tl.Poll(ctx)
		appendFile(t, p, "new 1\npart")
		tl.Poll(ctx)
		appendFile(t, p, "ial\r\n")
		tl.Poll(ctx)
		if got := strings.Join(r.lines, "|"); got != "new 1|partial" {
			t.Errorf("lines %q", got)
		}
	})
	t.Run("a file created later is read from its start", func(t *testing.T) {
		dir := t.TempDir()
		tl, r := newTest(t, Config{Globs: []string{filepath.Join(dir, "*.log")}, StartAtEnd: true})
		tl.Start(nil, false, time.Time{})
		tl.Poll(ctx)
		if tl.Files() != 0 {
			t.Errorf("files %d with no match", tl.Files())
		}
		appendFile(t, filepath.Join(dir, "b.log"), "first\n")
		tl.Poll(ctx)
		if got := strings.Join(r.lines, "|"); got != "first" {
			t.Errorf("lines %q", got)
		}
	})
	t.Run("a 100 MB line is cut and never held whole", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "long.log")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		chunk := []byte(strings.Repeat("x", 1<<20))
		for i := 0; i < 100; i++ {
			if _, err := f.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		f.WriteString("\nnext\n")
		f.Close()
		tl, r := newTest(t, Config{Globs: []string{p}, MaxLineBytes: 1024})
		tl.Start(nil, false, time.Time{})
		// A poll reads at most readPassBytes of a file and says so.
		polls := 1
		for tl.Poll(ctx); tl.More(); tl.Poll(ctx) {
			polls++
		}
		if want := (100<<20)/readPassBytes + 1; polls != want {
			t.Errorf("%d polls for 100 MB, want %d (one per %d bytes)", polls, want, readPassBytes)
		}
		if len(r.lines) != 2 || len(r.lines[0]) != 1024 || r.lines[1] != "next" || r.cuts != 1 {
			t.Errorf("got %d lines (first %d bytes), %d cut", len(r.lines), len(r.lines[0]), r.cuts)
		}
		for _, fl := range tl.active {
			if cap(fl.buf) > 64<<10 {
				t.Errorf("line buffer grew to %d bytes", cap(fl.buf))
			}
		}
		if ps := tl.Positions(); len(ps) != 1 || ps[0].Offset != 100<<20+6 {
			t.Errorf("positions %+v", ps)
		}
	})
	t.Run("a line of exactly MaxLineBytes is not cut, however it is read", func(t *testing.T) {
		// Written in pieces, as a writer in the middle of a line leaves it:
		// the reader sees the line's bytes without its line end first.
		p := filepath.Join(t.TempDir(), "a.log")
		tl, r := newTest(t, Config{Globs: []string{p}, MaxLineBytes: 10})
		appendFile(t, p, "")
		tl.Start(nil, false, time.Time{})
		for _, piece := range []string{"0123", "456789", "\nabcdefghij", "\n0123456789x", "\n"} {
			appendFile(t, p, piece)
			tl.Poll(ctx)
		}
		want := []string{"0123456789", "abcdefghij", "0123456789"}
		if fmt.Sprint(r.lines) != fmt.Sprint(want) || r.cuts != 1 {
			t.Errorf("lines %q, %d cut; want %q, 1 cut (the 11-byte line only)", r.lines, r.cuts, want)
		}
	})
	t.Run("a directory where a file was expected is an error, retried", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "app.log")
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		tl, r := newTest(t, Config{Globs: []string{p}, RetryInterval: 1})
		tl.Start(nil, false, time.Time{})
		tl.Poll(ctx)
		if len(r.errs) != 1 || !strings.Contains(r.errs[0].Error(), "is a directory") {
			t.Fatalf("errors %v", r.errs)
		}
		os.Remove(p)
		appendFile(t, p, "now a file\n")
		tl.Poll(ctx)
		if len(r.lines) != 1 {
			t.Errorf("lines %q after the directory became a file", r.lines)
		}
	})
	t.Run("a folder that a glob matches is skipped quietly", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "old.log"), 0o755)
		appendFile(t, filepath.Join(dir, "app.log"), "x\n")
		tl, r := newTest(t, Config{Globs: []string{filepath.Join(dir, "*.log")}})
		tl.Start(nil, false, time.Time{})
		tl.Poll(ctx)
		if len(r.errs) != 0 || len(r.lines) != 1 {
			t.Errorf("errors %v, lines %q", r.errs, r.lines)
		}
	})
	t.Run("a file deleted while read is read to its end", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "app.log")
		w, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		w.WriteString("one\n")
		tl, r := newTest(t, Config{Globs: []string{p}})
		tl.Start(nil, false, time.Time{})
		tl.Poll(ctx)
		os.Remove(p)
		w.WriteString("two, written after the delete\n")
		tl.Poll(ctx)
		if got := strings.Join(r.lines, "|"); got != "one|two, written after the delete" {
			t.Errorf("lines %q", got)
		}
		if len(r.rot) != 1 || r.rot[0] != "deleted" {
			t.Errorf("rotations %v", r.rot)
		}
	})
	t.Run("a reused inode is not mistaken for the saved file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "app.log")
		appendFile(t, p, "a different file with other first bytes\n")
		st, _ := os.Stat(p)
		dev, ino := ids(st)
		saved := []Position{{Path: p, Real: p, Dev: dev, Ino: ino, Offset: 10, FPLen: 8, FP: 12345}}
		tl, r := newTest(t, Config{Globs: []string{p}})
		tl.Start(saved, true, time.Time{})
		tl.Poll(ctx)
		if len(r.lines) != 1 || r.lines[0] != "a different file with other first bytes" {
			t.Errorf("lines %q", r.lines)
		}
	})
	t.Run("two rotations while stopped: every generation is read", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		appendFile(t, p, "x1\n")
		tl, r := newTest(t, Config{Globs: []string{p}})
		tl.Start(nil, false, time.Time{})
		tl.Poll(ctx)
		tl.Close()
		saved, savedAt := tl.Positions(), time.Now()
		// While stopped: x2 appended, renamed; y written and renamed; z.
		appendFile(t, p, "x2\n")
		os.Rename(p, p+".1")
		appendFile(t, p, "y1\n")
		os.Rename(p, p+".2")
		appendFile(t, p, "z1\n")
		appendFile(t, filepath.Join(dir, "app.log.3.gz"), "compressed\n")
		appendFile(t, filepath.Join(dir, "other.log"), "not ours\n")
		tl2, r2 := newTest(t, Config{Globs: []string{p}})
		tl2.Start(saved, true, savedAt)
		tl2.Poll(ctx)
		if got := strings.Join(append(r.lines, r2.lines...), "|"); got != "x1|x2|y1|z1" {
			t.Errorf("lines %q", got)
		}
	})
	t.Run("a rotated file the glob still matches is not read again", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		appendFile(t, p, "one\n")
		tl, r := newTest(t, Config{Globs: []string{filepath.Join(dir, "*.log")}})
		tl.Start(nil, false, time.Time{})
		tl.Poll(ctx)
		os.Rename(p, filepath.Join(dir, "app.2026-11-27.log"))
		appendFile(t, filepath.Join(dir, "app.2026-11-27.log"), "two\n")
		appendFile(t, p, "three\n")
		tl.Poll(ctx)
		tl.Poll(ctx)
		if got := strings.Join(r.lines, "|"); got != "one|two|three" {
			t.Errorf("lines %q", got)
		}
		if tl.Files() != 2 {
			t.Errorf("files %d, want 2", tl.Files())
		}
	})
	t.Run("a copytruncate copy that the glob matches is not read", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		long := strings.Repeat("a long first line so that the fingerprint is meaningful ", 6)
		appendFile(t, p, long+"\n")
		tl, r := newTest(t, Config{Globs: []string{filepath.Join(dir, "*.log")}})
		tl.Start(nil, false, time.Time{})
		tl.Poll(ctx)
		appendFile(t, p, "only in the copy\n")
		data, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(dir, "app-20261127.log"), data, 0o644)
		os.Truncate(p, 0)
		appendFile(t, p, "after\n")
		tl.Poll(ctx)
		tl.Poll(ctx)
		if got := strings.Join(r.lines, "|"); got != long+"|only in the copy|after" {
			t.Errorf("lines %q", got)
		}
	})
	t.Run("copytruncate is finished from the copy", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "app.log")
		appendFile(t, p, "line 1\n")
		tl, r := newTest(t, Config{Globs: []string{p}})
		tl.Start(nil, false, time.Time{})
		tl.Poll(ctx)
		appendFile(t, p, "line 2, only in the copy\n")
		data, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(dir, "app.log.1"), data, 0o644)
		os.Truncate(p, 0)
		appendFile(t, p, "line 3\n")
		tl.Poll(ctx)
		if got := strings.Join(r.lines, "|"); got != "line 1|line 2, only in the copy|line 3" {
			t.Errorf("lines %q", got)
		}
		if r.trunc != 1 || r.copied != int64(len("line 2, only in the copy\n")) {
			t.Errorf("truncations %d, recovered %d bytes", r.trunc, r.copied)
		}
	})
}

var _ = errors.New

// TestWatchWakes checks that a write to a followed file wakes the caller
// through inotify, and that writes to other files do not.
func TestWatchWakes(t *testing.T) {
	dir := t.TempDir()
	tl, _ := newTest(t, Config{Globs: []string{filepath.Join(dir, "*.log")}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake := tl.Watch(ctx)
	appendFile(t, filepath.Join(dir, "other.txt"), "not followed\n")
	appendFile(t, filepath.Join(dir, "app.log"), "line\n")
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up within 10 s of a write")
	}
	if tl.matches(filepath.Join(dir, "other.txt")) {
		t.Error("other.txt must not match")
	}
}

// TestBehind: each read reports how much of the file was still unread
// after it, as far as the size at the start of the pass tells.
func TestBehind(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	line := strings.Repeat("x", 99) + "\n"
	appendFile(t, p, strings.Repeat(line, 3*readChunk/100+7)) // three chunks and a bit
	tl, r := newTest(t, Config{Globs: []string{p}})
	tl.Start(nil, false, time.Time{})
	tl.Poll(context.Background())
	size := int64(len(line) * (3*readChunk/100 + 7))
	want := []int64{size - readChunk, size - 2*readChunk, size - 3*readChunk, 0}
	if fmt.Sprint(r.behind) != fmt.Sprint(want) {
		t.Errorf("behind %v, want %v", r.behind, want)
	}
	// Each read is followed by Handed once its complete lines are handed
	// over (a reader publishes its counters there).
	var wantEvents []string
	for i, n := range []int{readChunk, readChunk, readChunk, int(size) - 3*readChunk} {
		end := i*readChunk + n
		wantEvents = append(wantEvents, fmt.Sprintf("read %d", n), fmt.Sprintf("handed %d after %d lines", n, end/len(line)))
	}
	if fmt.Sprint(r.events) != fmt.Sprint(wantEvents) {
		t.Errorf("events %q, want %q", r.events, wantEvents)
	}
}

// TestAbsent: a poll that follows nothing while the folder of every glob
// is missing says so (the caller then polls less often); a folder that
// exists, a pattern folder or a followed file means the source is there.
// A folder that appears is watched after the next poll: its first file
// wakes the caller at once.
func TestAbsent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name  string
		globs []string
		want  bool
	}{
		{"folder missing", []string{filepath.Join(missing, "app.log")}, true},
		{"every folder missing", []string{filepath.Join(missing, "app.log"), filepath.Join(dir, "gone", "*.log")}, true},
		{"folder there, no file", []string{filepath.Join(dir, "app.log")}, false},
		{"one folder there", []string{filepath.Join(missing, "app.log"), filepath.Join(dir, "*.log")}, false},
		{"pattern folder", []string{filepath.Join(dir, "*", "app.log")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl, _ := newTest(t, Config{Globs: tc.globs})
			tl.Start(nil, false, time.Time{})
			tl.Poll(ctx)
			if got := tl.Absent(); got != tc.want {
				t.Errorf("Absent() = %t, want %t", got, tc.want)
			}
		})
	}

	path := filepath.Join(missing, "app.log")
	tl, r := newTest(t, Config{Globs: []string{path}, StartAtEnd: true})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := tl.Watch(wctx)
	tl.Start(nil, false, time.Time{})
	tl.Poll(ctx)
	if !tl.Absent() {
		t.Fatal("Absent() = false with the folder missing")
	}
	if err := os.Mkdir(missing, 0o755); err != nil {
		t.Fatal(err)
	}
	tl.Poll(ctx) // finds the folder, asks the watcher to watch it
	if tl.Absent() {
		t.Fatal("Absent() = true with the folder there")
	}
	// The watcher adds the folder asynchronously: write until it wakes us.
	deadline := time.Now().Add(10 * time.Second)
	for woke := false; !woke; {
		appendFile(t, path, "first\n")
		select {
		case <-wake:
			woke = true
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no wake-up within 10 s of writing to a folder that appeared")
			}
		}
	}
	tl.Poll(ctx)
	if len(r.lines) == 0 || r.lines[0] != "first" {
		t.Fatalf("lines %q: a file that appears after the start is read from its beginning", r.lines)
	}
}

// TestSpecialFilesAreRefusedNotOpened: a FIFO, a socket or a device among
// the paths is never opened (os.Open on a FIFO without a writer blocks for
// ever), is reported once per retry interval, and does not stop the
// regular files of the same glob from being read.
func TestSpecialFilesAreRefusedNotOpened(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "p.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.log")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	appendFile(t, filepath.Join(dir, "a.log"), "line\n")
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name  string
		globs []string
		lines string
		errs  []string
	}{
		{"fifo named", []string{fifo}, "", []string{fifo + " is a FIFO (named pipe), not a regular file"}},
		{"device named", []string{"/dev/zero"}, "", []string{"/dev/zero is a character device, not a regular file"}},
		{"glob matching a fifo, a socket and a file", []string{filepath.Join(dir, "*.log")}, "line",
			[]string{fifo + " is a FIFO (named pipe)", sock + " is a socket"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl, r := newTest(t, Config{Globs: tc.globs, Now: func() time.Time { return now }})
			done := make(chan struct{})
			go func() {
				defer close(done)
				tl.Start(nil, false, time.Time{})
				tl.Poll(context.Background())
				tl.Poll(context.Background()) // within the retry interval: not again
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Poll blocked on a special file")
			}
			defer tl.Close()
			if got := strings.Join(r.lines, "|"); got != tc.lines {
				t.Errorf("lines %q, want %q", got, tc.lines)
			}
			if len(r.errs) != len(tc.errs) {
				t.Fatalf("read errors %v, want %d", r.errs, len(tc.errs))
			}
			all := fmt.Sprint(r.errs)
			for _, want := range tc.errs {
				if !strings.Contains(all, want) {
					t.Errorf("read errors %q lack %q", all, want)
				}
			}
			if !strings.Contains(all, "the source skips it") {
				t.Errorf("read errors %q do not say what happens", all)
			}
		})
	}
}

// TestLinesBatch: a Tailer with Config.Lines (and NextLine) hands over
// exactly the lines, cut flags and positions of one without, however the
// file is written: lines of every length around MaxLineBytes, CRLF ends,
// empty lines, written in random pieces with a poll after each.
func TestLinesBatch(t *testing.T) {
	const max = 64
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 18))
			dir := t.TempDir()
			type got struct {
				lines []string
				cuts  int
			}
			var per, batch got
			pa, pb := filepath.Join(dir, "per.log"), filepath.Join(dir, "batch.log")
			appendFile(t, pa, "")
			appendFile(t, pb, "")
			tp := New(Config{Globs: []string{pa}, MaxLineBytes: max}, func(_ string, line []byte, cut bool) {
				per.lines = append(per.lines, string(line))
				if cut {
					per.cuts++
				}
			}, nil)
			one := func(_ string, line []byte, cut bool) {
				batch.lines = append(batch.lines, string(line))
				if cut {
					batch.cuts++
				}
			}
			calls := 0
			tb := New(Config{Globs: []string{pb}, MaxLineBytes: max, Lines: func(p string, lines []byte) {
				calls++
				for len(lines) > 0 {
					var line []byte
					var cut bool
					line, lines, cut = NextLine(lines, max)
					one(p, line, cut)
				}
			}}, one, nil)
			tp.Start(nil, false, time.Time{})
			tb.Start(nil, false, time.Time{})
			var data []byte
			for range 400 {
				n := []int{0, 1, max - 1, max, max + 1, 2 * max, r.IntN(3 * max)}[r.IntN(7)]
				for range n {
					data = append(data, byte('a'+r.IntN(26)))
				}
				data = append(data, []string{"\n", "\r\n", "\n\n"}[r.IntN(3)]...)
			}
			// What both must hand over, from the text itself.
			var want got
			for _, l := range strings.SplitAfter(string(data), "\n") {
				if l = strings.TrimSuffix(l, "\n"); len(l) > max {
					want.lines, want.cuts = append(want.lines, l[:max]), want.cuts+1
				} else if l != "" || len(want.lines) < strings.Count(string(data), "\n") {
					want.lines = append(want.lines, strings.TrimSuffix(l, "\r"))
				}
			}
			for len(data) > 0 {
				k := min(len(data), 1+r.IntN(300))
				appendFile(t, pa, string(data[:k]))
				appendFile(t, pb, string(data[:k]))
				data = data[k:]
				tp.Poll(context.Background())
				tb.Poll(context.Background())
			}
			if fmt.Sprint(per) != fmt.Sprint(want) || fmt.Sprint(batch) != fmt.Sprint(want) {
				t.Fatalf("with Lines: %d lines, %d cut; without: %d lines, %d cut; in the text: %d lines, %d longer than %d",
					len(batch.lines), batch.cuts, len(per.lines), per.cuts, len(want.lines), want.cuts, max)
			}
			if a, b := tp.Positions(), tb.Positions(); len(a) != 1 || len(b) != 1 || a[0].Offset != b[0].Offset {
				t.Fatalf("positions %+v without Lines, %+v with", a, b)
			}
			if calls == 0 {
				t.Fatal("Lines was never called")
			}
		})
	}
}
