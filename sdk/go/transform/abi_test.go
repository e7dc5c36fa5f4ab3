package transform

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// frame builds an input frame of records (key, value) at base, with
// the record table the host sends along.
func frame(base int64, kvs ...[2]string) []byte {
	var body, tab []byte
	le := binary.LittleEndian
	for i, kv := range kvs {
		var r []byte
		r = append(r, 0)
		r = binary.AppendVarint(r, int64(i))
		r = binary.AppendVarint(r, int64(i))
		r = appendBytes(r, []byte(kv[0]))
		r = appendBytes(r, []byte(kv[1]))
		hdrs := len(r)
		r = binary.AppendVarint(r, 1)
		r = appendBytes(r, []byte("h"))
		r = appendBytes(r, []byte("x"))
		body = binary.AppendVarint(body, int64(len(r)))
		at := int32(len(body)) // where r starts
		body = append(body, r...)
		e := make([]byte, tableEntrySize)
		le.PutUint64(e, uint64(i))
		le.PutUint32(e[8:], uint32(i))
		le.PutUint32(e[12:], uint32(at+3+1)) // after attributes, deltas, key length
		le.PutUint32(e[16:], uint32(len(kv[0])))
		le.PutUint32(e[20:], uint32(at+3+1+int32(len(kv[0]))+1))
		le.PutUint32(e[24:], uint32(len(kv[1])))
		le.PutUint32(e[28:], uint32(at+int32(hdrs)))
		le.PutUint32(e[32:], 1)
		le.PutUint32(e[36:], uint32(len(body)))
		tab = append(tab, e...)
	}
	h := make([]byte, batchHeaderSize)
	le.PutUint32(h, abiVersion)
	le.PutUint32(h[4:], flagRecordTable)
	le.PutUint64(h[8:], uint64(base))
	le.PutUint64(h[16:], 7000)
	le.PutUint32(h[32:], uint32(len(kvs)))
	return append(append(h, tab...), body...)
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

// The handler sees each record's fields as the record table locates them,
// and a table entry pointing outside the records is an error, not a panic.
func TestRecordsComeFromTheTable(t *testing.T) {
	var got []Record
	withHandler(t, KindFlatMap, func(r *Record, emit func(*Record)) error {
		c := *r
		c.Headers = append([]Header(nil), r.Headers...)
		got = append(got, c)
		return nil
	})
	var p processor
	in := frame(40, [2]string{"k0", "v0"}, [2]string{"", "value one"})
	if _, err := p.process(in); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d records", len(got))
	}
	for i, want := range []Record{{Key: []byte("k0"), Value: []byte("v0"), Timestamp: 7000, Offset: 40},
		{Key: []byte(""), Value: []byte("value one"), Timestamp: 7001, Offset: 41}} {
		r := got[i]
		if !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) || r.Timestamp != want.Timestamp ||
			r.Offset != want.Offset || len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != "x" {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	bad := bytes.Clone(in)
	binary.LittleEndian.PutUint32(bad[batchHeaderSize+tableEntrySize+24:], 1<<20) // second value's length
	if _, err := p.process(bad); !errors.Is(err, errFrame) {
		t.Fatalf("a value beyond the records: %v", err)
	}
	noTable := bytes.Clone(in)
	noTable[4] = 0
	if _, err := p.process(noTable); !errors.Is(err, errFrame) {
		t.Fatalf("a frame without a table: %v", err)
	}
}
