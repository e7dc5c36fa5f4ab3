package transform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/weir-dev/weir/internal/record"
)

// The byte layouts of the host ABI; docs/format/transform-abi.md is the
// reference.

const (
	abiVersion      = 1
	batchHeaderSize = 40
	errorOutput     = 0xFF
	keepOutput      = 0xFE
	keepSetOutput   = 0xFD
)

// ErrBadOutput says a module returned bytes that do not decode as an
// output frame.
var ErrBadOutput = errors.New("module returned a malformed output frame")

// Config is what an instance is initialized with.
type Config struct {
	Input   string
	Outputs []string
	Params  map[string]string
}

// appendInitFrame encodes c as the init frame.
func appendInitFrame(dst []byte, c Config) []byte {
	dst = binary.AppendUvarint(dst, abiVersion)
	dst = appendStr(dst, c.Input)
	dst = binary.AppendUvarint(dst, uint64(len(c.Outputs)))
	for _, o := range c.Outputs {
		dst = appendStr(dst, o)
	}
	names := make([]string, 0, len(c.Params))
	for k := range c.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	dst = binary.AppendUvarint(dst, uint64(len(names)))
	for _, k := range names {
		dst = appendStr(dst, k)
		dst = appendStr(dst, c.Params[k])
	}
	return dst
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// BatchInfo is the part of a Kafka batch header the input frame carries.
type BatchInfo struct {
	BaseOffset    int64
	BaseTimestamp int64
	MaxTimestamp  int64
	NumRecords    int32
	// LastOffset is the batch's last offset (its records may span more
	// offsets than they number, after compaction).
	LastOffset    int64
	LogAppendTime bool
}

// appendInputFrame encodes the part of an input frame that comes before
// the records section (which follows as it is): the fixed header, then,
// if table, the record table of records.
func appendInputFrame(dst []byte, info BatchInfo, records []byte, table bool) ([]byte, error) {
	var h [batchHeaderSize]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], abiVersion)
	var flags uint32
	if info.LogAppendTime {
		flags |= 1
	}
	if table {
		flags |= flagRecordTable
	}
	le.PutUint32(h[4:], flags)
	le.PutUint64(h[8:], uint64(info.BaseOffset))
	le.PutUint64(h[16:], uint64(info.BaseTimestamp))
	le.PutUint64(h[24:], uint64(info.MaxTimestamp))
	le.PutUint32(h[32:], uint32(info.NumRecords))
	dst = append(dst, h[:]...)
	if !table {
		return dst, nil
	}
	return appendRecordTable(dst, records, info.NumRecords)
}

// The record table (docs/format/transform-abi.md): one fixed-size entry
// per input record with its fields already located, for modules that
// export recordTableMarker. It spares a module the varint parsing, which
// costs far more in WebAssembly (above all in Go's) than here.
const (
	recordTableMarker = "weir_record_table"
	flagRecordTable   = 2
	tableEntrySize    = 40
	tableKeyLen       = 16 // where an entry holds the key's length
)

// appendRecordTable appends the table of the n records in body. Positions
// are relative to the start of the records section.
func appendRecordTable(dst, body []byte, n int32) ([]byte, error) {
	le := binary.LittleEndian
	pos := 0
	for k := int32(0); k < n; k++ {
		l, at := varintAt(body, pos)
		if at < 0 || l < 1 || l > int64(len(body)-at) {
			return dst, fmt.Errorf("%w: record %d length", record.ErrCorrupt, k)
		}
		end := at + int(l)
		rec := body[:end] // the record's fields, read by position
		var e [tableEntrySize]byte
		tsDelta, i := varintAt(rec, at+1) // after the attributes
		offDelta, i := varintAt(rec, i)
		if i < 0 || offDelta < 0 || offDelta > 1<<31-1 {
			return dst, fmt.Errorf("%w: record %d deltas", record.ErrCorrupt, k)
		}
		le.PutUint64(e[0:], uint64(tsDelta))
		le.PutUint32(e[8:], uint32(offDelta))
		for f := 0; f < 2; f++ { // key, then value
			fl, j := varintAt(rec, i)
			if j < 0 || fl < -1 || fl > int64(end-j) {
				return dst, fmt.Errorf("%w: record %d field %d", record.ErrCorrupt, k, f)
			}
			le.PutUint32(e[12+8*f:], uint32(j))
			le.PutUint32(e[tableKeyLen+8*f:], uint32(int32(fl)))
			i = j + int(max(fl, 0))
		}
		nh, j := varintAt(rec, i)
		if j < 0 || nh < 0 || nh > int64(end-j) {
			return dst, fmt.Errorf("%w: record %d header count", record.ErrCorrupt, k)
		}
		le.PutUint32(e[28:], uint32(i))
		le.PutUint32(e[32:], uint32(nh))
		le.PutUint32(e[36:], uint32(end))
		dst = append(dst, e[:]...)
		pos = end
	}
	if pos != len(body) {
		return dst, fmt.Errorf("%w: %d bytes after %d records", record.ErrCorrupt, len(body)-pos, n)
	}
	return dst, nil
}

