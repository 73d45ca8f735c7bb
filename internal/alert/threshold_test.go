package alert

import (
	"strings"
	"testing"
	"time"

	"github.com/tokpulse/tokpulse-agent/internal/evidence"
)

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{86.23456, "86.2"}, {80, "80"}, {2.9997, "3"}, {2.41, "2.41"}, {0.0123, "0.0123"},
		{153, "153"}, {12345.6, "12346"}, {0, "0"}, {-5, "-5"}, {-0.0001, "-0.0001"}, {2.5e9, "2.5e+09"},
	} {
		if got := FormatValue(tc.v); got != tc.want {
			t.Errorf("FormatValue(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestParseThreshold(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Threshold
		wantErr bool
	}{
		{in: "> 80", want: Threshold{">", 80}},
		{in: "<20", want: Threshold{"<", 20}},
		{in: ">= 2s", want: Threshold{">=", 2}},
		{in: "> 80 %", want: Threshold{">", 80}},
		{in: "== 0", want: Threshold{"==", 0}},
		{in: "!= -1.5e3", want: Threshold{"!=", -1500}},
		{in: "80", wantErr: true},
		{in: "above 80", wantErr: true},
		{in: "> 80 percent of memory", wantErr: true},
	} {
		got, err := ParseThreshold(tc.in)
		if (err != nil) != tc.wantErr || err == nil && got != tc.want {
			t.Errorf("ParseThreshold(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestCondition: the value against the threshold, as a person reads it
// (issue 15: "value 0" meant nothing).
func TestCondition(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name  string
		value *float64
		unit  string
		th    *Threshold
		want  string
	}{
		{"level with unit", f(86.234), "%", &Threshold{">", 80}, "86.2 % > 80 %"},
		{"below", f(12.5), "%", &Threshold{"<", 20}, "12.5 % < 20 %"},
		{"no unit", f(153), "", &Threshold{">", 100}, "153 > 100"},
		{"state test says nothing", f(0), "", &Threshold{"==", 0}, ""},
		{"any occurrence: the count", f(2.9997), "matching lines in 5m", &Threshold{">", 0}, "3 matching lines in 5m"},
		{"unit, no threshold", f(4), "s", nil, "4 s"},
		{"nothing known: the plain value", f(0.42), "", nil, "value 0.42"},
		{"no value", nil, "%", &Threshold{">", 80}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Event{Value: tc.value, Unit: tc.unit, Threshold: tc.th}
			if got := e.Condition(); got != tc.want {
				t.Errorf("Condition() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestKeyEvidence: a message shows the sections marked relevant, at most
// three, each cut to its last lines, one line each.
func TestKeyEvidence(t *testing.T) {
	var many []evidence.Entry
	for i := range 10 {
		many = append(many, evidence.Entry{Time: time.Unix(int64(i), 0), Text: strings.Repeat("y", i)})
	}
	e := Event{Evidence: []evidence.Section{
		{Title: "a", Relevant: true, Entries: []evidence.Entry{{Text: "line one\nline two"}}},
		{Title: "context", Entries: many},
		{Title: "b", Relevant: true, Entries: many},
		{Title: "empty", Relevant: true},
		{Title: "c", Relevant: true, Entries: []evidence.Entry{{Text: strings.Repeat("é", 300)}}},
		{Title: "d", Relevant: true, Entries: many},
	}}
	table := Event{Evidence: []evidence.Section{{Title: "df", Kind: "host", Relevant: true, Entries: many}}}
	if got := table.KeyEvidence()[0].Entries; len(got) != keyEntries || got[0].Text != "" {
		t.Errorf("a host table is not cut to its first %d rows (header first): %+v", keyEntries, got)
	}
	got := e.KeyEvidence()
	var titles []string
	for _, s := range got {
		titles = append(titles, s.Title)
	}
	if strings.Join(titles, ",") != "a,b,c" {
		t.Fatalf("sections %v, want a,b,c", titles)
	}
	if got[0].Entries[0].Text != "line one ⏎ line two" {
		t.Errorf("multi-line entry: %q", got[0].Entries[0].Text)
	}
	if len(got[1].Entries) != keyEntries || got[1].Entries[0].Text != strings.Repeat("y", 10-keyEntries) {
		t.Errorf("not the last %d entries: %+v", keyEntries, got[1].Entries)
	}
	if r := []rune(got[2].Entries[0].Text); len(r) != keyEntryRunes || string(r[len(r)-1]) != "…" {
		t.Errorf("a long entry is not cut to %d characters: %d", keyEntryRunes, len(r))
	}
	if len(e.Evidence[2].Entries) != 10 {
		t.Error("KeyEvidence changed the event's evidence")
	}
}
