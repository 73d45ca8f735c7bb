package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/tokpulse/tokpulse-agent/agent"
	"github.com/tokpulse/tokpulse-agent/incident"
	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/notify"
)

func statusCommand() *command {
	return &command{
		name:    "status",
		summary: "show the running agent's collectors, probes, checks, alerts",
		help: `Show the running agent's collectors, probes, checks, alerts and outbox,
read from its API (GET /api/v1/status). The agent is found at web.listen of
the configuration (--config, else ` + SystemConfigFile + ` if it exists,
else the embedded default, 127.0.0.1:9847), or at --url; the first line on
standard error says which. When the configuration's web.config_file sets
TLS, the agent is reached over HTTPS and must present the certificate that
file names; an agent behind basic auth needs --http.config.file (username
and password_file, as amtool takes them). Only the web section of the file is
read, so that status works while the rest does not load. Alerts of the same
name are told apart by the labels in which they differ.`,
		setup: func(c *cli, fs *flag.FlagSet) func([]string) int {
			config := configFlag(fs)
			api := declareAPIFlags(fs)
			asJSON := fs.Bool("json", false, "print the raw JSON of /api/v1/status")
			return func([]string) int { return c.status(c.configFile(*config), api, *asJSON) }
		},
	}
}

// agentAt finds the running agent for a command: at --url, or by the web
// section of the configuration file ("" for the embedded default), and
// names it on standard error. Only that section is read: the rest of the
// file may not load (the agent then runs on its last good copy) or name
// secrets the user running the command cannot read.
func (c *cli) agentAt(configFile string, f apiFlags) (*agentAPI, bool) {
	var web agent.WebConfig
	if *f.url == "" {
		var err error
		if web, err = agent.WebOf(configFile); err != nil {
			fmt.Fprintln(c.stderr, err)
			return nil, false
		}
	}
	api, err := connect(f, web, configFile)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return nil, false
	}
	fmt.Fprintf(c.stderr, "Agent at %s (%s)\n", api.base, api.via)
	return api, true
}

