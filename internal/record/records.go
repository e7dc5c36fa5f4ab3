package record

import (
	"encoding/binary"
	"fmt"
)

// RecordHeader is a key/value header of a record.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is one decoded record of a batch. Key and Value alias the decoded
// buffer; nil means null.
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key            []byte
	Value          []byte
	Headers        []RecordHeader
}

// Decode parses a record body (after its length prefix) into r; the
// fields alias b.
func (r *Record) Decode(b []byte) error { return r.decode(b, true) }

// decode parses a record body (after its length). With keepHeaders false it
// only validates headers, so validation allocates nothing.
func (r *Record) decode(b []byte, keepHeaders bool) error {
	if len(b) < 1 {
		return corruptf("record is empty")
	}
	r.Attributes = int8(b[0])
	b = b[1:]
	var ok bool
	if r.TimestampDelta, b, ok = varlong(b); !ok {
		return corruptf("bad timestamp delta")
	}
	var od int64
	if od, b, ok = varlong(b); !ok || od != int64(int32(od)) {
		return corruptf("bad offset delta")
	}
	r.OffsetDelta = int32(od)
	if r.Key, b, ok = varbytes(b); !ok {
		return corruptf("bad key")
	}
	if r.Value, b, ok = varbytes(b); !ok {
		return corruptf("bad value")
	}
	var nh int64
	if nh, b, ok = varlong(b); !ok || nh < 0 || nh > int64(len(b)) {
		return corruptf("bad header count")
	}
	r.Headers = r.Headers[:0]
	for i := int64(0); i < nh; i++ {
		var k, v []byte
		if k, b, ok = varbytes(b); !ok || k == nil {
			return corruptf("bad header %d key", i)
		}
		if v, b, ok = varbytes(b); !ok {
			return corruptf("bad header %d value", i)
		}
		if keepHeaders {
			r.Headers = append(r.Headers, RecordHeader{Key: string(k), Value: v})
		}
	}
	if len(b) != 0 {
		return corruptf("%d bytes after record fields", len(b))
	}
	return nil
}

func varlong(b []byte) (int64, []byte, bool) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

// varbytes reads a varint length-prefixed byte string; length -1 is null.
func varbytes(b []byte) ([]byte, []byte, bool) {
	l, b, ok := varlong(b)
	if !ok || l < -1 || l > int64(len(b)) {
		return nil, b, false
	}
	if l == -1 {
		return nil, b, true
	}
	return b[:l:l], b[l:], true
}

// ForEachRecord decodes every record of the batch b (whole, validated or
// read back from a log) and calls fn with it. The Record passed to fn is
// reused between calls and its byte slices alias internal buffers, so fn must
// copy what it keeps.
func ForEachRecord(b []byte, d *Decompressor, fn func(h *Header, r *Record) error) error {
	h, err := ParseHeader(b)
	if err != nil {
		return err
	}
	if h.Size() > len(b) || h.Size() < HeaderSize {
		return corruptf("batch length %d does not fit %d bytes", h.Size(), len(b))
	}
	body := b[HeaderSize:h.Size()]
	if c := h.Compression(); c != CompressionNone {
		buf, err := d.Decompress(c, body, DefaultLimits.MaxDecompressedBytes)
		if err != nil {
			return err
		}
		defer d.Release(buf)
		body = buf
	}
	var r Record
	for i := int32(0); i < h.NumRecords; i++ {
		length, used := binary.Varint(body)
		if used <= 0 || length < 0 || length > int64(len(body)-used) {
			return corruptf("record %d: bad length", i)
		}
		if err := r.decode(body[used:used+int(length)], true); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		body = body[used+int(length):]
		if err := fn(&h, &r); err != nil {
			return err
		}
	}
	return nil
}

// appendRecord encodes one record (with its length prefix) onto dst.
func appendRecord(dst []byte, r *Record) []byte {
	return AppendRecord(dst, r.Attributes, r.TimestampDelta, r.OffsetDelta, r.Key, r.Value, r.Headers)
}

// AppendRecord encodes one record, length prefix first, onto dst. The
// length is worked out before anything is written, so the record is
// written once, in place.
func AppendRecord(dst []byte, attrs int8, tsDelta int64, offDelta int32, key, value []byte, headers []RecordHeader) []byte {
	n := 1 + varintLen(tsDelta) + varintLen(int64(offDelta)) + varbytesLen(key) + varbytesLen(value) + varintLen(int64(len(headers)))
	for _, h := range headers {
		n += varintLen(int64(len(h.Key))) + len(h.Key) + varbytesLen(h.Value)
	}
	dst = binary.AppendVarint(dst, int64(n))
	dst = append(dst, byte(attrs))
	dst = binary.AppendVarint(dst, tsDelta)
	dst = binary.AppendVarint(dst, int64(offDelta))
	dst = appendVarbytes(dst, key)
	dst = appendVarbytes(dst, value)
	dst = binary.AppendVarint(dst, int64(len(headers)))
	for _, h := range headers {
		dst = binary.AppendVarint(dst, int64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendVarbytes(dst, h.Value)
	}
	return dst
}

// varintLen is the size of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func varbytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendVarbytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}
