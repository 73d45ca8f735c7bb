package host

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTextfile writes *.prom files as cron jobs do and checks what a gather
// reports: good files are re-exported with their mtime; bad or conflicting
// ones set node_textfile_scrape_error and never break the gather (the
// pedantic registry in gather fails on any series a scrape would refuse).
func TestTextfile(t *testing.T) {
	good := "# HELP backup_age_seconds Age of the last backup.\n# TYPE backup_age_seconds gauge\nbackup_age_seconds{job=\"db\"} 3600\n"
	for _, tc := range []struct {
		name   string
		files  map[string]string
		dir    string // overrides the directory
		errVal string
		want   []string
		absent []string
	}{
		{name: "no directory configured", dir: "-", errVal: "0"},
		{name: "good files", errVal: "0", files: map[string]string{
			"backup.prom":  good,
			"updates.prom": "apt_upgrades_pending{origin=\"security\"} 2\napt_upgrades_pending{origin=\"main\"} 5\n",
			"ignored.txt":  "not a metric file\n",
		}, want: []string{
			`backup_age_seconds{job="db"} 3600`,
			`apt_upgrades_pending{origin="security"} 2`,
			"# HELP apt_upgrades_pending Metric read from ",
			`node_textfile_mtime_seconds{file="DIR/backup.prom"}`,
		}},
		{name: "malformed file skipped, others kept", errVal: "1", files: map[string]string{
			"backup.prom": good,
			"broken.prom": "this is { not the text format\n",
		}, want: []string{`backup_age_seconds{job="db"} 3600`}, absent: []string{`file="DIR/broken.prom"`}},
		{name: "client timestamps skip the whole file", errVal: "1", files: map[string]string{
			"ts.prom": "certificate_expiry_seconds 100 1700000000000\n",
		}, absent: []string{"certificate_expiry_seconds"}},
		{name: "same series in two files", errVal: "1", files: map[string]string{
			"a.prom": good,
			"b.prom": good,
		}, want: []string{`backup_age_seconds{job="db"} 3600`}},
		{name: "same family, other labels, merged", errVal: "0", files: map[string]string{
			"a.prom": "cert_expiry_seconds{host=\"a\"} 1\n",
			"b.prom": "cert_expiry_seconds{cn=\"b\"} 2\n",
		}, want: []string{`cert_expiry_seconds{cn="",host="a"} 1`, `cert_expiry_seconds{cn="b",host=""} 2`}},
		{name: "conflicting types", errVal: "1", files: map[string]string{
			"a.prom": "# TYPE jobs_total counter\njobs_total 1\n",
			"b.prom": "# TYPE jobs_total gauge\njobs_total{x=\"1\"} 2\n",
		}, want: []string{"jobs_total 1"}, absent: []string{`jobs_total{x="1"}`}},
		{name: "conflicting help", errVal: "1", files: map[string]string{
			"a.prom": "# HELP q One.\nq 1\n",
			"b.prom": "# HELP q Two.\nq{x=\"1\"} 2\n",
		}, want: []string{"q 1"}},
		{name: "missing directory", dir: "/nonexistent/textfile", errVal: "1"},
		{name: "a FIFO does not block the gather", errVal: "1", files: map[string]string{
			"backup.prom": good,
			"fifo.prom":   "\x00fifo",
		}, want: []string{`backup_age_seconds{job="db"} 3600`}, absent: []string{`file="DIR/fifo.prom"`}},
		{name: "an oversized file is skipped", errVal: "1", files: map[string]string{
			"backup.prom": good,
			"huge.prom":   "\x00huge",
		}, want: []string{`backup_age_seconds{job="db"} 3600`}, absent: []string{`file="DIR/huge.prom"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, body := range tc.files {
				path := filepath.Join(dir, n)
				var err error
				switch body {
				case "\x00fifo":
					err = syscall.Mkfifo(path, 0o644)
				case "\x00huge": // sparse: over the cap without using the disk
					if err = os.WriteFile(path, []byte("a 1\n"), 0o644); err == nil {
						err = os.Truncate(path, maxTextfileBytes+1)
					}
				default:
					err = os.WriteFile(path, []byte(body), 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			cfg := ownConfig()
			cfg.Textfile.Enabled = true
			switch tc.dir {
			case "":
				cfg.Textfile.Directory = dir
			case "-":
				cfg.Textfile.Directory = ""
			default:
				cfg.Textfile.Directory = tc.dir
			}
			c, _ := ownCollector(t, cfg)
			got := strings.ReplaceAll(exposition(t, gather(t, c)), dir, "DIR")
			if !strings.Contains(got, "node_textfile_scrape_error "+tc.errVal+"\n") {
				t.Errorf("want node_textfile_scrape_error %s in:\n%s", tc.errVal, grepPrefix(got, "node_textfile"))
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %s", w)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(got, a) {
					t.Errorf("unexpected %s", a)
				}
			}
		})
	}
}

func grepPrefix(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
