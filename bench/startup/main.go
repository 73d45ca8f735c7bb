// Command startup measures how long tokpulse-agent takes from exec to its
// first good /metrics answer, and to its systemd READY=1, over several
// runs. It plays systemd's part: a NOTIFY_SOCKET of its own and a fresh
// STATE_DIRECTORY per run (a first start; -keep-state measures restarts).
//
//	go run ./bench/startup -bin bin/tokpulse-agent -config agent.yaml -runs 21
//	go run ./bench/startup -bin old-agent,bin/tokpulse-agent ...   # A/B, runs interleaved
//
// /metrics is polled over one kept-alive connection every 0.5 ms, so the
// figure includes at most that much polling slack; the process is started
// with os/exec (fork and exec are inside the figure, as they are for
// systemd).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/tokpulse-agent", "agent binary, or several separated by commas (their runs interleaved)")
	config := flag.String("config", "", "configuration file (its web.listen is polled)")
	listen := flag.String("listen", "127.0.0.1:9847", "the web.listen of the configuration")
	runs := flag.Int("runs", 11, "number of starts")
	keep := flag.Bool("keep-state", false, "keep the state directory between runs (restarts rather than first starts)")
	flag.Parse()
	if err := run(strings.Split(*bin, ","), *config, *listen, *runs, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

// result is one start: when the first good /metrics answer came and
// READY=1 arrived (from exec), and the CPU time the process had used by
// READY=1 (all threads, /proc/PID/task/*/schedstat).
type result struct{ metrics, ready, cpu time.Duration }

func run(bins []string, config, listen string, runs int, keep bool) error {
	dir, err := os.MkdirTemp("", "tokpulse-startup")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res := make([][]result, len(bins))
	for i := range runs {
		for b, bin := range bins {
			state := filepath.Join(dir, fmt.Sprintf("state-%d", b))
			if !keep {
				state = filepath.Join(dir, fmt.Sprintf("state-%d-%d", b, i))
			}
			r, err := once(bin, config, listen, state, filepath.Join(dir, fmt.Sprintf("notify-%d-%d.sock", b, i)))
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", bin, i+1, err)
			}
			fmt.Printf("%s run %2d: first /metrics %7.1f ms  READY=1 %7.1f ms  CPU to READY=1 %5.1f ms\n", bin, i+1, ms(r.metrics), ms(r.ready), ms(r.cpu))
			res[b] = append(res[b], r)
		}
	}
	for b, bin := range bins {
		summary(bin, res[b])
	}
	return nil
}

func summary(bin string, res []result) {
	med := func(f func(result) time.Duration) time.Duration {
		var d []time.Duration
		for _, r := range res {
			d = append(d, f(r))
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	maxOf := func(f func(result) time.Duration) time.Duration {
		var m time.Duration
		for _, r := range res {
			m = max(m, f(r))
		}
		return m
	}
	fmt.Printf("%s: median of %d: first /metrics %.1f ms (max %.1f), READY=1 %.1f ms (max %.1f), CPU to READY=1 %.1f ms\n", bin, len(res),
		ms(med(func(r result) time.Duration { return r.metrics })), ms(maxOf(func(r result) time.Duration { return r.metrics })),
		ms(med(func(r result) time.Duration { return r.ready })), ms(maxOf(func(r result) time.Duration { return r.ready })),
		ms(med(func(r result) time.Duration { return r.cpu })))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func once(bin, config, listen, state, sock string) (result, error) {
	var r result
	ns, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return r, err
	}
	defer ns.Close()
	args := []string{"run"}
	if config != "" {
		args = append(args, "--config", config)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "STATE_DIRECTORY="+state)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	ready := make(chan time.Time, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ns.Read(buf)
			if err != nil {
				return
			}
			if slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
				ready <- time.Now()
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := poll(ctx, listen)
	if err != nil {
		return r, err
	}
	r.metrics = got.Sub(start)
	select {
	case t := <-ready:
		r.ready = t.Sub(start)
		r.cpu = cpuTime(cmd.Process.Pid)
	case <-ctx.Done():
		return r, errors.New("no READY=1 within 10 s")
	}
	return r, nil
}

// cpuTime sums the run time of every thread of pid.
func cpuTime(pid int) time.Duration {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var ns int64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var run int64
		if _, err := fmt.Sscan(string(data), &run); err == nil {
			ns += run
		}
	}
	return time.Duration(ns)
}

// poll asks for /metrics until it gets a 200 with a body, and returns when
// that answer was complete.
func poll(ctx context.Context, listen string) (time.Time, error) {
	req := "GET /metrics HTTP/1.1\r\nHost: " + listen + "\r\n\r\n"
	for {
		if ctx.Err() != nil {
			return time.Time{}, errors.New("no /metrics answer within 10 s")
		}
		c, err := net.Dial("tcp", listen)
		if err != nil {
			time.Sleep(500 * time.Microsecond)
			continue
		}
		_, _ = io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		c.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			return time.Now(), nil
		}
		time.Sleep(500 * time.Microsecond)
	}
}
