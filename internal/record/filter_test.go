package record

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

type flatRecord struct {
	offset    int64
	timestamp int64
	key       string
	value     string
	null      bool
	headers   int
}

func flatten(t testing.TB, b []byte, d *Decompressor) (Header, []flatRecord) {
	t.Helper()
	h, err := CheckFrame(b)
	if err != nil {
		t.Fatalf("output frame: %v", err)
	}
	var out []flatRecord
	err = ForEachRecord(b, d, func(h *Header, r *Record) error {
		out = append(out, flatRecord{
			offset: h.BaseOffset + int64(r.OffsetDelta), timestamp: h.FirstTimestamp + r.TimestampDelta,
			key: string(r.Key), value: string(r.Value), null: r.Value == nil, headers: len(r.Headers),
		})
		return nil
	})
	if err != nil {
		t.Fatalf("iterate output: %v", err)
	}
	if len(out) != int(h.NumRecords) {
		t.Fatalf("header says %d records, iterated %d", h.NumRecords, len(out))
	}
	return h, out
}

func TestFilterKeepsOffsetsAndFields(t *testing.T) {
	d := NewDecompressor()
	defer d.Close()
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			in, err := Build(BatchOptions{BaseOffset: 100, LeaderEpoch: 7, FirstTimestamp: 5000, Compression: c,
				ProducerID: 42, ProducerEpoch: 3, BaseSequence: 17, Transactional: true}, sampleRecords(10))
			if err != nil {
				t.Fatal(err)
			}
			ih, all := flatten(t, in, d)
			out, res, err := Filter(nil, in, d, FilterOptions{}, func(h *Header, r *Record) bool { return r.OffsetDelta%3 == 1 })
			if err != nil {
				t.Fatal(err)
			}
			if res.Records != 10 || res.Kept != 3 || !res.Changed || res.Stamped {
				t.Fatalf("result %+v", res)
			}
			oh, got := flatten(t, out, d)
			if oh.BaseOffset != 100 || oh.LastOffsetDelta != 9 || oh.LeaderEpoch != 7 || oh.ProducerID != 42 ||
				oh.ProducerEpoch != 3 || oh.BaseSequence != 17 || oh.Attributes != ih.Attributes ||
				oh.FirstTimestamp != ih.FirstTimestamp || oh.MaxTimestamp != ih.MaxTimestamp || oh.Compression() != c {
				t.Fatalf("header changed:\n in  %+v\n out %+v", ih, oh)
			}
			want := []flatRecord{all[1], all[4], all[7]}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("kept %v, want %v", got, want)
			}
			// Filtering the output again keeps it byte for byte.
			again, res, err := Filter(nil, out, d, FilterOptions{}, func(*Header, *Record) bool { return true })
			if err != nil || res.Changed || !bytes.Equal(again, out) {
				t.Fatalf("refilter changed the batch: %+v %v", res, err)
			}
		})
	}
}

