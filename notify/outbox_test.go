package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// TestOutboxDropsLowestSeverityFirst fills a small outbox and checks which
// events survive: heartbeats go first, then the oldest P4, P3, P2, and a P1
// only when nothing else is left.
func TestOutboxDropsLowestSeverityFirst(t *testing.T) {
	type add struct {
		id  string
		sev string // "" for a heartbeat
	}
	cases := []struct {
		name     string
		max      int
		adds     []add
		want     []string // ids left, in order
		wantDrop int
	}{
		{"under the bound nothing is dropped", 5,
			[]add{{"a", "P4"}, {"b", "P1"}}, []string{"a", "b"}, 0},
		{"heartbeat before P4", 3,
			[]add{{"p4", "P4"}, {"hb", ""}, {"p1", "P1"}, {"p2", "P2"}}, []string{"p4", "p1", "p2"}, 1},
		{"oldest of the lowest severity", 3,
			[]add{{"p3a", "P3"}, {"p1a", "P1"}, {"p3b", "P3"}, {"p2a", "P2"}, {"p1b", "P1"}}, []string{"p1a", "p2a", "p1b"}, 2},
		{"the new event itself when it is the lowest", 2,
			[]add{{"p1a", "P1"}, {"p1b", "P1"}, {"p4", "P4"}}, []string{"p1a", "p1b"}, 1},
		{"P1 only when nothing lower is left", 2,
			[]add{{"p1a", "P1"}, {"p1b", "P1"}, {"p1c", "P1"}}, []string{"p1b", "p1c"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t, t.TempDir())
			defer st.Close()
			box := &outbox{st: st, maxEvents: tc.max, maxBytes: 1 << 30}
			dropped := 0
			for _, a := range tc.adds {
				e := alert.Event{ID: a.id, Kind: alert.KindInitial, Severity: a.sev, Fingerprint: a.id, CreatedAt: time.Now()}
				if a.sev == "" {
					e.Kind = alert.KindHeartbeat
				}
				d, err := box.add([]string{"x", "y"}, []alert.Event{e})
				dropped += len(d)
				if err != nil {
					t.Fatal(err)
				}
			}
			for _, out := range []string{"x", "y"} {
				p, err := box.pending(out, 100)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, s := range p {
					ids = append(ids, s.Event.ID)
				}
				if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
					t.Errorf("output %s keeps %v, want %v", out, ids, tc.want)
				}
			}
			status, _ := box.status([]string{"x"})
			if dropped != tc.wantDrop || status.Dropped != int64(tc.wantDrop) || status.Events != int64(len(tc.want)) {
				t.Errorf("dropped %d (persisted %d), events %d; want %d dropped, %d events", dropped, status.Dropped, status.Events, tc.wantDrop, len(tc.want))
			}
		})
	}
}

