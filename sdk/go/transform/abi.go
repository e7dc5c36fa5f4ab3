package transform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"unsafe"
)

// aliasString views b as a string without copying.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// The byte layouts of docs/format/transform-abi.md, independent of
// WebAssembly so they can be tested natively.

const (
	abiVersion      = 1
	batchHeaderSize = 40
	// errorOutput marks an output entry that reports a failed input
	// record instead of carrying a record.
	errorOutput = 0xFF
	// keepSetOutput marks an entry that is a bitmap of the input records
	// sent on as they are.
	keepSetOutput = 0xFD
)

var errFrame = errors.New("malformed frame")

func frameErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errFrame}, args...)...)
}

// configure decodes the init frame into config.
func configure(b []byte) (Kind, error) {
	var c Config
	v, b, ok := uvarint(b)
	if !ok || v != abiVersion {
		return 0, frameErr("init version %d", v)
	}
	var s []byte
	if s, b, ok = str(b); !ok {
		return 0, frameErr("input topic")
	}
	c.Input = string(s)
	var n uint64
	if n, b, ok = uvarint(b); !ok || n > uint64(len(b)) {
		return 0, frameErr("output count")
	}
	for range n {
		if s, b, ok = str(b); !ok {
			return 0, frameErr("output topic")
		}
		c.Outputs = append(c.Outputs, string(s))
	}
	if n, b, ok = uvarint(b); !ok || n > uint64(len(b)) {
		return 0, frameErr("parameter count")
	}
	c.Params = make(map[string]string, n)
	for range n {
		var k, v []byte
		if k, b, ok = str(b); !ok {
			return 0, frameErr("parameter name")
		}
		if v, b, ok = str(b); !ok {
			return 0, frameErr("parameter value")
		}
		c.Params[string(k)] = string(v)
	}
	if len(b) != 0 {
		return 0, frameErr("%d bytes after the init frame", len(b))
	}
	if handler == nil {
		return 0, errors.New("the module registered no transform function (call transform.OnMap or another On... from init)")
	}
	config = c
	return kind, nil
}

// processor runs the registered function over batches, reusing its
// buffers from call to call.
type processor struct {
	out  []byte
	rec  Record
	hdrs []Header
	// base is the batch's base offset and timestamp; cur the input
	// record being processed.
	baseOffset, baseTS int64
	cur                *Record
	// emitFn is p.emit as a func value, made once: a method value
	// made per record would allocate per record.
	emitFn func(*Record)
}

// process decodes an input frame, calls the handler for each record and
// returns the output frame, valid until the next call.
func (p *processor) process(in []byte) ([]byte, error) {
	if len(in) < batchHeaderSize {
		return nil, frameErr("batch header of %d bytes", len(in))
	}
	le := binary.LittleEndian
	if v := le.Uint32(in); v != abiVersion {
		return nil, frameErr("batch version %d", v)
	}
	p.baseOffset = int64(le.Uint64(in[8:]))
	p.baseTS = int64(le.Uint64(in[16:]))
	count := int32(le.Uint32(in[32:]))
	body := in[batchHeaderSize:]
	p.out = p.out[:0]
	if filter != nil {
		return p.filterBatch(body, count)
	}
	for i := int32(0); i < count; i++ {
		length, n := viSlow(body, 0)
		if n <= 0 || length < 0 || length > int64(len(body)-n) {
			return nil, frameErr("record %d length", i)
		}
		if err := p.decode(body[n : n+int(length)]); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		body = body[n+int(length):]
		p.cur = &p.rec
		if p.emitFn == nil {
			p.emitFn = p.emit
		}
		if err := handler(&p.rec, p.emitFn); err != nil {
			p.emitError(err)
		}
	}
	if len(body) != 0 {
		return nil, frameErr("%d bytes after %d records", len(body), count)
	}
	return p.out, nil
}

// decode parses one Kafka v2 record body into p.rec. Short varints are
// read in place, through v2, which Go inlines: in WebAssembly a call costs
// more than the few instructions most fields take.
func (p *processor) decode(b []byte) error {
	if len(b) < 1 {
		return frameErr("empty record")
	}
	tsDelta, i := v2(b, 1) // b[0]: attributes, unused
	if i < 0 {
		if tsDelta, i = viSlow(b, 1); i < 0 {
			return frameErr("timestamp delta")
		}
	}
	offDelta, j := v2(b, i)
	if j < 0 {
		if offDelta, j = viSlow(b, i); j < 0 {
			return frameErr("offset delta")
		}
	}
	i = j
	r := &p.rec
	r.Timestamp, r.Offset, r.Output = p.baseTS+tsDelta, p.baseOffset+offDelta, 0
	l, j := v2(b, i)
	if j < 0 {
		l, j = viSlow(b, i)
	}
	i = j
	switch {
	case i < 0 || l < -1 || l > int64(len(b)-i):
		return frameErr("key")
	case l < 0:
		r.Key = nil
	default:
		r.Key = b[i : i+int(l) : i+int(l)]
		i += int(l)
	}
	if l, j = v2(b, i); j < 0 {
		l, j = viSlow(b, i)
	}
	i = j
	switch {
	case i < 0 || l < -1 || l > int64(len(b)-i):
		return frameErr("value")
	case l < 0:
		r.Value = nil
	default:
		r.Value = b[i : i+int(l) : i+int(l)]
		i += int(l)
	}
	p.hdrs = p.hdrs[:0]
	r.Headers = p.hdrs
	if i == len(b)-1 && b[i] == 0 { // no headers: the common case
		return nil
	}
	nh, i := viSlow(b, i)
	if i < 0 || nh < 0 || nh > int64(len(b)-i) {
		return frameErr("header count")
	}
	return p.decodeHeaders(b[i:], nh)
}

