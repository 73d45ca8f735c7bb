package host

import (
	"reflect"
	"testing"
)

// TestParseMeminfo calls the one meminfo parser, which both
// node_memory_* and an alert's "free -h" evidence read through, on
// strings: kB fields become _bytes, counts keep their name, "(anon)"
// becomes "_anon", and a malformed line is an error rather than a
// silently missing field.
func TestParseMeminfo(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []meminfoField
		wantErr  bool
	}{
		{
			name: "kB fields, counts and (anon)",
			in:   "MemTotal:        8039428 kB\nHugePages_Total:       0\nActive(anon):    1024 kB\n",
			want: []meminfoField{{"MemTotal_bytes", 8039428 * 1024}, {"HugePages_Total", 0}, {"Active_anon_bytes", 1024 * 1024}},
		},
		{name: "blank lines are skipped", in: "\nMemFree: 1 kB\n\n", want: []meminfoField{{"MemFree_bytes", 1024}}},
		{name: "a value that is not a number", in: "MemFree: lots kB\n", wantErr: true},
		{name: "a line with too many fields", in: "MemFree: 1 kB extra\n", wantErr: true},
		{name: "a line with a key only", in: "MemFree:\n", wantErr: true},
		{name: "a negative value", in: "MemFree: -1 kB\n", wantErr: true},
		{name: "a value past 64 bits", in: "MemFree: 123456789012345678901 kB\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMeminfo([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
