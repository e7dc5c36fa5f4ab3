package measure

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestStampRoundTrip(t *testing.T) {
	v := Filler(1024, 42)
	rest := bytes.Clone(v[StampSize:])
	at := time.Unix(1_700_000_000, 123456789)
	if err := Stamp(v, at); err != nil {
		t.Fatal(err)
	}
	got, err := ReadStamp(v)
	if err != nil || !got.Equal(at) {
		t.Fatalf("ReadStamp = %v, %v; want %v", got, err, at)
	}
	if !bytes.Equal(v[StampSize:], rest) {
		t.Fatal("Stamp wrote past the first 8 bytes")
	}
	d, err := Since(v, at.Add(1500*time.Microsecond))
	if err != nil || d != 1_500_000 {
		t.Fatalf("Since = %d, %v", d, err)
	}
}

func TestStampShortValue(t *testing.T) {
	if err := Stamp(make([]byte, 7), time.Now()); !errors.Is(err, ErrShortValue) {
		t.Errorf("Stamp: %v", err)
	}
	if _, err := ReadStamp(nil); !errors.Is(err, ErrShortValue) {
		t.Errorf("ReadStamp: %v", err)
	}
}

func TestFillerDeterministic(t *testing.T) {
	a, b := Filler(64, 7), Filler(64, 7)
	if !bytes.Equal(a, b) || bytes.Equal(a, Filler(64, 8)) {
		t.Fatal("Filler should depend on the seed and only on it")
	}
	if bytes.Count(a, []byte{0}) > 8 {
		t.Fatalf("filler looks degenerate: %x", a)
	}
}