// decodeHeaders parses a record's nh headers, the last thing in it.
func (p *processor) decodeHeaders(b []byte, nh int64) error {
	var ok bool
	for range nh {
		var k, v []byte
		if k, b, ok = nbytes(b); !ok || k == nil {
			return frameErr("header key")
		}
		if v, b, ok = nbytes(b); !ok {
			return frameErr("header value")
		}
		// The key aliases the batch like every other field: valid
		// during the call only.
		p.hdrs = append(p.hdrs, Header{Key: aliasString(k), Value: v})
	}
	p.rec.Headers = p.hdrs
	if len(b) != 0 {
		return frameErr("%d bytes after the record", len(b))
	}
	return nil
}

// v2 reads a one- or two-byte zigzag varint at b[i:] (lengths under 8 KiB,
// deltas, counts) and returns it with the index after it; a negative index
// if there is none there (a longer varint, or fewer than two bytes left),
// for viSlow to read. Go inlines it.
func v2(b []byte, i int) (int64, int) {
	if i+1 < len(b) {
		c, d := b[i], b[i+1]
		if c < 0x80 {
			return int64(c>>1) ^ -int64(c&1), i + 1
		}
		if d < 0x80 {
			x := uint64(c&0x7f) | uint64(d)<<7
			return int64(x>>1) ^ -int64(x&1), i + 2
		}
	}
	return 0, -1
}

// viSlow reads the zigzag varint at b[i:] and returns it with the index
// after it, or a negative index if it is malformed.
func viSlow(b []byte, i int) (int64, int) {
	if i < 0 || i >= len(b) {
		return 0, -1
	}
	if c := b[i]; c < 0x80 {
		return int64(c>>1) ^ -int64(c&1), i + 1
	} else if i+1 < len(b) && b[i+1] < 0x80 { // two bytes: most lengths
		x := int64(c&0x7f) | int64(b[i+1])<<7
		return x>>1 ^ -(x & 1), i + 2
	}
	v, n := binary.Varint(b[i:])
	if n <= 0 {
		return 0, -1
	}
	return v, i + n
}

// emit appends an output record tied to the current input record. The
// entry's length is worked out first, so it is written in place.
func (p *processor) emit(r *Record) {
	if r.Output < 0 || r.Output >= errorOutput {
		p.emitError(fmt.Errorf("output %d out of range", r.Output))
		return
	}
	delta, ts := p.cur.Offset-p.baseOffset, r.Timestamp-p.baseTS
	n := 1 + varintLen(delta) + varintLen(ts) + bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
	for _, h := range r.Headers {
		n += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	// Written by index into room made once: in WebAssembly every append
	// is a call, and calls are what Go modules pay most for.
	start := len(p.out)
	need := n + varintLen(int64(n))
	if cap(p.out)-start < need {
		grown := make([]byte, start, 2*cap(p.out)+need)
		copy(grown, p.out)
		p.out = grown
	}
	b := p.out[:start+need]
	i := putVarint(b, start, int64(n))
	b[i] = byte(r.Output)
	i = putVarint(b, i+1, delta)
	i = putVarint(b, i, ts)
	i = putBytes(b, i, r.Key)
	i = putBytes(b, i, r.Value)
	i = putVarint(b, i, int64(len(r.Headers)))
	for _, h := range r.Headers {
		i = putVarint(b, i, int64(len(h.Key)))
		i += copy(b[i:], h.Key)
		i = putBytes(b, i, h.Value)
	}
	p.out = b[:i]
}

// filterBatch runs OnFilter's function over the records and answers with
// one keep-set entry: a bit per input record, set if it is kept. The host
// takes the kept records from its input; nothing is copied here.
func (p *processor) filterBatch(body []byte, count int32) ([]byte, error) {
	if count < 0 || int(count) > len(body) {
		return nil, frameErr("record count %d", count)
	}
	n := int(count)
	size := 1 + varintLen(int64(n)) + (n+7)/8
	need := varintLen(int64(size)) + size
	if cap(p.out) < need {
		p.out = make([]byte, 0, 2*need)
	}
	b := p.out[:need]
	i := putVarint(b, 0, int64(size))
	b[i] = keepSetOutput
	i = putVarint(b, i+1, int64(n))
	bits := b[i:]
	clear(bits)
	for k := 0; k < n; k++ {
		length, m := v2(body, 0)
		if m < 0 {
			length, m = viSlow(body, 0)
		}
		if m <= 0 || length < 0 || length > int64(len(body)-m) {
			return nil, frameErr("record %d length", k)
		}
		if err := p.decode(body[m : m+int(length)]); err != nil {
			return nil, fmt.Errorf("record %d: %w", k, err)
		}
		body = body[m+int(length):]
		if filter(p.rec) {
			bits[k>>3] |= 1 << (k & 7)
		}
	}
	if len(body) != 0 {
		return nil, frameErr("%d bytes after %d records", len(body), n)
	}
	p.out = b
	return b, nil
}

// putVarint writes v as a zigzag varint at b[i:] and returns the index
// after it.
func putVarint(b []byte, i int, v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		b[i] = byte(u) | 0x80
		u >>= 7
		i++
	}
	b[i] = byte(u)
	return i + 1
}

