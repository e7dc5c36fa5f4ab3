package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/klauspost/compress/s2"
)

var codecs = []Compression{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd}

func sampleRecords(n int) []Record {
	rs := make([]Record, n)
	for i := range rs {
		rs[i] = Record{
			TimestampDelta: int64(i * 3),
			Key:            []byte(fmt.Sprintf("key-%d", i)),
			Value:          bytes.Repeat([]byte{byte(i)}, 10+i),
			Headers:        []RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}},
		}
	}
	rs[0].Key = nil // a null key
	return rs
}

func TestBuildValidateRoundTrip(t *testing.T) {
	d := NewDecompressor()
	defer d.Close()
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			want := sampleRecords(20)
			b, err := Build(BatchOptions{BaseOffset: 7, FirstTimestamp: 1000, Compression: c, ProducerID: NoProducer, ProducerEpoch: -1, BaseSequence: -1}, want)
			if err != nil {
				t.Fatal(err)
			}
			h, err := Validate(b, d, Limits{})
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if h.NumRecords != 20 || h.BaseOffset != 7 || h.LastOffset() != 26 || h.MaxTimestamp != 1000+19*3 || h.Compression() != c {
				t.Fatalf("header %+v", h)
			}
			var i int
			err = ForEachRecord(b, d, func(h *Header, r *Record) error {
				w := want[i]
				if !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) || !bytes.Equal(r.Value, w.Value) || r.TimestampDelta != w.TimestampDelta || int(r.OffsetDelta) != i {
					return fmt.Errorf("record %d = %+v, want %+v", i, r, w)
				}
				if len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != fmt.Sprint(i) {
					return fmt.Errorf("record %d headers %+v", i, r.Headers)
				}
				i++
				return nil
			})
			if err != nil || i != 20 {
				t.Fatalf("iterate: %v after %d records", err, i)
			}
		})
	}
}

func TestValidateRejectsEveryFlippedByte(t *testing.T) {
	d := NewDecompressor()
	defer d.Close()
	for _, c := range codecs {
		b, err := Build(BatchOptions{Compression: c, ProducerID: NoProducer}, sampleRecords(5))
		if err != nil {
			t.Fatal(err)
		}
		// Bytes 0..7 (base offset) and 12..15 (leader epoch) belong to the
		// broker and are outside the CRC; every other byte is protected.
		for i := range b {
			if i < lengthPos || (i >= leaderEpochPos && i < magicPos) {
				continue
			}
			bad := append([]byte(nil), b...)
			bad[i] ^= 0x5a
			if _, err := Validate(bad, d, Limits{}); err == nil {
				t.Fatalf("%s: flipping byte %d went unnoticed", c, i)
			}
		}
	}
}

func TestValidateStructuralErrors(t *testing.T) {
	d := NewDecompressor()
	defer d.Close()
	good, _ := Build(BatchOptions{ProducerID: NoProducer}, sampleRecords(3))
	recrc := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[crcPos:], Checksum(b[attributesPos:]))
		return b
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"short":          {good[:30], ErrCorrupt},
		"truncated":      {good[:len(good)-1], ErrCorrupt},
		"trailing bytes": {append(append([]byte(nil), good...), 0), ErrCorrupt},
		"magic 1":        {mutate(func(b []byte) []byte { b[magicPos] = 1; return b }), ErrUnsupportedMagic},
		"count too high": {mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[numRecordsPos:], 4)
			binary.BigEndian.PutUint32(b[lastOffsetDeltaPos:], 3)
			return recrc(b)
		}), ErrCorrupt},
		"count too low": {mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[numRecordsPos:], 2)
			binary.BigEndian.PutUint32(b[lastOffsetDeltaPos:], 1)
			return recrc(b)
		}), ErrCorrupt},
		"delta mismatch": {mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[lastOffsetDeltaPos:], 7)
			return recrc(b)
		}), ErrCorrupt},
		"zero records": {mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[numRecordsPos:], 0)
			return recrc(b)
		}), ErrCorrupt},
		"unknown codec": {mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[attributesPos:], 6)
			return recrc(b)
		}), ErrCorrupt},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Validate(tc.b, d, Limits{}); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecompressionBomb(t *testing.T) {
	d := NewDecompressor()
	defer d.Close()
	rs := []Record{{Value: make([]byte, 1<<20)}}
	for _, c := range codecs[1:] {
		b, err := Build(BatchOptions{Compression: c, ProducerID: NoProducer}, rs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Validate(b, d, Limits{MaxDecompressedBytes: 64 << 10}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: got %v for a payload over the limit", c, err)
		}
		if _, err := Validate(b, d, Limits{MaxDecompressedBytes: 2 << 20}); err != nil {
			t.Fatalf("%s: %v under the limit", c, err)
		}
	}
}

func TestXerialSnappy(t *testing.T) {
	d := NewDecompressor()
	defer d.Close()
	plain := bytes.Repeat([]byte("weir xerial "), 5000)
	var framed []byte
	framed = append(framed, xerialMagic...)
	framed = binary.BigEndian.AppendUint32(framed, 1)
	framed = binary.BigEndian.AppendUint32(framed, 1)
	for rest := plain; len(rest) > 0; {
		n := min(len(rest), 32<<10)
		blk := s2.EncodeSnappy(nil, rest[:n])
		framed = binary.BigEndian.AppendUint32(framed, uint32(len(blk)))
		framed = append(framed, blk...)
		rest = rest[n:]
	}
	out, err := d.Decompress(CompressionSnappy, framed, 1<<20)
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("xerial decode: err=%v equal=%v", err, bytes.Equal(out, plain))
	}
}

