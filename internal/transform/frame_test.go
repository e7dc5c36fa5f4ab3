package transform

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/weir-dev/weir/internal/record"
)

// Keep entries (output 254) and a keep set (output 253) come out of the
// decoder as references, which resolveKept fills in from the input
// records (fuzzInput: offset deltas 0, 2 and 5).
func TestKeepEntriesResolveToInputRecords(t *testing.T) {
	for name, frame := range map[string][]byte{
		"keep entries": {0x06, keepOutput, 4, 1, 0x06, keepOutput, 10, 0},
		"keep set":     {0x06, keepSetOutput, 6, 0b110},
	} {
		outs, hdrs, err := decodeOutputInto(nil, nil, frame, fuzzInput, 100, 5000, 109, 3, 2)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(outs) != 2 || !outs[0].ref || outs[0].Value != nil {
			t.Fatalf("%s: before resolving %+v", name, outs)
		}
		if _, err := resolveKept(outs, hdrs, fuzzInput, 100, 5000); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for k, off := range []int64{102, 105} {
			o := outs[k]
			if o.ref || !o.Kept || o.SourceOffset != off || o.Timestamp != 5000+off-100 || string(o.Value) != "value" ||
				len(o.Headers) != 1 || o.Headers[0].Key != "h" {
				t.Fatalf("%s: output %d = %+v", name, k, o)
			}
		}
		if name == "keep entries" && (outs[0].Output != 1 || outs[1].Output != 0) {
			t.Fatalf("outputs %d %d", outs[0].Output, outs[1].Output)
		}
	}
	// A keep entry for an offset the batch does not have.
	outs, hdrs, err := decodeOutputInto(nil, nil, []byte{0x06, keepOutput, 2, 0}, fuzzInput, 100, 5000, 109, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resolveKept(outs, hdrs, fuzzInput, 100, 5000); err == nil {
		t.Fatal("a keep entry for a missing offset resolved")
	}
}

// The record table locates each record's fields in the records section:
// reading a record through its entry gives what decoding it gives.
func TestRecordTableLocatesFields(t *testing.T) {
	var body []byte
	body = record.AppendRecord(body, 0, -3, 0, nil, []byte("v0"), nil)
	body = record.AppendRecord(body, 0, 1<<40, 7, []byte("k1"), nil, []record.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b"}})
	body = record.AppendRecord(body, 0, 9, 1<<20, []byte{}, bytes.Repeat([]byte("x"), 300), nil)
	tab, err := appendRecordTable(nil, body, 3)
	if err != nil || len(tab) != 3*tableEntrySize {
		t.Fatalf("table of %d bytes: %v", len(tab), err)
	}
	le := binary.LittleEndian
	field := func(e []byte, at int) []byte {
		pos, n := int32(le.Uint32(e[at:])), int32(le.Uint32(e[at+4:]))
		if n < 0 {
			return nil
		}
		return body[pos : pos+n]
	}
	recs, err := splitRecords(body, 3)
	if err != nil {
		t.Fatal(err)
	}
	for k, raw := range recs {
		var r record.Record
		l, n := binary.Varint(raw)
		if err := r.Decode(raw[n : n+int(l)]); err != nil {
			t.Fatal(err)
		}
		e := tab[k*tableEntrySize:]
		key, value := field(e, 12), field(e, 20)
		if int64(le.Uint64(e)) != r.TimestampDelta || int32(le.Uint32(e[8:])) != r.OffsetDelta ||
			!bytes.Equal(key, r.Key) || (key == nil) != (r.Key == nil) ||
			!bytes.Equal(value, r.Value) || (value == nil) != (r.Value == nil) {
			t.Fatalf("record %d: entry %x, record %+v", k, e[:tableEntrySize], r)
		}
		// The headers run from the header count to the record's end.
		hdrs, end := le.Uint32(e[28:]), le.Uint32(e[36:])
		nh, m := binary.Varint(body[hdrs:end])
		if m <= 0 || int(nh) != len(r.Headers) || int32(le.Uint32(e[32:])) != int32(nh) {
			t.Fatalf("record %d: %d headers at [%d, %d), want %d", k, nh, hdrs, end, len(r.Headers))
		}
	}
	for _, bad := range [][]byte{body[:len(body)-1], append(append([]byte(nil), body...), 0)} {
		if _, err := appendRecordTable(nil, bad, 3); err == nil {
			t.Fatalf("a records section of %d bytes gave a table", len(bad))
		}
	}
}

// BenchmarkRecordTable: the host's cost per record of locating fields for
// a module (200-byte records with a short key and no headers).
func BenchmarkRecordTable(b *testing.B) {
	var body []byte
	for k := range 100 {
		body = record.AppendRecord(body, 0, int64(k), int32(k), fmt.Appendf(nil, "k%d", k), bytes.Repeat([]byte("v"), 200), nil)
	}
	var tab []byte
	for b.Loop() {
		var err error
		if tab, err = appendRecordTable(tab[:0], body, 100); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/record")
}
