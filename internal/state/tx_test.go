package state

import (
	"errors"
	"testing"
)

// TestTxNestedBucketsAndRollback checks what the outbox and the incident
// tracker rely on: nested buckets created in Update and absent (nil) in
// View, Lookup that never creates, an error from fn that keeps nothing,
// and ordered scans that stop when asked.
func TestTxNestedBucketsAndRollback(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	err = s.View(func(tx *Tx) error {
		b, err := tx.Bucket("root", "q", "out")
		if b != nil || err != nil {
			t.Errorf("Bucket in View on an empty file = %v, %v; want nil, nil", b, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *Tx) error {
		if tx.Lookup("root") != nil {
			t.Error("Lookup found a bucket nobody created")
		}
		b, err := tx.Bucket("root", "q", "out")
		if err != nil {
			return err
		}
		for _, k := range []string{"c", "a", "b"} {
			if err := b.Put([]byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = s.Update(func(tx *Tx) error {
		b, err := tx.Bucket("root", "q", "out")
		if err != nil {
			return err
		}
		if err := b.Put([]byte("d"), nil); err != nil {
			return err
		}
		if err := tx.DeleteBucket("never-there"); err != nil {
			t.Errorf("DeleteBucket of a missing bucket: %v; want nil", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v; want fn's error", err)
	}
	err = s.View(func(tx *Tx) error {
		q := tx.Lookup("root", "q")
		var subs []string
		_ = q.ForEachSub(func(name []byte) error { subs = append(subs, string(name)); return nil })
		if len(subs) != 1 || subs[0] != "out" {
			t.Errorf("nested buckets of root/q = %q; want [out]", subs)
		}
		b := q.Sub("out")
		if n := b.Len(); n != 3 {
			t.Errorf("Len = %d; want 3 (the failed Update must keep nothing)", n)
		}
		if k, v := b.First(); string(k) != "a" || string(v) != "va" {
			t.Errorf("First = %q, %q; want a, va", k, v)
		}
		var seen []string
		b.Scan(func(k, _ []byte) bool { seen = append(seen, string(k)); return len(seen) < 2 })
		if len(seen) != 2 || seen[0] != "a" || seen[1] != "b" {
			t.Errorf("Scan stopped after %q; want [a b]", seen)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *Tx) error {
		if err := tx.Lookup("root").DeleteSub("q"); err != nil {
			return err
		}
		return tx.Lookup("root").DeleteSub("q") // again: missing is fine
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(func(tx *Tx) error {
		if tx.Lookup("root", "q") != nil {
			t.Error("root/q survived DeleteSub")
		}
		return nil
	})
}