// varintAt reads the zigzag varint at b[i:] and returns it with the index
// after it, or a negative index if there is none. One- and two-byte
// varints, nearly all of a record's, take no loop.
func varintAt(b []byte, i int) (int64, int) {
	if i >= 0 && i+1 < len(b) {
		if c := b[i]; c < 0x80 {
			return int64(c>>1) ^ -int64(c&1), i + 1
		} else if d := b[i+1]; d < 0x80 {
			x := uint64(c&0x7f) | uint64(d)<<7
			return int64(x>>1) ^ -int64(x&1), i + 2
		}
	}
	if i < 0 || i >= len(b) {
		return 0, -1
	}
	v, n := binary.Varint(b[i:])
	if n <= 0 {
		return 0, -1
	}
	return v, i + n
}

// Output is one entry of an output frame: a record for output topic
// Output, or (Err set) the report that the input record at SourceOffset
// failed. Key, Value and header values alias the module's output and are
// valid until the instance's next call.
type Output struct {
	Output       int
	SourceOffset int64
	Timestamp    int64
	Key          []byte
	Value        []byte
	Headers      []record.RecordHeader
	Err          string
	// Kept: the input record sent on unchanged (a keep entry).
	Kept bool
	// ref: a keep entry not resolved yet (Instance.ResolveKept).
	ref bool
}

// decodeOutputInto parses an output frame from a batch of numRecords
// records with the given base offset and timestamp, appending to dst.
// nOutputs bounds the output index and [base, last] the source offsets; in
// is the input's records section. Keep entries come out as references
// (Kept, with Output and SourceOffset) for resolveKept to fill in. b is
// untrusted (the module wrote it). Every output's headers are kept in one
// slice, hdrs, reused from call to call.
func decodeOutputInto(dst []Output, hdrs []record.RecordHeader, b, in []byte, baseOffset, baseTS, lastOffset int64, numRecords, nOutputs int) ([]Output, []record.RecordHeader, error) {
	hdrs = hdrs[:0]
	if l, n := binary.Varint(b); n > 0 && l > 0 && int64(len(b)-n) == l && b[n] == keepSetOutput {
		dst, err := decodeKeepSet(dst, b[n+1:], in, baseOffset, lastOffset, numRecords)
		return dst, hdrs, err
	}
	// Header slices are cut from hdrs once decoding is done, as hdrs may
	// grow (and move) meanwhile.
	type span struct{ from, to int }
	var spans []span
	for len(b) > 0 {
		l, n := binary.Varint(b)
		if n <= 0 || l < 1 || l > int64(len(b)-n) {
			return dst, hdrs, fmt.Errorf("%w: entry length", ErrBadOutput)
		}
		e := b[n : n+int(l)]
		b = b[n+int(l):]
		var o Output
		idx := int(e[0])
		e = e[1:]
		var ok bool
		var delta, ts int64
		if delta, e, ok = varint(e); !ok || delta < 0 || delta > lastOffset-baseOffset {
			return dst, hdrs, fmt.Errorf("%w: source offset delta %d outside the batch", ErrBadOutput, delta)
		}
		o.SourceOffset = baseOffset + delta
		if idx == keepOutput {
			if len(e) != 1 || int(e[0]) >= max(nOutputs, 1) {
				return dst, hdrs, fmt.Errorf("%w: keep entry", ErrBadOutput)
			}
			if prev := len(dst) - 1; prev >= 0 && dst[prev].SourceOffset > o.SourceOffset {
				return dst, hdrs, fmt.Errorf("%w: keep entries out of order", ErrBadOutput)
			}
			o.Output, o.Kept, o.ref = int(e[0]), true, true
			dst = append(dst, o)
			spans = append(spans, span{len(hdrs), len(hdrs)})
			continue
		}
		if ts, e, ok = varint(e); !ok {
			return dst, hdrs, fmt.Errorf("%w: timestamp", ErrBadOutput)
		}
		o.Timestamp = baseTS + ts
		if o.Key, e, ok = nbytes(e); !ok {
			return dst, hdrs, fmt.Errorf("%w: key", ErrBadOutput)
		}
		if o.Value, e, ok = nbytes(e); !ok {
			return dst, hdrs, fmt.Errorf("%w: value", ErrBadOutput)
		}
		var nh int64
		from := len(hdrs)
		if nh, e, ok = varint(e); !ok || nh < 0 || nh > int64(len(e)) {
			return dst, hdrs, fmt.Errorf("%w: header count", ErrBadOutput)
		}
		for range nh {
			var k, v []byte
			if k, e, ok = nbytes(e); !ok || k == nil {
				return dst, hdrs, fmt.Errorf("%w: header key", ErrBadOutput)
			}
			if v, e, ok = nbytes(e); !ok {
				return dst, hdrs, fmt.Errorf("%w: header value", ErrBadOutput)
			}
			hdrs = append(hdrs, record.RecordHeader{Key: string(k), Value: v})
		}
		if len(e) != 0 {
			return dst, hdrs, fmt.Errorf("%w: %d bytes after an entry", ErrBadOutput, len(e))
		}
		switch {
		case idx == errorOutput:
			o.Err = string(o.Value)
			if o.Err == "" {
				o.Err = "record failed"
			}
			o.Key, o.Value, o.Headers = nil, nil, nil
		case idx >= max(nOutputs, 1):
			return dst, hdrs, fmt.Errorf("%w: output %d, but the transform has %d", ErrBadOutput, idx, max(nOutputs, 1))
		default:
			o.Output = idx
		}
		dst = append(dst, o)
		spans = append(spans, span{from, len(hdrs)})
	}
	for k, sp := range spans {
		if sp.to > sp.from && dst[len(dst)-len(spans)+k].Err == "" {
			dst[len(dst)-len(spans)+k].Headers = hdrs[sp.from:sp.to:sp.to]
		}
	}
	return dst, hdrs, nil
}