// status prints the running agent's status, read from its local API.
func (c *cli) status(configFile string, f apiFlags, asJSON bool) int {
	stdout, stderr := c.stdout, c.stderr
	api, ok := c.agentAt(configFile, f)
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := api.do(ctx, http.MethodGet, "/api/v1/status", nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if asJSON {
		_, _ = stdout.Write(body)
		return 0
	}
	var st agent.Status
	if err := json.Unmarshal(body, &st); err != nil {
		fmt.Fprintf(stderr, "unexpected answer from %s: %v\n", api.base, err)
		return 1
	}
	color := false
	if f, ok := stdout.(*os.File); ok {
		color = term.IsTerminal(int(f.Fd()))
	}
	renderStatus(stdout, st, time.Now(), color)
	return 0
}

// renderStatus writes st as compact tables, like `monit summary`.
func renderStatus(w io.Writer, st agent.Status, now time.Time, color bool) {
	paint := func(ok bool, s string) string {
		if !color {
			return s
		}
		if ok {
			return "\x1b[32m" + s + "\x1b[0m"
		}
		return "\x1b[31m" + s + "\x1b[0m"
	}
	a := st.Agent
	reload := "ok"
	if !a.LastReloadSuccessful {
		reload = paint(false, "FAILED (previous configuration in force)")
	}
	fmt.Fprintf(w, "tokpulse-agent %s on %s, up %s, config %s (last reload %s)\n%s\n\n",
		a.Version, a.Hostname, strings.TrimSuffix(age(now, a.StartedAt), " ago"), a.ConfigFile, reload, a.LastGather)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tSTATUS\tLAST RUN\tDETAIL")
	for _, c := range st.Components {
		status := paint(c.OK, "OK")
		if !c.OK {
			status = paint(false, "FAIL")
			if c.LastRun.IsZero() {
				status = "-"
			}
		}
		detail := c.Detail
		if c.Reason != "" {
			detail = c.Reason + ": " + detail
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Kind, c.Name, status, age(now, c.LastRun), oneLine(detail, 100))
	}
	_ = tw.Flush()

	fmt.Fprintln(w)
	renderAlerts(w, st.Alerts, now, paint)
	if len(st.Actions) > 0 {
		fmt.Fprintln(w)
		renderActions(w, st.Actions, now, paint)
	}
	fmt.Fprintln(w)
	renderOutbox(w, st.Outbox, paint)
}

// renderActions writes one line per automated action with what it does,
// its budget and its last run, then one line per alert that spent some of
// the budget within the window.
func renderActions(w io.Writer, acts []incident.ActionStatus, now time.Time, paint func(bool, string) string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tDOES\tBUDGET\tLAST RUN")
	for _, a := range acts {
		what := a.Description
		if a.DryRun {
			what += " (dry run)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d per %s per alert\t%s\n", a.Name, oneLine(what, 60), a.MaxRuns, a.Per, age(now, a.LastRun))
		for _, b := range a.Budgets {
			left := fmt.Sprintf("%d of %d left", b.Left, a.MaxRuns)
			if b.Left == 0 {
				left = paint(false, "none left") + " until " + b.NextAt.UTC().Format(time.RFC3339)
			}
			name := b.AlertName
			if p := b.Labels; len(p) > 0 {
				var parts []string
				for _, k := range slices.Sorted(maps.Keys(p)) {
					if k != "alertname" && k != "severity" {
						parts = append(parts, k+"="+strconv.Quote(p[k]))
					}
				}
				if len(parts) > 0 {
					name += "{" + strings.Join(parts, ",") + "}"
				}
			}
			fmt.Fprintf(tw, "\t  %s\t%s\t\n", name, left)
		}
	}
	_ = tw.Flush()
}

// renderOutbox writes one line for the outbox and one per output.
func renderOutbox(w io.Writer, ob *notify.Status, paint func(bool, string) string) {
	if ob == nil {
		fmt.Fprintln(w, "Outbox: unreadable (see the agent's log).")
		return
	}
	dropped := fmt.Sprintf("%d dropped", ob.Dropped)
	if ob.Dropped > 0 {
		dropped = paint(false, dropped)
	}
	fmt.Fprintf(w, "Outbox: %d events, %d bytes, %s\n", ob.Events, ob.Bytes, dropped)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTPUT\tPENDING\tOLDEST\tDEAD LETTERS")
	for _, name := range slices.Sorted(maps.Keys(ob.Outputs)) {
		o := ob.Outputs[name]
		oldest := "-"
		if o.Oldest != nil {
			oldest = o.Oldest.UTC().Format(time.RFC3339)
		}
		dead := strconv.Itoa(len(o.DeadLetters))
		if len(o.DeadLetters) > 0 {
			dead = paint(false, dead)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", name, o.Pending, oldest, dead)
	}
	_ = tw.Flush()
}

// renderAlerts writes the alerts table.
func renderAlerts(w io.Writer, alerts []alert.Alert, now time.Time, paint func(bool, string) string) {
	if len(alerts) == 0 {
		fmt.Fprintln(w, "No alerts.")
		return
	}
	names := alertNames(alerts)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALERT\tSEVERITY\tSTATE\tSINCE\tVALUE\tSUMMARY")
	for i, al := range alerts {
		state := string(al.State)
		if al.State == alert.StateFiring {
			state = paint(false, state)
		}
		since := al.ActiveAt
		if al.State == alert.StateResolved {
			since = al.ResolvedAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%g\t%s\n", names[i], al.Severity, state,
			strings.TrimSuffix(age(now, since), " ago"), al.Value, oneLine(al.Annotations["summary"], 80))
	}
	_ = tw.Flush()
}

// alertNames names each alert for the table: its alertname, followed,
// when several alerts share that name, by the labels whose values differ
// among them (TokPulseDatabaseUnavailable{check="postgres"} beside
// TokPulseDatabaseUnavailable{probe="postgres_tcp"}), as Alertmanager's
// amtool shows instances.
func alertNames(alerts []alert.Alert) []string {
	byName := map[string][]alert.Alert{}
	for _, al := range alerts {
		byName[al.Name] = append(byName[al.Name], al)
	}
	out := make([]string, len(alerts))
	for i, al := range alerts {
		group := byName[al.Name]
		if len(group) < 2 {
			out[i] = al.Name
			continue
		}
		var parts []string
		for _, k := range distinguishingLabels(group) {
			if v, ok := al.Labels[k]; ok {
				parts = append(parts, k+"="+strconv.Quote(v))
			}
		}
		out[i] = al.Name + "{" + strings.Join(parts, ",") + "}"
	}
	return out
}

// distinguishingLabels returns, sorted, the label names whose values (or
// presence) are not the same in every alert of group.
func distinguishingLabels(group []alert.Alert) []string {
	keys := map[string]bool{}
	for _, al := range group {
		for k := range al.Labels {
			keys[k] = true
		}
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		first, had := group[0].Labels[k]
		for _, al := range group[1:] {
			if v, ok := al.Labels[k]; ok != had || v != first {
				out = append(out, k)
				break
			}
		}
	}
	return out
}

// age formats how long ago t was, "-" for never.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		return s[:max-1] + "…"
	}
	return s
}
