package collectors

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

func TestLogConfigDefaults(t *testing.T) {
	cfg := DefaultConfig()
	data := []byte("logs:\n  - {name: app, paths: [/var/log/tokpulse/*.log]}\njournal:\n  - {name: tokpulse, units: [tokpulse.service]}\n")
	if err := yamlx.Decode("t.yml", data, &cfg); err != nil {
		t.Fatal(err)
	}
	l := cfg.Logs[0]
	if l.StartAt != "end" || l.MaxLineBytes != 65536 || l.PollInterval.D() != time.Second || l.EvidenceLines != 10 || l.ShedBacklogBytes != 16<<20 {
		t.Errorf("log defaults: %+v", l)
	}
	j := cfg.Journal[0]
	if j.StartAt != "end" || j.Journalctl != "journalctl" {
		t.Errorf("journal defaults: %+v", j)
	}
	if got := strings.Join(NewJournal(j, Options{}).args(true), " "); got != "--output=json --follow --no-pager --all --quiet --lines=0 --unit=tokpulse.service" {
		t.Errorf("journalctl args: %s", got)
	}
}

// TestLogMetricLabelCap checks that label sets beyond max_label_sets are
// dropped and counted, and bad values counted.
func TestLogMetricLabelCap(t *testing.T) {
	cfg := DefaultConfig()
	data := []byte(`logs:
  - name: app
    paths: [/x.log]
    metrics:
      - {name: by_user_total, type: counter, regexp: 'user=(?P<user>\w+) n=(?P<n>\S+)', labels: [user], max_label_sets: 2}
      - {name: n_last, type: gauge, regexp: 'user=(?P<user>\w+) n=(?P<n>\S+)', value: n}
`)
	if err := yamlx.Decode("t.yml", data, &cfg); err != nil {
		t.Fatal(err)
	}
	p := newLinePipeline("app", nil, cfg.Logs[0].Metrics, 0, Options{}.withDefaults())
	for _, l := range []string{"user=a n=1", "user=b n=2", "user=c n=3", "user=a n=4", "user=d n=x"} {
		p.process([]byte(l), false, fixedNow)
	}
	cnt, gauge := p.metrics[0], p.metrics[1]
	if len(cnt.series) != 2 || cnt.overflow.Load() != 2 {
		t.Errorf("series %d, dropped %d; want 2 and 2", len(cnt.series), cnt.overflow.Load())
	}
	if gauge.order[0].value != 4 || gauge.badValue.Load() != 1 {
		t.Errorf("gauge %v, bad values %d", gauge.order[0].value, gauge.badValue.Load())
	}
}

// TestLogMetricShortLabels: a single label's series are found by its value
// packed in a word (values of up to 7 bytes, at the end of a line or not)
// or through the map (longer ones); with 42 values, more than the packed
// table holds, in random order, each series must count exactly its lines.
func TestLogMetricShortLabels(t *testing.T) {
	cfg := DefaultConfig()
	data := []byte(`logs:
  - name: app
    paths: [/x.log]
    metrics:
      - {name: by_code_total, type: counter, regexp: 'code=(?P<code>\S*)', labels: [code]}
`)
	if err := yamlx.Decode("t.yml", data, &cfg); err != nil {
		t.Fatal(err)
	}
	p := newLinePipeline("app", nil, cfg.Logs[0].Metrics, 0, Options{}.withDefaults())
	var values []string
	for i := range 40 {
		values = append(values, strings.Repeat("x", i%9)+fmt.Sprint(i)) // 1 to 10 bytes
	}
	// Values that differ only by trailing NUL bytes (\S takes them) are
	// told apart by their length.
	values = append(values, "7\x00", "7\x00\x00")
	want := map[string]float64{}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		v := values[r.IntN(len(values))]
		line := "code=" + v
		if r.IntN(2) == 0 {
			line += " trailing bytes"
		}
		p.process([]byte(line), false, fixedNow)
		want[v]++
	}
	m := p.metrics[0]
	if len(m.series) != len(want) {
		t.Fatalf("%d series for %d values", len(m.series), len(want))
	}
	for _, s := range m.order {
		if s.value != want[s.labels[1]] {
			t.Errorf("code=%s counted %v, want %v", s.labels[1], s.value, want[s.labels[1]])
		}
	}
}
