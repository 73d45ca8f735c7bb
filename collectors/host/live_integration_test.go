package host

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/tokpulse/tokpulse-agent/internal/testutil"
)

// inScope are the families of issue 13's list, by name prefix: what the
// agent must expose wherever node_exporter does.
var inScope = []string{
	"node_uname_", "node_os_", "node_time_", "node_timex_", "node_filefd_", "node_vmstat_",
	"node_pressure_", "node_nf_conntrack_", "node_network_", "node_netstat_", "node_sockstat_",
	"node_procs_", "node_context_switches_total", "node_intr_total", "node_forks_total",
	"node_boot_time_seconds", "node_entropy_", "node_memory_", "node_disk_", "node_md_",
	"node_bonding_", "node_textfile_", "node_filesystem_", "node_cpu_seconds_total",
	"node_cpu_guest_seconds_total", "node_load", "node_arp_", "node_softnet_", "node_udp_queues",
	"node_scrape_collector_",
}

// addedSince15 are labels that node_exporter added after 1.5 (Debian 12's),
// which the agent has as current node_exporter does.
var addedSince15 = map[string][]string{
	"node_network_info": {"adminstate"}, // 1.7
	"node_disk_info":    {"rotational"}, // 1.9
}

// TestLiveBesideNodeExporter runs the agent binary and Debian's
// prometheus-node-exporter side by side on this machine and compares
// their expositions: every in-scope family node_exporter emits, the agent
// emits with the same label sets and series; then Grafana dashboard 1860's
// panels are resolved against both.
func TestLiveBesideNodeExporter(t *testing.T) {
	ne := testutil.Require(t, "prometheus-node-exporter")
	dir := t.TempDir()
	textDir := filepath.Join(dir, "textfile")
	if err := os.MkdirAll(textDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(textDir, "backup.prom"), []byte("# HELP backup_age_seconds Age of the last backup.\n# TYPE backup_age_seconds gauge\nbackup_age_seconds 42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	neAddr := testutil.FreeAddr(t)
	// Debian patches node_exporter's default filters (it leaves out /run,
	// /mnt, /media, lo and zram); the agent has upstream's, so
	// node_exporter is given upstream's here.
	testutil.StartServer(t, filepath.Join(dir, "node_exporter.log"), ne,
		"--web.listen-address="+neAddr,
		"--collector.filesystem.mount-points-exclude="+DefaultMountPointsExclude,
		"--collector.diskstats.device-exclude="+DefaultDisksExclude,
		"--collector.netdev.device-exclude=^$",
		"--collector.textfile.directory="+textDir,
	)
	agentAddr := testutil.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "agent:\n  state_dir: %s/state\nweb:\n  listen: %s\nhost:\n  textfile:\n    directory: %s\n", dir, agentAddr, textDir), 0o644); err != nil {
		t.Fatal(err)
	}
	a := testutil.StartAgent(t, testutil.AgentOptions{Args: []string{"--config", cfg}, Addr: agentAddr})
	a.WaitReady(t, 1, 15*time.Second)
	var neText string
	testutil.Eventually(t, 15*time.Second, "node_exporter serving", func() bool {
		var err error
		neText, err = get("http://" + neAddr + "/metrics")
		return err == nil
	})
	_, agentText := a.Get(t, "/metrics")
	neMFs, agentMFs := parseText(t, neText), parseText(t, agentText)

	t.Run("families", func(t *testing.T) {
		compared := 0
		for _, name := range sortedKeys(neMFs) {
			if !hasAnyPrefix(name, inScope) {
				continue
			}
			compared++
			n, a := neMFs[name], agentMFs[name]
			if a == nil {
				t.Errorf("%s: node_exporter has it, the agent not", name)
				continue
			}
			want := seriesSet(n, nil)
			got := seriesSet(a, addedSince15[name])
			if name == "node_scrape_collector_success" || name == "node_scrape_collector_duration_seconds" {
				// Compare the collectors both run.
				want = slices.DeleteFunc(want, func(s string) bool { return !slices.ContainsFunc(got, sameCollector(s)) })
			}
			if name == "node_textfile_mtime_seconds" || name == "node_scrape_collector_duration_seconds" {
				want, got = labelSets(want), labelSets(got)
			}
			var missing []string
			for _, s := range want {
				if !slices.Contains(got, s) {
					missing = append(missing, s)
				}
			}
			if len(missing) > 0 {
				t.Errorf("%s: series of node_exporter the agent lacks:\n  %s\nagent has:\n  %s", name, strings.Join(missing, "\n  "), strings.Join(got, "\n  "))
			}
		}
		t.Logf("%d in-scope families of node_exporter 1.5 found in the agent with the same series", compared)
		if compared < 100 {
			t.Errorf("only %d in-scope families in node_exporter's exposition; is it running with its default collectors?", compared)
		}
	})

	t.Run("dashboard 1860", func(t *testing.T) {
		panels := dashboardPanels(t, "testdata/grafana-1860/node-exporter-full.json")
		neRes := resolvePanels(t, panels, neMFs, neAddr)
		agentRes := resolvePanels(t, panels, agentMFs, agentAddr)
		t.Logf("dashboard 1860, %d panels with queries: node_exporter %s; agent %s", len(panels), neRes, agentRes)
		for _, p := range append(append([]string{}, agentRes.partial...), agentRes.none...) {
			t.Logf("not full with the agent: %s (%s)", p, agentRes.why[p])
		}
		for _, p := range agentRes.full {
			if !slices.Contains(neRes.full, p) {
				t.Logf("full with the agent only: %s (node_exporter: %s)", p, neRes.why[p])
			}
		}
		// The goal: every panel node_exporter fills on this machine, the
		// agent fills too.
		for _, p := range neRes.full {
			if !slices.Contains(agentRes.full, p) {
				t.Errorf("panel %q: full with node_exporter, not with the agent (%s)", p, agentRes.why[p])
			}
		}
	})
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

func parseText(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing exposition: %v", err)
	}
	return mfs
}

