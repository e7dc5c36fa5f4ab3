package transform

import (
	"testing"
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
