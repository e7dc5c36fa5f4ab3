package transform

import (
	"encoding/binary"
	"testing"

	"github.com/weir-dev/weir/internal/record"
)

// fuzzInput is a records section with records at offset deltas 0, 2, 5.
var fuzzInput = func() []byte {
	var b []byte
	for _, d := range []int32{0, 2, 5} {
		b = record.AppendRecord(b, 0, int64(d), d, []byte("k"), []byte("value"), []record.RecordHeader{{Key: "h", Value: []byte("v")}})
	}
	return b
}()

// FuzzDecodeOutput feeds arbitrary bytes to the decoder of what a module
// returns: it must never panic, and what it accepts must stay inside the
// batch and the transform's outputs.
func FuzzDecodeOutput(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x0c, 0, 0, 0, 0x02, 'k', 0x02, 'v', 0})
	f.Add([]byte{0x0a, errorOutput, 2, 0, 1, 0x04, 'e', 'r', 0})
	f.Add([]byte{0x06, keepOutput, 4, 1})
	f.Add([]byte{0x06, keepSetOutput, 6, 0x05})
	f.Add([]byte{0x06, keepSetOutput, 6, 0x07})
	f.Fuzz(func(t *testing.T, b []byte) {
		whole := keepsAll(b, 3)
		outs, hdrs, err := decodeOutputInto(nil, nil, b, fuzzInput, 100, 5000, 109, 3, 2)
		if whole {
			// What the host takes for "every record kept" must be
			// exactly what the decoder makes of the frame.
			if err != nil || len(outs) != 3 {
				t.Fatalf("keepsAll, but decoded %+v, %v", outs, err)
			}
			for _, o := range outs {
				if !o.Kept || o.Output != 0 {
					t.Fatalf("keepsAll, but decoded %+v", o)
				}
			}
		}
		if err != nil {
			return
		}
		if _, err := resolveKept(outs, hdrs, fuzzInput, 100, 5000); err != nil {
			return
		}
		for _, o := range outs {
			if o.SourceOffset < 100 || o.SourceOffset > 109 || o.Output < 0 || o.Output >= 2 {
				t.Fatalf("accepted %+v", o)
			}
		}
	})
}

// FuzzRecordTable feeds arbitrary records sections to the record table's
// builder: it must not panic, and every position it gives must lie inside
// the section.
func FuzzRecordTable(f *testing.F) {
	f.Add(fuzzInput, int32(3))
	f.Add([]byte{}, int32(0))
	f.Fuzz(func(t *testing.T, body []byte, n int32) {
		tab, err := appendRecordTable(nil, body, n)
		if err != nil {
			return
		}
		le := binary.LittleEndian
		for e := tab; len(e) > 0; e = e[tableEntrySize:] {
			for _, f := range []int{12, 20} { // key, value
				pos, l := int64(le.Uint32(e[f:])), int64(int32(le.Uint32(e[f+4:])))
				if l >= 0 && pos+l > int64(len(body)) {
					t.Fatalf("field at %d+%d outside %d bytes", pos, l, len(body))
				}
			}
			if hdrs, end := le.Uint32(e[28:]), le.Uint32(e[36:]); hdrs > end || int(end) > len(body) {
				t.Fatalf("headers [%d, %d) outside %d bytes", hdrs, end, len(body))
			}
		}
	})
}

// FuzzDecodeRedpandaPayload feeds arbitrary bytes to the decoder of records
// a Redpanda-SDK module writes.
func FuzzDecodeRedpandaPayload(f *testing.F) {
	f.Add([]byte{0x02, 'k', 0x02, 'v', 0})
	f.Add([]byte{0x01, 0x01, 0x02, 0x02, 'h', 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, ok := decodeRPPayload(b)
		if ok && len(o.Key)+len(o.Value) > len(b) {
			t.Fatalf("decoded more than was given: %+v", o)
		}
	})
}
