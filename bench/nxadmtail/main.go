// Command nxadmtail is the evidence behind replacing nxadm/tail (the
// library first chosen) with internal/tailer: it runs the rotation torture
// writer (20,000 lines/s, a rotation every 5,000 lines by rename,
// copytruncate, delete-and-recreate and symlink switch in turn) against
// nxadm/tail v1.4.11 (Follow+ReOpen, inotify and polling) and against our
// tailer, one after the other in one run, and counts every line lost or
// read twice. It is its own module so that the agent does not depend on
// nxadm/tail.
//
//	cd bench/nxadmtail && go run . -seconds 20
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nxadm/tail"

	"github.com/tokpulse/tokpulse-agent/internal/tailer"
	"github.com/tokpulse/tokpulse-agent/internal/tailer/rotatetest"
)

func main() {
	seconds := flag.Int("seconds", 20, "how long the writer runs")
	rate := flag.Int("rate", 20000, "lines per second")
	every := flag.Int("every", 5000, "lines between rotations")
	methods := flag.String("methods", strings.Join(rotatetest.Methods, ","), "rotation methods, applied in turn")
	flag.Parse()
	rotatetest.Methods = strings.Split(*methods, ",")
	fmt.Printf("writer: %d lines/s for %d s, a rotation every %d lines by %s\n", *rate, *seconds, *every, *methods)
	for _, name := range []string{"nxadm/tail inotify", "nxadm/tail poll", "internal/tailer"} {
		res, err := trial(name, *seconds, *rate, *every)
		if err != nil {
			fmt.Fprintln(os.Stderr, name+":", err)
			os.Exit(1)
		}
		fmt.Println(res)
	}
}

type counter struct {
	mu     sync.Mutex
	counts map[int64]int
	bad    int
}

func (c *counter) line(text []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, ok := rotatetest.ParseSeq(text)
	if !ok || string(text) != rotatetest.Line(seq) {
		c.bad++
		return
	}
	c.counts[seq]++
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.counts)
}

func trial(name string, seconds, rate, every int) (string, error) {
	dir, err := os.MkdirTemp("", "nxadmtail-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.log")
	w := &rotatetest.Writer{Path: path, Rate: rate, Every: every, Duration: time.Duration(seconds) * time.Second}
	c := &counter{counts: map[int64]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.Run(ctx) }()
	for _, err := os.Stat(path); err != nil; _, err = os.Stat(path) {
		time.Sleep(5 * time.Millisecond)
	}

	var stop func()
	switch name {
	case "internal/tailer":
		tl := tailer.New(tailer.Config{Globs: []string{path}, PollInterval: 50 * time.Millisecond, RotateWait: time.Second},
			func(_ string, line []byte, _ bool) { c.line(line) }, nil)
		tctx, tcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			// The agent's loop without its checkpoints and inotify
			// wake-ups: poll every PollInterval until stopped.
			tl.Start(nil, false, time.Time{})
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for tctx.Err() == nil {
				tl.Poll(tctx)
				select {
				case <-tctx.Done():
				case <-tick.C:
				}
			}
			tl.Close()
			close(done)
		}()
		stop = func() { tcancel(); <-done }
	default:
		t, err := tail.TailFile(path, tail.Config{Follow: true, ReOpen: true, Poll: name == "nxadm/tail poll",
			Location: &tail.SeekInfo{Offset: 0, Whence: io.SeekStart}, Logger: tail.DiscardingLogger})
		if err != nil {
			return "", err
		}
		done := make(chan struct{})
		go func() {
			for l := range t.Lines {
				if l.Err == nil {
					c.line([]byte(l.Text))
				}
			}
			close(done)
		}()
		stop = func() { t.Stop(); t.Cleanup(); <-done }
	}
	if err := <-werr; err != nil {
		return "", err
	}
	written := w.Written()
	// Give the reader up to 10 s to catch up; stop as soon as it has.
	deadline := time.Now().Add(10 * time.Second)
	for int64(c.total()) < written && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	lost, twice := int64(0), 0
	for seq := int64(0); seq < written; seq++ {
		switch n := c.counts[seq]; {
		case n == 0:
			lost++
		case n > 1:
			twice += n - 1
		}
	}
	return fmt.Sprintf("%-20s written %d, read %d distinct, lost %d, read twice %d, malformed %d; rotations %v",
		name, written, written-lost, lost, twice, c.bad, w.Rotations()), nil
}