func varint(b []byte) (int64, []byte, bool) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

func nbytes(b []byte) ([]byte, []byte, bool) {
	l, b, ok := varint(b)
	if !ok || l < -1 || l > int64(len(b)) {
		return nil, b, false
	}
	if l == -1 {
		return nil, b, true
	}
	return b[:l:l], b[l:], true
}

// keepsAll reports whether output frame b is one keep-set entry keeping
// all n records (n > 0): what decodeKeepSet would turn into a reference to
// every record, for output 0.
func keepsAll(b []byte, n int) bool {
	l, m := binary.Varint(b)
	if n <= 0 || m <= 0 || l < 1 || int64(len(b)-m) != l || b[m] != keepSetOutput {
		return false
	}
	c, k := binary.Varint(b[m+1:])
	bits := b[m+1+max(k, 0):]
	if k <= 0 || c != int64(n) || len(bits) != (n+7)/8 {
		return false
	}
	full := bits[:n/8]
	for len(full) >= 8 {
		if binary.LittleEndian.Uint64(full) != ^uint64(0) {
			return false
		}
		full = full[8:]
	}
	for _, x := range full {
		if x != 0xFF {
			return false
		}
	}
	if r := n % 8; r != 0 {
		mask := byte(1)<<r - 1
		return bits[n/8]&mask == mask
	}
	return true
}

// decodeKeepSet reads a frame that is one keep-set entry: a bitmap of the
// input records sent on unchanged to the first output. The records are
// walked only if their offsets are not consecutive (a compacted batch).
func decodeKeepSet(dst []Output, e, in []byte, baseOffset, lastOffset int64, numRecords int) ([]Output, error) {
	n, e, ok := varint(e)
	if !ok || n != int64(numRecords) || int64(len(e)) != (n+7)/8 {
		return dst, fmt.Errorf("%w: keep set of %d records for a batch of %d", ErrBadOutput, n, numRecords)
	}
	dense := lastOffset-baseOffset+1 == n
	rest := in
	for k := 0; k < numRecords; k++ {
		kept := e[k>>3]&(1<<(k&7)) != 0
		offset := baseOffset + int64(k)
		if !dense {
			_, _, d, _, ok := recordFields(rest)
			l, m := binary.Varint(rest)
			if !ok || m <= 0 || l < 0 || l > int64(len(rest)-m) {
				return dst, fmt.Errorf("%w: input record %d", ErrBadOutput, k)
			}
			rest, offset = rest[m+int(l):], baseOffset+d
		}
		if kept {
			dst = append(dst, Output{SourceOffset: offset, Kept: true, ref: true})
		}
	}
	return dst, nil
}

// resolveKept fills in the keep entries decodeOutputInto left as
// references, from the input records in.
func resolveKept(outs []Output, hdrs []record.RecordHeader, in []byte, baseOffset, baseTS int64) ([]record.RecordHeader, error) {
	cursor := inputCursor{rest: in}
	for k := range outs {
		o := &outs[k]
		if !o.ref {
			continue
		}
		rec, ok := cursor.find(o.SourceOffset - baseOffset)
		if !ok {
			return hdrs, fmt.Errorf("%w: keep entry for offset %d, not in the input", ErrBadOutput, o.SourceOffset)
		}
		from := len(hdrs)
		hdrs = append(hdrs, rec.Headers...)
		o.Timestamp, o.Key, o.Value, o.ref = baseTS+rec.TimestampDelta, rec.Key, rec.Value, false
		if len(hdrs) > from {
			o.Headers = hdrs[from:len(hdrs):len(hdrs)]
		}
	}
	return hdrs, nil
}

// inputCursor finds input records by offset delta, moving forward only
// (keep entries come in offset order).
type inputCursor struct {
	rest []byte
	rec  record.Record
}

func (c *inputCursor) find(delta int64) (*record.Record, bool) {
	for len(c.rest) > 0 {
		l, n := binary.Varint(c.rest)
		if n <= 0 || l < 0 || l > int64(len(c.rest)-n) {
			return nil, false
		}
		body := c.rest[n : n+int(l)]
		c.rest = c.rest[n+int(l):]
		if err := c.rec.Decode(body); err != nil {
			return nil, false
		}
		switch d := int64(c.rec.OffsetDelta); {
		case d == delta:
			return &c.rec, true
		case d > delta:
			return nil, false
		}
	}
	return nil, false
}
