// Command logwriter appends the lines of a source file to log files at a
// steady rate, round-robin over the source's lines, for a while, and then
// prints how many lines it wrote to each file. bench/busy.sh uses it to
// feed the agents with access-log traffic whose exact size it knows.
//
//	go run ./bench/logwriter -source access.log -rate 300 -duration 10m a.log b.log c.log
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	source := flag.String("source", "", "file whose lines are written, in turn")
	rate := flag.Int("rate", 300, "lines per second per file")
	duration := flag.Duration("duration", time.Minute, "how long to write")
	flag.Parse()
	if err := run(*source, *rate, *duration, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "logwriter:", err)
		os.Exit(1)
	}
}

func run(source string, rate int, duration time.Duration, files []string) error {
	data, err := os.ReadFile(source)
	if err != nil {
		return err
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	if len(lines) == 0 || len(files) == 0 {
		return fmt.Errorf("need a non-empty -source and at least one file")
	}
	type out struct {
		w       *bufio.Writer
		f       *os.File
		written int64
		next    int
	}
	outs := make([]*out, len(files))
	for i, name := range files {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		outs[i] = &out{w: bufio.NewWriterSize(f, 1<<20), f: f, next: i * len(lines) / len(files)}
	}
	// Every 100 ms, each file gets the lines due since the start: a steady
	// rate that catches up after a late tick.
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for now := range tick.C {
		el := min(now.Sub(start), duration)
		due := int64(el.Seconds() * float64(rate))
		for _, o := range outs {
			for ; o.written < due; o.written++ {
				o.w.Write(lines[o.next])
				o.next = (o.next + 1) % len(lines)
			}
			if err := o.w.Flush(); err != nil {
				return err
			}
		}
		if el >= duration {
			break
		}
	}
	for i, o := range outs {
		if err := o.f.Close(); err != nil {
			return err
		}
		fmt.Printf("%s %d\n", files[i], o.written)
	}
	return nil
}
