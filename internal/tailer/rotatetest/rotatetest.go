// Package rotatetest is the writer of the rotation torture test: it writes
// numbered lines at a steady rate and rotates the file by the four methods
// that logrotate and applications use, so that tests of the tailer (in
// process) and of the agent binary can check that every line was counted
// exactly once.
package rotatetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
)

// Methods of rotation, applied in turn.
var Methods = []string{"rename", "copytruncate", "delete", "symlink"}

// Writer writes lines "seq=NNNNNNNNN <padding>" to Path.
type Writer struct {
	// Path is the log file the agent follows.
	Path string
	// Rate is lines per second; Every is the number of lines between
	// rotations.
	Rate, Every int
	// Duration is how long to write.
	Duration time.Duration
	// Hold, while true, replaces delete-and-recreate by rename: a file
	// deleted while no reader holds it open is gone, and its lines are no
	// longer in the rotation set. Set it while the reader is stopped.
	Hold atomic.Bool
	// Pause, while true, defers rotations altogether (writing goes on).
	Pause atomic.Bool
	// Freeze, while true, stops writing; the lines due meanwhile are
	// written in one burst afterwards. It lets a test know exactly what a
	// reader can have read before it kills the reader.
	Freeze atomic.Bool

	written  atomic.Int64
	rotated  [4]atomic.Int64
	f        *os.File
	gen      int
	realPath string
}

// Written returns how many lines were written so far.
func (w *Writer) Written() int64 { return w.written.Load() }

// TotalRotations returns how many rotations were done.
func (w *Writer) TotalRotations() int64 {
	var n int64
	for i := range w.rotated {
		n += w.rotated[i].Load()
	}
	return n
}

// Rotations returns how many rotations of each method were done.
func (w *Writer) Rotations() map[string]int64 {
	out := map[string]int64{}
	for i, m := range Methods {
		out[m] = w.rotated[i].Load()
	}
	return out
}

// Line returns the text of line seq, so that a reader can check it.
func Line(seq int64) string {
	return fmt.Sprintf("seq=%09d %s", seq, "the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnop")
}

// ParseSeq returns the sequence number of a line written by Writer.
func ParseSeq(line []byte) (int64, bool) {
	if len(line) < 13 || string(line[:4]) != "seq=" {
		return 0, false
	}
	n, err := strconv.ParseInt(string(line[4:13]), 10, 64)
	return n, err == nil
}

// Run writes until Duration has passed or ctx is cancelled. Lines are
// written in batches every 5 ms, each batch one write.
func (w *Writer) Run(ctx context.Context) error {
	if err := w.create(w.Path); err != nil {
		return err
	}
	defer func() { w.f.Close() }()
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var seq int64
	method := 0
	sinceRotate := 0
	buf := bufio.NewWriterSize(nil, 1<<20)
	for time.Since(start) < w.Duration {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if w.Freeze.Load() {
			continue
		}
		due := int64(time.Since(start).Seconds() * float64(w.Rate))
		buf.Reset(w.f)
		for seq < due {
			buf.WriteString(Line(seq))
			buf.WriteByte('\n')
			seq++
			sinceRotate++
			if sinceRotate >= w.Every && !w.Pause.Load() {
				if err := buf.Flush(); err != nil {
					return err
				}
				w.written.Store(seq)
				m := method % len(Methods)
				name := Methods[m]
				if w.Hold.Load() && name == "delete" {
					name = "rename"
				}
				if err := w.rotate(name); err != nil {
					return fmt.Errorf("rotation %s: %w", name, err)
				}
				for i, mm := range Methods {
					if mm == name {
						w.rotated[i].Add(1)
					}
				}
				method++
				sinceRotate = 0
				buf.Reset(w.f)
			}
		}
		if err := buf.Flush(); err != nil {
			return err
		}
		w.written.Store(seq)
	}
	return nil
}

func (w *Writer) create(real string) error {
	f, err := os.OpenFile(real, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w.f, w.realPath = f, real
	return nil
}

func (w *Writer) next() string {
	w.gen++
	return fmt.Sprintf("%s.%04d", w.Path, w.gen)
}

func (w *Writer) rotate(method string) error {
	switch method {
	case "rename":
		// logrotate's default (create): rename, then the application
		// reopens its log at the old name.
		if err := os.Rename(w.Path, w.next()); err != nil {
			return err
		}
		w.f.Close()
		return w.create(w.Path)
	case "copytruncate":
		src, err := os.Open(w.realPath)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := os.Create(w.next())
		if err != nil {
			return err
		}
		if _, err := io.Copy(dst, src); err != nil {
			dst.Close()
			return err
		}
		if err := dst.Close(); err != nil {
			return err
		}
		return w.f.Truncate(0)
	case "delete":
		if w.realPath != w.Path {
			os.Remove(w.realPath)
		}
		if err := os.Remove(w.Path); err != nil {
			return err
		}
		w.f.Close()
		return w.create(w.Path)
	case "symlink":
		// Deployments that switch a "current" symlink to a new file.
		target := w.next() + ".live"
		if w.realPath == w.Path {
			// The old file must stay in the rotation set: keep it under
			// a name of its own before the symlink replaces its entry.
			if err := os.Link(w.Path, w.next()); err != nil {
				return err
			}
		}
		w.f.Close()
		if err := w.create(target); err != nil {
			return err
		}
		tmp := w.Path + ".tmp-link"
		os.Remove(tmp)
		if err := os.Symlink(filepath.Base(target), tmp); err != nil {
			return err
		}
		return os.Rename(tmp, w.Path)
	}
	return fmt.Errorf("unknown method %q", method)
}