// putBytes writes a nullable byte string at b[i:].
func putBytes(b []byte, i int, v []byte) int {
	if v == nil {
		b[i] = 1 // zigzag -1
		return i + 1
	}
	i = putVarint(b, i, int64(len(v)))
	return i + copy(b[i:], v)
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

// bytesLen is the encoded size of a nullable byte string.
func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

// emitError appends an entry saying the current input record failed.
func (p *processor) emitError(err error) {
	start := len(p.out)
	p.out = append(p.out, 0, 0, 0, 0, 0)
	body := len(p.out)
	p.out = append(p.out, errorOutput)
	p.out = binary.AppendVarint(p.out, p.cur.Offset-p.baseOffset)
	p.out = binary.AppendVarint(p.out, 0)
	p.out = appendBytes(p.out, nil)
	p.out = appendBytes(p.out, []byte(err.Error()))
	p.out = binary.AppendVarint(p.out, 0)
	p.fixLength(start, body)
}

// fixLength writes the varint length of the entry that starts at body in
// the 5 bytes reserved at start, moving the body down if the varint is
// shorter.
func (p *processor) fixLength(start, body int) {
	n := len(p.out) - body
	if n < 64 {
		p.out[start] = byte(n << 1)
		copy(p.out[start+1:], p.out[body:])
		p.out = p.out[:start+1+n]
		return
	}
	var tmp [binary.MaxVarintLen64]byte
	l := binary.PutVarint(tmp[:], int64(n))
	copy(p.out[start:], tmp[:l])
	if l < 5 {
		copy(p.out[start+l:], p.out[body:])
		p.out = p.out[:start+l+n]
	}
}

// snapshot encodes the aggregate state, keys in order.
func snapshot(dst []byte) []byte {
	keys := make([]string, 0, len(state))
	for k := range state {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = binary.AppendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
		dst = binary.AppendUvarint(dst, uint64(len(state[k])))
		dst = append(dst, state[k]...)
	}
	return dst
}

// restore replaces the aggregate state with a snapshot.
func restore(b []byte) error {
	n, b, ok := uvarint(b)
	if !ok || n > uint64(len(b)) {
		return frameErr("state entry count")
	}
	s := make(mapState, n)
	for range n {
		var k, v []byte
		if k, b, ok = str(b); !ok {
			return frameErr("state key")
		}
		if v, b, ok = str(b); !ok {
			return frameErr("state value")
		}
		s.Set(k, v)
	}
	if len(b) != 0 {
		return frameErr("%d bytes after the state", len(b))
	}
	clear(state)
	for k, v := range s {
		state[k] = v
	}
	return nil
}

func uvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

func varint(b []byte) (int64, []byte, bool) {
	if len(b) > 0 && b[0] < 0x80 { // one byte: the common case, kept inline
		x := int64(b[0])
		return x>>1 ^ -(x & 1), b[1:], true
	}
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

// appendVarint appends a zigzag varint, one byte inline for small values.
func appendVarint(dst []byte, v int64) []byte {
	if v >= -64 && v < 64 {
		return append(dst, byte(uint64(v<<1)^uint64(v>>63)))
	}
	return binary.AppendVarint(dst, v)
}

// str reads a uvarint-length-prefixed string.
func str(b []byte) ([]byte, []byte, bool) {
	l, b, ok := uvarint(b)
	if !ok || l > uint64(len(b)) {
		return nil, b, false
	}
	return b[:l:l], b[l:], true
}

// nbytes reads Kafka's zigzag-varint-length-prefixed bytes; -1 is null.
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

func appendBytes(dst, v []byte) []byte {
	if v == nil {
		return append(dst, 1) // zigzag -1
	}
	dst = appendVarint(dst, int64(len(v)))
	return append(dst, v...)
}