func TestFilterUnchangedAndEmpty(t *testing.T) {
	d := NewDecompressor()
	defer d.Close()
	in, _ := Build(BatchOptions{BaseOffset: 9, Compression: CompressionLZ4, ProducerID: 5, ProducerEpoch: 1, BaseSequence: 100}, sampleRecords(4))
	prefix := []byte("prefix")
	out, res, err := Filter(append([]byte(nil), prefix...), in, d, FilterOptions{}, func(*Header, *Record) bool { return true })
	if err != nil || res.Changed || !bytes.Equal(out, append(append([]byte(nil), prefix...), in...)) {
		t.Fatalf("keep-all: %+v %v", res, err)
	}
	out, res, err = Filter(prefix, in, d, FilterOptions{}, func(*Header, *Record) bool { return false })
	if err != nil || !res.Changed || res.Kept != 0 || !bytes.Equal(out, prefix) {
		t.Fatalf("drop-all: %+v %v %q", res, err, out)
	}
	out, _, err = Filter(nil, in, d, FilterOptions{KeepEmpty: true}, func(*Header, *Record) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	h, recs := flatten(t, out, d)
	if len(out) != HeaderSize || len(recs) != 0 || h.BaseOffset != 9 || h.LastOffsetDelta != 3 || h.Compression() != CompressionNone ||
		h.ProducerID != 5 || h.BaseSequence != 100 || h.LastSequence() != 103 {
		t.Fatalf("empty batch %+v", h)
	}
	// An empty batch goes through Filter again unchanged, or disappears.
	again, res, err := Filter(nil, out, d, FilterOptions{KeepEmpty: true}, func(*Header, *Record) bool { return true })
	if err != nil || res.Changed || !bytes.Equal(again, out) {
		t.Fatalf("refilter empty: %+v %v", res, err)
	}
	if gone, _, err := Filter(nil, out, d, FilterOptions{}, func(*Header, *Record) bool { return true }); err != nil || len(gone) != HeaderSize {
		t.Fatalf("an empty batch with nothing to remove is kept as it is: %d bytes, %v", len(gone), err)
	}
}

func TestFilterDeleteHorizon(t *testing.T) {
	d := NewDecompressor()
	defer d.Close()
	for _, c := range codecs {
		rs := sampleRecords(6)
		rs[2].Value = nil // a tombstone
		in, _ := Build(BatchOptions{FirstTimestamp: 10_000, Compression: c, ProducerID: NoProducer, ProducerEpoch: -1, BaseSequence: -1}, rs)
		_, all := flatten(t, in, d)
		opts := FilterOptions{StampDeleteHorizon: true, DeleteHorizon: 99_000}
		out, res, err := Filter(nil, in, d, opts, func(*Header, *Record) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if !res.Stamped || !res.Changed || res.KeptTombstones != 1 {
			t.Fatalf("%s: %+v", c, res)
		}
		h, got := flatten(t, out, d)
		if hz, ok := h.DeleteHorizon(); !ok || hz != 99_000 || h.Compression() != c {
			t.Fatalf("%s: horizon %d %v, header %+v", c, hz, ok, h)
		}
		if fmt.Sprint(got) != fmt.Sprint(all) {
			t.Fatalf("%s: records changed by the horizon:\n%v\n%v", c, got, all)
		}
		// A batch that has a horizon keeps it; a batch without tombstones gets none.
		again, res, _ := Filter(nil, out, d, FilterOptions{StampDeleteHorizon: true, DeleteHorizon: 1}, func(*Header, *Record) bool { return true })
		if res.Changed || !bytes.Equal(again, out) {
			t.Fatalf("%s: restamped", c)
		}
		_, res, _ = Filter(nil, in, d, opts, func(h *Header, r *Record) bool { return r.Value != nil })
		if res.Stamped {
			t.Fatalf("%s: stamped a batch that kept no tombstone", c)
		}
	}
	if _, ok := (&Header{}).DeleteHorizon(); ok {
		t.Fatal("zero header has a horizon")
	}
}

func TestFilterRejectsDamage(t *testing.T) {
	d := NewDecompressor()
	defer d.Close()
	for _, c := range codecs {
		b, _ := Build(BatchOptions{Compression: c, ProducerID: NoProducer}, sampleRecords(5))
		for i := range b {
			if i < LengthFieldEnd || (i >= leaderEpochPos && i < magicPos) {
				continue // outside the CRC: the storage layer checks those
			}
			bad := append([]byte(nil), b...)
			bad[i] ^= 0x10
			if _, _, err := Filter(nil, bad, d, FilterOptions{}, func(*Header, *Record) bool { return false }); err == nil {
				t.Fatalf("%s: flipped byte %d accepted", c, i)
			}
		}
	}
}

// FuzzFilter feeds arbitrary bytes to Filter, keeping every other record.
// It must not panic, and what it returns must be a well-formed batch over
// the same offsets holding exactly the kept records.
func FuzzFilter(f *testing.F) {
	for _, c := range codecs {
		b, _ := Build(BatchOptions{BaseOffset: 3, Compression: c, ProducerID: NoProducer}, sampleRecords(4))
		f.Add(b, true)
		f.Add(b, false)
	}
	d := NewDecompressor()
	defer d.Close()
	f.Fuzz(func(t *testing.T, b []byte, stamp bool) {
		var want []flatRecord
		i := 0
		opts := FilterOptions{StampDeleteHorizon: stamp, DeleteHorizon: 1 << 40, KeepEmpty: true, MaxDecompressedBytes: 1 << 20}
		out, res, err := Filter(nil, b, d, opts, func(h *Header, r *Record) bool {
			i++
			if i%2 == 0 {
				return false
			}
			want = append(want, flatRecord{offset: h.BaseOffset + int64(r.OffsetDelta), key: string(r.Key), value: string(r.Value), null: r.Value == nil})
			return true
		})
		if err != nil {
			return
		}
		in, _ := CheckFrame(b)
		h, got := flatten(t, out, d)
		if h.BaseOffset != in.BaseOffset || h.LastOffsetDelta != in.LastOffsetDelta || res.Kept != len(got) {
			t.Fatalf("offsets changed: in %+v out %+v", in, h)
		}
		if len(got) != len(want) {
			t.Fatalf("kept %d records, want %d", len(got), len(want))
		}
		for k := range got {
			g, w := got[k], want[k]
			if g.offset != w.offset || g.key != w.key || g.value != w.value || g.null != w.null {
				t.Fatalf("record %d = %+v, want %+v", k, g, w)
			}
		}
		// The output filters again without change.
		again, res2, err := Filter(nil, out, d, opts, func(*Header, *Record) bool { return true })
		if err != nil || res2.Changed || !bytes.Equal(again, out) {
			t.Fatalf("output does not refilter cleanly: %+v %v", res2, err)
		}
	})
}

func TestAppendRebuiltKeepsOffsets(t *testing.T) {
	recs := make([]Record, 5)
	for i := range recs {
		recs[i] = Record{Key: []byte{byte('a' + i)}, Value: []byte("v"), TimestampDelta: int64(i)}
	}
	src, err := Build(BatchOptions{BaseOffset: 100, FirstTimestamp: 1000, Compression: CompressionZstd, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 3, Transactional: true}, recs)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(src)
	if err != nil {
		t.Fatal(err)
	}
	out := AppendRebuilt([]byte("prefix"), &h, []Record{
		{OffsetDelta: 1, TimestampDelta: 1, Key: []byte("b"), Value: []byte("B")},
		{OffsetDelta: 3, TimestampDelta: 9, Key: []byte("d"), Value: nil},
	})
	if string(out[:6]) != "prefix" {
		t.Fatal("dst prefix lost")
	}
	// Validate (the produce path's check) would refuse the gaps, as
	// Kafka refuses them from producers; readers take them.
	got, err := CheckFrame(out[6:])
	if err != nil {
		t.Fatal(err)
	}
	if got.BaseOffset != 100 || got.LastOffsetDelta != 4 || got.NumRecords != 2 || got.ProducerID != 7 ||
		!got.Transactional() || got.Compression() != CompressionNone || got.MaxTimestamp != 1009 {
		t.Fatalf("header %+v", got)
	}
	var seen []string
	if err := ForEachRecord(out[6:], nil, func(h *Header, r *Record) error {
		seen = append(seen, fmt.Sprintf("%d:%s=%s", h.BaseOffset+int64(r.OffsetDelta), r.Key, r.Value))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, " ") != "101:b=B 103:d=" {
		t.Fatalf("records %v", seen)
	}
	if empty := AppendRebuilt(nil, &h, nil); PeekSize(empty) != HeaderSize {
		t.Fatalf("no records: %d bytes", len(empty))
	}
}