// seriesSet returns a family's series as sorted `{k="v",...}` strings,
// without empty labels and the label names in drop.
func seriesSet(mf *dto.MetricFamily, drop []string) []string {
	var out []string
	for _, m := range mf.Metric {
		var ls []string
		for _, l := range m.Label {
			if l.GetValue() != "" && !slices.Contains(drop, l.GetName()) {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
		}
		sort.Strings(ls)
		out = append(out, "{"+strings.Join(ls, ",")+"}")
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// labelSets reduces series to their label names, for families whose
// label values legitimately differ between the two (file times, paths).
func labelSets(series []string) []string {
	re := regexp.MustCompile(`="(?:[^"\\]|\\.)*"`)
	out := make([]string, len(series))
	for i, s := range series {
		out[i] = re.ReplaceAllString(s, "")
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func sameCollector(s string) func(string) bool {
	return func(g string) bool { return strings.SplitN(g, "}", 2)[0] == strings.SplitN(s, "}", 2)[0] }
}

// panel is one dashboard panel with queries.
type panel struct {
	title string
	exprs []string
}

func dashboardPanels(t *testing.T, path string) []panel {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	var out []panel
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p struct {
				Title   string            `json:"title"`
				Type    string            `json:"type"`
				Panels  []json.RawMessage `json:"panels"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			var exprs []string
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					exprs = append(exprs, tg.Expr)
				}
			}
			if p.Type != "row" && len(exprs) > 0 {
				out = append(out, panel{p.Title, exprs})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// resolution counts panels whose every query, some queries or no query
// selects data.
type resolution struct {
	full, partial, none []string
	why                 map[string]string
}

func (r resolution) String() string {
	return fmt.Sprintf("%d full, %d partial, %d none", len(r.full), len(r.partial), len(r.none))
}

// resolvePanels decides, for each panel, which of its queries select data
// from an exposition scraped as Prometheus would scrape it (job="node",
// instance=addr): a query selects data when every vector selector in it
// matches at least one series. Grafana's $job and $node are the scrape's.
func resolvePanels(t *testing.T, panels []panel, mfs map[string]*dto.MetricFamily, addr string) resolution {
	t.Helper()
	var series []labels.Labels
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			b := labels.NewBuilder(labels.EmptyLabels())
			b.Set("__name__", mf.GetName())
			b.Set("job", "node")
			b.Set("instance", addr)
			for _, l := range m.Label {
				if l.GetValue() != "" {
					b.Set(l.GetName(), l.GetValue())
				}
			}
			series = append(series, b.Labels())
		}
	}
	p := parser.NewParser(parser.Options{})
	r := resolution{why: map[string]string{}}
	for i, pn := range panels {
		key := fmt.Sprintf("%d %s", i, pn.title)
		ok := 0
		for _, e := range pn.exprs {
			e = strings.NewReplacer("$job", "node", "$node", addr, "$__rate_interval", "1m", "${__range}", "1h").Replace(e)
			expr, err := p.ParseExpr(e)
			if err != nil {
				t.Errorf("panel %q: %v", pn.title, err)
				continue
			}
			selects := true
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, isVS := n.(*parser.VectorSelector)
				if !isVS || !selects {
					return nil
				}
				if !slices.ContainsFunc(series, func(s labels.Labels) bool { return matchesAll(vs.LabelMatchers, s) }) {
					selects = false
					r.why[key] = "no series for " + vs.String()
				}
				return nil
			})
			if selects {
				ok++
			}
		}
		switch ok {
		case len(pn.exprs):
			r.full = append(r.full, key)
		case 0:
			r.none = append(r.none, key)
		default:
			r.partial = append(r.partial, key)
		}
	}
	return r
}

func matchesAll(ms []*labels.Matcher, s labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(s.Get(m.Name)) {
			return false
		}
	}
	return true
}
