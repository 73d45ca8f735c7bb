package collectors

import (
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
