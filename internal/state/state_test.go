package state

import (
	"bytes"
	"strings"
	"testing"
)

func TestBucketRoundTripAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := s.Bucket("positions")
	if v, err := b.Get("missing"); err != nil || v != nil {
		t.Fatalf("Get(missing) = %q, %v; want nil, nil", v, err)
	}
	if err := b.PutMany(map[string][]byte{"a": []byte("1"), "b": []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutJSON("c", map[string]int{"offset": 42}); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b = s.Bucket("positions")
	var keys []string
	if err := b.ForEach(func(k, v []byte) error { keys = append(keys, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "a,c" {
		t.Errorf("keys after reopen = %v, want [a c]", keys)
	}
	if v, _ := b.Get("a"); !bytes.Equal(v, []byte("1")) {
		t.Errorf("a = %q, want 1", v)
	}
	var got map[string]int
	if ok, err := b.GetJSON("c", &got); !ok || err != nil || got["offset"] != 42 {
		t.Errorf("GetJSON(c) = %v, %v, %v", got, ok, err)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "another tokpulse-agent") {
		t.Fatalf("second Open: err = %v, want a lock error naming the cause", err)
	}
}
