package transform

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// frame builds an input frame of records (key, value) at base.
func frame(base int64, kvs ...[2]string) []byte {
	var body []byte
	for i, kv := range kvs {
		var r []byte
		r = append(r, 0)
		r = binary.AppendVarint(r, int64(i))
		r = binary.AppendVarint(r, int64(i))
		r = appendBytes(r, []byte(kv[0]))
		r = appendBytes(r, []byte(kv[1]))
		r = binary.AppendVarint(r, 1)
		r = appendBytes(r, []byte("h"))
		r = appendBytes(r, []byte("x"))
		body = binary.AppendVarint(body, int64(len(r)))
		body = append(body, r...)
	}
	h := make([]byte, batchHeaderSize)
	binary.LittleEndian.PutUint32(h, abiVersion)
	binary.LittleEndian.PutUint64(h[8:], uint64(base))
	binary.LittleEndian.PutUint64(h[16:], 7000)
	binary.LittleEndian.PutUint32(h[32:], uint32(len(kvs)))
	return append(h, body...)
}

func withHandler(t *testing.T, k Kind, h func(r *Record, emit func(*Record)) error) {
	kind, handler = k, h
	t.Cleanup(func() { kind, handler = 0, nil })
}

func TestProcessEmitsPerRecord(t *testing.T) {
	withHandler(t, KindFlatMap, func(r *Record, emit func(*Record)) error {
		switch string(r.Value) {
		case "bad":
			return errors.New("nope")
		case "two":
			emit(r)
			out := *r
			out.Output = 1
			emit(&out)
		}
		return nil
	})
	var p processor
	out, err := p.process(frame(40, [2]string{"a", "two"}, [2]string{"b", "drop"}, [2]string{"c", "bad"}))
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		output byte
		delta  int64
		value  string
	}
	var got []entry
	for len(out) > 0 {
		l, n := binary.Varint(out)
		e := out[n : n+int(l)]
		out = out[n+int(l):]
		d, m := binary.Varint(e[1:])
		rest := e[1+m:]
		_, m2 := binary.Varint(rest)
		rest = rest[m2:]
		_, rest, _ = nbytes(rest)
		v, _, _ := nbytes(rest)
		got = append(got, entry{e[0], d, string(v)})
	}
	want := []entry{{0, 0, "two"}, {1, 0, "two"}, {errorOutput, 2, "nope"}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	t.Cleanup(func() { clear(state) })
	state.Set([]byte("a"), []byte("1"))
	state.Set([]byte("b"), []byte("22"))
	snap := snapshot(nil)
	clear(state)
	if err := restore(snap); err != nil || state.Len() != 2 || string(state["b"]) != "22" {
		t.Fatalf("restored %v: %v", state, err)
	}
	if err := restore(snap[:len(snap)-1]); err == nil {
		t.Fatal("a cut snapshot was accepted")
	}
}

// FuzzProcess feeds arbitrary input frames to the SDK's decoder.
func FuzzProcess(f *testing.F) {
	f.Add(frame(0, [2]string{"k", "v"}))
	f.Add(frame(5))
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, handler = KindMap, func(r *Record, emit func(*Record)) error { emit(r); return nil }
		defer func() { kind, handler = 0, nil }()
		var p processor
		p.process(b)
	})
}

func FuzzConfigure(f *testing.F) {
	f.Add([]byte{1, 2, 'i', 'n', 1, 3, 'o', 'u', 't', 1, 1, 'k', 1, 'v'})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, handler = KindMap, func(r *Record, emit func(*Record)) error { return nil }
		defer func() { kind, handler, config = 0, nil, Config{} }()
		configure(b)
	})
}

// A filter answers with one keep-set entry: a bit per input record.
func TestFilterAnswersWithAKeepSet(t *testing.T) {
	filter = func(r Record) bool { return string(r.Value) != "drop" }
	kind, handler = KindFilter, func(*Record, func(*Record)) error { return nil }
	defer func() { kind, handler, filter = 0, nil, nil }()
	var p processor
	out, err := p.process(frame(40, [2]string{"a", "one"}, [2]string{"b", "drop"}, [2]string{"c", "three"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{3 << 1, keepSetOutput, 3 << 1, 0b101}; !bytes.Equal(out, want) {
		t.Fatalf("output %x, want %x", out, want)
	}
}