// TestOutboxByteBound: the byte bound drops as the count bound does, and
// an event leaves the outbox only when every output has accepted it.
func TestOutboxByteBound(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	box := &outbox{st: st, maxEvents: 1000, maxBytes: 3300}
	big := strings.Repeat("x", 900)
	for i, sev := range []string{"P2", "P4", "P1", "P3"} {
		e := alert.Event{ID: string(rune('a' + i)), Kind: alert.KindInitial, Severity: sev, Description: big}
		if _, err := box.add([]string{"x", "y"}, []alert.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := box.status([]string{"x", "y"})
	if s.Events != 3 || s.Bytes > 3300 || s.Dropped != 1 {
		t.Fatalf("status %+v; want 3 events within 3300 bytes, 1 dropped (the P4)", s)
	}
	p, _ := box.pending("x", 10)
	if err := box.ack("x", []uint64{p[0].Seq}); err != nil {
		t.Fatal(err)
	}
	if s, _ := box.status(nil); s.Events != 3 {
		t.Fatalf("event deleted while output y still needs it: %+v", s)
	}
	if err := box.ack("y", []uint64{p[0].Seq}); err != nil {
		t.Fatal(err)
	}
	if s, _ := box.status(nil); s.Events != 2 {
		t.Fatalf("event kept after both outputs accepted it: %+v", s)
	}
}

// TestRestartNeitherReannouncesNorForgets: the per-alert record survives a
// restart, so the same hand-over after it produces nothing, and the
// resolution after it is still sent.
func TestRestartNeitherReannouncesNorForgets(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	cfg := testConfig()
	cfg.Files = []FileConfig{{Path: "-"}}
	t0 := time.Now().Add(-time.Hour)
	a := firing("DiskFull", alert.P3, t0)
	func() {
		st := openStore(t, dir)
		defer st.Close()
		m, err := newFeed(cfg, testPolicies(), Options{Store: st, Host: "h", Version: "v", Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Alerts(context.Background(), t0, []alert.Alert{a}); err != nil {
			t.Fatal(err)
		}
		// Not started: the event stays queued across the "restart".
	}()
	st := openStore(t, dir)
	defer st.Close()
	m, err := newFeed(cfg, testPolicies(), Options{Store: st, Host: "h", Version: "v", Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, step := range []struct {
		at time.Duration
		a  alert.Alert
	}{{time.Minute, a}, {2 * time.Minute, resolved(a, t0.Add(2*time.Minute))}, {3 * time.Minute, resolved(a, t0.Add(2*time.Minute))}} {
		if err := m.Alerts(ctx, t0.Add(step.at), []alert.Alert{step.a}); err != nil {
			t.Fatal(err)
		}
	}
	m.Start(ctx)
	defer m.Stop(ctx)
	testutil.Eventually(t, 5*time.Second, "two lines on stdout", func() bool { return strings.Count(syncString(m.Manager, &out), "\n") >= 2 })
	m.Stop(ctx)
	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e alert.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		kinds = append(kinds, string(e.Kind))
	}
	if strings.Join(kinds, ",") != "initial,resolved" {
		t.Fatalf("stdout got %v, want initial then resolved once each", kinds)
	}
}

// syncString reads the stdout buffer under the file output's lock.
func syncString(m *Manager, b *bytes.Buffer) string {
	m.mu.Lock()
	outs := m.outputs
	m.mu.Unlock()
	for _, o := range outs {
		if f, ok := o.(*file); ok {
			f.mu.Lock()
			defer f.mu.Unlock()
		}
	}
	return b.String()
}

// TestHeartbeats: heartbeats arrive on schedule, and while an output is
// down only the newest one waits in the outbox.
func TestHeartbeats(t *testing.T) {
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	cfg := testConfig()
	cfg.Heartbeat = 50 * 1e6 // 50ms; validation asks for 10s in agent.yaml
	cfg.Webhooks = []WebhookConfig{webhookConfig("http://"+addr, "")}
	m := startManager(t, dir, cfg, testPolicies(), Options{})
	testutil.Eventually(t, 5*time.Second, "retries", func() bool {
		return promtestutil.ToFloat64(m.opts.Metrics.notifications.WithLabelValues("central", ResultRetry)) >= 3
	})
	st, _ := m.Status()
	if st.Outputs["central"].Pending != 1 {
		t.Fatalf("%d heartbeats pending, want only the newest", st.Outputs["central"].Pending)
	}
	rc := newUnstartedReceiver(t)
	ln := listenRetry(t, addr)
	srv := &httpServer{}
	srv.start(ln, rc)
	t.Cleanup(srv.close)
	testutil.Eventually(t, 5*time.Second, "two heartbeats", func() bool { return len(rc.requests()) >= 2 })
	for _, e := range rc.events(nil) {
		if e.Kind != alert.KindHeartbeat || e.Status != "ok" || !strings.Contains(e.Text, "is alive") {
			t.Fatalf("unexpected event %+v", e)
		}
	}
}

// TestNewOutputCatchesUp: an output the outbox has not served before — one
// added while the agent was down, or the first start with a state file
// whose incidents fire — first receives the initial event of every
// incident firing now; an output it has served receives nothing again. A
// state file written before the list of outputs existed counts the outputs
// with a queue as served.
func TestNewOutputCatchesUp(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	cfg := testConfig()
	cfg.Files = []FileConfig{{Name: "old", Path: filepath.Join(dir, "old.jsonl")}}
	st := openStore(t, filepath.Join(dir, "state"))
	f, err := newFeed(cfg, testPolicies(), Options{Store: st, Host: "h", Version: "v"})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(context.Background())
	if err := f.Alerts(context.Background(), t0, []alert.Alert{firing("Down", alert.P1, t0)}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the initial event at the old output", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "old.jsonl"))
		return strings.Count(string(b), "\n") == 1
	})
	f.Stop(context.Background())
	// A state file of a version without the list: only the queues say
	// which outputs were served.
	if err := st.Update(func(tx *state.Tx) error {
		return tx.Lookup(bktRoot, bktMeta).Delete([]byte(keyOutputs))
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart with a second output.
	cfg.Files = append(cfg.Files, FileConfig{Name: "new", Path: filepath.Join(dir, "new.jsonl")})
	st = openStore(t, filepath.Join(dir, "state"))
	defer st.Close()
	f, err = newFeed(cfg, testPolicies(), Options{Store: st, Host: "h", Version: "v"})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(context.Background())
	defer f.Stop(context.Background())
	testutil.Eventually(t, 5*time.Second, "the initial event at the new output", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "new.jsonl"))
		return strings.Count(string(b), "\n") == 1
	})
	old, _ := os.ReadFile(filepath.Join(dir, "old.jsonl"))
	nw, _ := os.ReadFile(filepath.Join(dir, "new.jsonl"))
	var a, b alert.Event
	if json.Unmarshal(old, &a) != nil || json.Unmarshal(nw, &b) != nil || a.ID != b.ID || b.Kind != alert.KindInitial || b.AlertName != "Down" {
		t.Fatalf("old output got %s\nnew output got %s\nwant the same initial event", old, nw)
	}
	if strings.Count(string(old), "\n") != 1 {
		t.Fatalf("the old output was told again: %s", old)
	}
	// The recovery reaches both.
	if err := f.Alerts(context.Background(), t0.Add(time.Hour), []alert.Alert{resolved(firing("Down", alert.P1, t0), t0.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the resolution at both outputs", func() bool {
		o, _ := os.ReadFile(filepath.Join(dir, "old.jsonl"))
		n, _ := os.ReadFile(filepath.Join(dir, "new.jsonl"))
		return strings.Count(string(o), "resolved") > 0 && strings.Count(string(n), "resolved") > 0
	})
}

// TestOutboxCountersRecoverFromDrift: totals in notify/meta that disagree
// with the events (a bound exceeded with no event left to drop) are
// counted again, and the sequence number is kept, so that the next event
// never reuses the key of a queued one.
func TestOutboxCountersRecoverFromDrift(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	box := &outbox{st: st, maxEvents: 1000, maxBytes: 1 << 30}
	add := func(id string) {
		t.Helper()
		e := alert.Event{ID: id, Kind: alert.KindInitial, Severity: "P1", Fingerprint: id, CreatedAt: time.Now()}
		if _, err := box.add([]string{"x"}, []alert.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	add("a")
	// The saved count claims far more events than the bound allows.
	if err := st.Update(func(tx *state.Tx) error {
		meta, err := sub(tx, bktMeta)
		if err != nil {
			return err
		}
		return putInt(meta, "count", 5000)
	}); err != nil {
		t.Fatal(err)
	}
	add("b")
	add("c")
	p, err := box.pending("x", 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	seqs := map[uint64]bool{}
	for _, s := range p {
		ids = append(ids, s.Event.ID)
		seqs[s.Seq] = true
	}
	if len(seqs) != len(p) || strings.Join(ids, ",") != "c" && strings.Join(ids, ",") != "b,c" {
		t.Fatalf("queued after drift: %v (seqs %v); want c last, each under its own seq", ids, seqs)
	}
	if s, _ := box.status(nil); s.Events != int64(len(p)) {
		t.Fatalf("status counts %d events, the queue holds %d", s.Events, len(p))
	}
}
