package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// osReleaseCache keeps the parsed os-release file until it changes, so that
// a gather costs one stat.
type osReleaseCache struct {
	mu    sync.Mutex
	path  string
	mtime time.Time
	size  int64
	env   map[string]string
}

var versionRegex = regexp.MustCompile(`^[0-9]+\.?[0-9]*`)

// updateOS reports node_os_info, node_os_version and (when the file gives
// SUPPORT_END) node_os_support_end_timestamp_seconds from os-release(5) under
// agent.paths.rootfs: /etc/os-release, else /usr/lib/os-release.
func (c *Collector) updateOS(_ context.Context, ch chan<- prometheus.Metric) error {
	env, err := c.osRelease()
	if err != nil {
		return err
	}
	info := c.desc("node_os_info", "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
		"build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name", "variant", "variant_id", "version", "version_codename", "version_id")
	ch <- c.labels.MustNew(info, prometheus.GaugeValue, 1, env["BUILD_ID"], env["ID"], env["ID_LIKE"], env["IMAGE_ID"], env["IMAGE_VERSION"],
		env["NAME"], env["PRETTY_NAME"], env["VARIANT"], env["VARIANT_ID"], env["VERSION"], env["VERSION_CODENAME"], env["VERSION_ID"])
	if mm := versionRegex.FindString(env["VERSION_ID"]); mm != "" {
		if v, err := strconv.ParseFloat(mm, 64); err == nil && v > 0 {
			ch <- c.labels.MustNew(c.desc("node_os_version", "Metric containing the major.minor part of the OS version.", "id", "id_like", "name"),
				prometheus.GaugeValue, v, env["ID"], env["ID_LIKE"], env["NAME"])
		}
	}
	if se := env["SUPPORT_END"]; se != "" {
		t, err := time.Parse(time.DateOnly, se)
		if err != nil {
			return fmt.Errorf("SUPPORT_END %q in os-release: %w", se, err)
		}
		ch <- c.labels.MustNew(c.desc("node_os_support_end_timestamp_seconds", "Metric containing the end-of-life date timestamp of the OS."), prometheus.GaugeValue, float64(t.Unix()))
	}
	return nil
}

func (c *Collector) osRelease() (map[string]string, error) {
	r := &c.osRel
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range []string{"etc/os-release", "usr/lib/os-release"} {
		path := c.rootfsPath(name)
		st, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if r.env != nil && r.path == path && r.mtime.Equal(st.ModTime()) && r.size == st.Size() {
			return r.env, nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		r.path, r.mtime, r.size, r.env = path, st.ModTime(), st.Size(), parseOSRelease(data)
		return r.env, nil
	}
	return nil, fmt.Errorf("%w: no os-release under %s", ErrNoData, c.paths.Rootfs)
}

// parseOSRelease reads os-release(5): KEY=value lines whose values may be
// quoted in shell style, with \", \\, \$ and \` escapes inside double quotes.
func parseOSRelease(data []byte) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		env[strings.TrimSpace(k)] = unquoteShell(strings.TrimSpace(v))
	}
	return env
}

func unquoteShell(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	return v
}
