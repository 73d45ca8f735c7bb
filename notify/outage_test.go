package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// driverEnv makes the test binary a driver process: it stands in for the
// agent by feeding rule results into the incident tracker in front of a
// Manager on a schedule, with the state file on disk.
const driverEnv = "TOKPULSE_NOTIFY_DRIVER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(driverEnv); spec != "" {
		os.Exit(runDriver(spec))
	}
	os.Exit(m.Run())
}

type driverAlert struct {
	Name     string         `json:"name"`
	Severity alert.Severity `json:"severity"`
	// ActiveAt and ResolvedAt are offsets from the spec's T0 in seconds;
	// ResolvedAt > 0 makes the alert resolved.
	ActiveAt   int `json:"active_at"`
	ResolvedAt int `json:"resolved_at"`
}

type driverStep struct {
	At     int           `json:"at"` // seconds after T0
	Alerts []driverAlert `json:"alerts"`
}

type driverSpec struct {
	StateDir string       `json:"state_dir"`
	URL      string       `json:"url"`
	T0       time.Time    `json:"t0"`
	From     int          `json:"from"`
	Steps    []driverStep `json:"steps"`
	// Halt > 0 makes the driver stop after step Halt and wait to be
	// killed, so that the kill comes exactly there.
	Halt int `json:"halt"`
}

func (d driverAlert) alert(t0 time.Time) alert.Alert {
	a := firing(d.Name, d.Severity, t0.Add(time.Duration(d.ActiveAt)*time.Second))
	if d.ResolvedAt > 0 {
		a = resolved(a, t0.Add(time.Duration(d.ResolvedAt)*time.Second))
	}
	return a
}

// runDriver runs the steps from spec.From, printing "step N" after each
// hand-over returned (so the event is durable), then "done", then delivers
// until SIGTERM.
func runDriver(raw string) int {
	var spec driverSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "driver spec:", err)
		return 2
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	st, err := state.Open(spec.StateDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	cfg := testConfig()
	cfg.Retry = RetryConfig{InitialInterval: yamlx.Duration(20 * time.Millisecond), MaxInterval: yamlx.Duration(200 * time.Millisecond)}
	cfg.Webhooks = []WebhookConfig{webhookConfig(spec.URL, "")}
	cfg.Webhooks[0].MaxBatch = 2 // several POSTs, so that order across them counts
	m, err := newFeed(cfg, testPolicies(), Options{Store: st, Host: "web-1", Version: "1.2.3"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(ctx)
	for i := spec.From; i < len(spec.Steps); i++ {
		s := spec.Steps[i]
		var alerts []alert.Alert
		for _, a := range s.Alerts {
			alerts = append(alerts, a.alert(spec.T0))
		}
		if err := m.Alerts(ctx, spec.T0.Add(time.Duration(s.At)*time.Second), alerts); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("step %d\n", i)
		if spec.Halt > 0 && i == spec.Halt {
			select {} // until SIGKILL
		}
	}
	fmt.Println("done")
	<-term
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	m.Stop(sctx)
	return 0
}

// driver is a running driver process.
type driver struct {
	cmd   *exec.Cmd
	lines chan string
}

func startDriver(t *testing.T, spec driverSpec) *driver {
	t.Helper()
	raw, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), driverEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &driver{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
		_, _ = io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
	})
	return d
}

// TestOutageWithKill is the runbook's "data loss" standard applied to our
// own events: the receiver is down for the whole life of two alerts (fire,
// update, resolve), the sending process is SIGKILLed in the middle and
// restarted (repeating its last evaluation, as the agent does after a
// crash);
// when the receiver comes back, every event arrives, in order per alert,
// exactly the expected ids, none twice.
func TestOutageWithKill(t *testing.T) {
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	t0 := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	A := driverAlert{Name: "AppDown", Severity: alert.P1}
	B := driverAlert{Name: "DiskLow", Severity: alert.P3, ActiveAt: 300}
	res := func(a driverAlert, at int) driverAlert { a.ResolvedAt = at; return a }
	spec := driverSpec{StateDir: dir, URL: "http://" + addr + "/hook", T0: t0, Steps: []driverStep{
		{At: 0, Alerts: []driverAlert{A}},
		{At: 300, Alerts: []driverAlert{A, B}},
		{At: 1860, Alerts: []driverAlert{A, B}}, // A's first update (30m)
		{At: 2400, Alerts: []driverAlert{A, res(B, 2400)}},
		{At: 3720, Alerts: []driverAlert{A}}, // A's second update
		{At: 4200, Alerts: []driverAlert{res(A, 4200)}},
	}}
	const killAfter = 2

	spec.Halt = killAfter
	d := startDriver(t, spec)
	testutil.WaitLine(t, d.lines, fmt.Sprintf("step %d", killAfter), 20*time.Second)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := d.cmd.Wait()
	if ws, ok := d.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("driver was not killed by SIGKILL: %v", err)
	}

	spec.From, spec.Halt = killAfter, 0 // the evaluation in flight is repeated
	d = startDriver(t, spec)
	testutil.WaitLine(t, d.lines, "done", 20*time.Second)

	rc := newUnstartedReceiver(t)
	srv := &httpServer{}
	srv.start(listenRetry(t, addr), rc)
	t.Cleanup(srv.close)

	id := func(a driverAlert, k alert.Kind, n int) string {
		at := t0.Add(time.Duration(a.ActiveAt) * time.Second)
		return alert.EventID("web-1", fp(firing(a.Name, a.Severity, at)), at, k, n)
	}
	want := map[string][]string{
		"AppDown": {id(A, alert.KindInitial, 0), id(A, alert.KindUpdate, 1), id(A, alert.KindUpdate, 2), id(A, alert.KindResolved, 0)},
		"DiskLow": {id(B, alert.KindInitial, 0), id(B, alert.KindResolved, 0)},
	}
	testutil.Eventually(t, 20*time.Second, "every event", func() bool { return len(rc.events(nil)) >= 6 })
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("driver did not stop cleanly: %v", err)
	}
	got := map[string][]string{}
	seen := map[string]int{}
	for _, e := range rc.events(nil) {
		seen[e.ID]++
		if seen[e.ID] == 1 {
			got[e.AlertName] = append(got[e.AlertName], e.ID)
		}
	}
	for name, ids := range want {
		if strings.Join(got[name], ",") != strings.Join(ids, ",") {
			t.Errorf("%s: received ids\n %v\nwant (in order)\n %v", name, got[name], ids)
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("alerts received %v", got)
	}
}