func TestSetFields(t *testing.T) {
	b, _ := Build(BatchOptions{ProducerID: NoProducer, FirstTimestamp: 5}, sampleRecords(2))
	SetBaseOffset(b, 99)
	SetLeaderEpoch(b, 4)
	if _, err := CheckFrame(b); err != nil {
		t.Fatalf("offset/epoch rewrite broke the frame: %v", err)
	}
	SetLogAppendTime(b, 12345)
	h, err := CheckFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 99 || h.LeaderEpoch != 4 || !h.LogAppendTime() || h.MaxTimestamp != 12345 || PeekLastOffset(b) != 100 {
		t.Fatalf("header %+v", h)
	}
}

func TestIncSequence(t *testing.T) {
	for _, tc := range []struct{ seq, n, want int32 }{
		{0, 1, 1}, {5, 4, 9}, {1<<31 - 1, 1, 0}, {1<<31 - 2, 3, 1},
	} {
		if got := IncSequence(tc.seq, tc.n); got != tc.want {
			t.Errorf("IncSequence(%d,%d)=%d want %d", tc.seq, tc.n, got, tc.want)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, c := range codecs {
		b, _ := Build(BatchOptions{Compression: c, ProducerID: NoProducer}, sampleRecords(3))
		f.Add(b)
	}
	d := NewDecompressor()
	defer d.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Validate(b, d, Limits{MaxDecompressedBytes: 1 << 20})
		if err != nil {
			return
		}
		// Anything Validate accepts must iterate cleanly to the same count.
		var n int32
		if err := ForEachRecord(b, d, func(*Header, *Record) error { n++; return nil }); err != nil || n != h.NumRecords {
			t.Fatalf("validated batch iterates to %d records (want %d): %v", n, h.NumRecords, err)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	d := NewDecompressor()
	defer d.Close()
	rs := make([]Record, 16)
	for i := range rs {
		rs[i] = Record{Value: bytes.Repeat([]byte("x"), 1024)}
	}
	for _, c := range codecs {
		batch, _ := Build(BatchOptions{Compression: c, ProducerID: NoProducer}, rs)
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(16 * 1024)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Validate(batch, d, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestBatchBuilder(t *testing.T) {
	var bb BatchBuilder
	if bb.Finish() != nil {
		t.Fatal("an empty builder made a batch")
	}
	want := sampleRecords(30)
	for round := range 2 { // the builder starts over after Finish
		for i, r := range want {
			ts := int64(5000 + 7*i - 3*(i%4)) // not in order
			bb.Add(ts, r.Key, r.Value, r.Headers)
		}
		b := bb.Finish()
		h, err := Validate(b, nil, Limits{})
		if err != nil {
			t.Fatalf("round %d: validate: %v", round, err)
		}
		if h.NumRecords != 30 || h.BaseOffset != 0 || h.LastOffset() != 29 || h.FirstTimestamp != 5000 || h.MaxTimestamp != 5000+7*29-3 || h.Idempotent() {
			t.Fatalf("round %d: header %+v", round, h)
		}
		i := 0
		err = ForEachRecord(b, nil, func(h *Header, r *Record) error {
			w := want[i]
			ts := h.FirstTimestamp + r.TimestampDelta
			if !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) || !bytes.Equal(r.Value, w.Value) || ts != int64(5000+7*i-3*(i%4)) || int(r.OffsetDelta) != i {
				return fmt.Errorf("record %d = %+v at %d", i, r, ts)
			}
			if len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != fmt.Sprint(i) {
				return fmt.Errorf("record %d headers %+v", i, r.Headers)
			}
			i++
			return nil
		})
		if err != nil || i != 30 {
			t.Fatalf("round %d: iterate: %v after %d records", round, err, i)
		}
	}
}

func TestReissue(t *testing.T) {
	d := NewDecompressor()
	defer d.Close()
	want := sampleRecords(10)
	for _, c := range codecs {
		b, err := Build(BatchOptions{BaseOffset: 70, LeaderEpoch: 3, FirstTimestamp: 1000, Compression: c, ProducerID: 9, ProducerEpoch: 2, BaseSequence: 5, Transactional: true}, want)
		if err != nil {
			t.Fatal(err)
		}
		out := Reissue(b)
		h, err := Validate(out, d, Limits{})
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if h.BaseOffset != 0 || h.Idempotent() || h.Transactional() || h.BaseSequence != -1 || h.Compression() != c || h.NumRecords != 10 || h.FirstTimestamp != 1000 {
			t.Fatalf("%v: header %+v", c, h)
		}
		i := 0
		if err := ForEachRecord(out, d, func(_ *Header, r *Record) error {
			if !bytes.Equal(r.Value, want[i].Value) {
				return fmt.Errorf("record %d", i)
			}
			i++
			return nil
		}); err != nil || i != 10 {
			t.Fatalf("%v: %v after %d", c, err, i)
		}
		if PeekBaseOffset(b) != 70 {
			t.Fatal("the input was modified")
		}
	}
}
