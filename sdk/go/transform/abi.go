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
	// flagRecordTable: the input frame holds a record table (the module
	// exports weir_record_table, so it always does).
	flagRecordTable = 2
	tableEntrySize  = 40
)

// tableEntry is one record table entry as the host lays it out: where
// the record's fields are in the records section, so that nothing is
// parsed here. Varint parsing is branchy code, and taken branches and
// calls are what WebAssembly compiled from Go pays most for.
type tableEntry struct {
	tsDelta  int64
	offDelta uint32
	keyAt    int32
	keyLen   int32 // -1: null
	valueAt  int32
	valueLen int32 // -1: null
	hdrsAt   int32 // the header count, then the headers
	hdrCount int32
	end      int32 // the end of the record
}

// The table is read in place, so the struct must be the ABI's 40 bytes.
var _ [tableEntrySize - unsafe.Sizeof(tableEntry{})]struct{}
var _ [unsafe.Sizeof(tableEntry{}) - tableEntrySize]struct{}

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
	emitFn  func(*Record)
	aligned []tableEntry
}

// process decodes an input frame, calls the registered function for each
// record and returns the output frame, valid until the next call.
func (p *processor) process(in []byte) ([]byte, error) {
	if len(in) < batchHeaderSize {
		return nil, frameErr("batch header of %d bytes", len(in))
	}
	le := binary.LittleEndian
	if v := le.Uint32(in); v != abiVersion {
		return nil, frameErr("batch version %d", v)
	}
	if le.Uint32(in[4:])&flagRecordTable == 0 {
		return nil, frameErr("no record table")
	}
	p.baseOffset = int64(le.Uint64(in[8:]))
	p.baseTS = int64(le.Uint64(in[16:]))
	count := int32(le.Uint32(in[32:]))
	body := in[batchHeaderSize:]
	if count < 0 || int64(count)*tableEntrySize > int64(len(body)) {
		return nil, frameErr("record count %d", count)
	}
	tab := p.table(body[:int(count)*tableEntrySize], int(count))
	recs := body[int(count)*tableEntrySize:]
	p.out = p.out[:0]
	if p.emitFn == nil {
		p.emitFn = p.emit
	}
	p.cur = &p.rec
	var bits []byte
	if filter != nil {
		bits = p.keepSet(len(tab))
	}
	if k, err := p.records(tab, recs, bits); err != nil {
		return nil, fmt.Errorf("record %d: %w", k, err)
	}
	return p.out, nil
}

// records runs the registered function over the table's records (a
// filter setting bits). It is kept small: Go compiles a function to
// WebAssembly as one loop over its blocks, and a taken branch costs more
// the more the function holds.
func (p *processor) records(tab []tableEntry, recs, bits []byte) (int, error) {
	r, n := &p.rec, uint64(len(recs))
	for k := range tab {
		e := &tab[k]
		if e.hdrCount == 0 && e.valueLen >= 0 && uint64(uint32(e.valueAt))+uint64(e.valueLen) <= n &&
			(e.keyLen < 0 || uint64(uint32(e.keyAt))+uint64(e.keyLen) <= n) {
			// The common case, a value, maybe a key, no headers,
			// here rather than in a call.
			r.Timestamp, r.Offset, r.Output = p.baseTS+e.tsDelta, p.baseOffset+int64(e.offDelta), 0
			r.Key = nil
			if e.keyLen >= 0 {
				r.Key = recs[e.keyAt : e.keyAt+e.keyLen : e.keyAt+e.keyLen]
			}
			r.Value = recs[e.valueAt : e.valueAt+e.valueLen : e.valueAt+e.valueLen]
			r.Headers = p.hdrs[:0]
		} else if err := p.fill(e, recs); err != nil {
			return k, err
		}
		switch {
		case bits != nil:
			if filter(*r) {
				bits[k>>3] |= 1 << (k & 7)
			}
		case mapFn != nil:
			// Called directly rather than through handler and
			// emit's func value.
			if out, err := mapFn(*r); err != nil {
				p.emitError(err)
			} else {
				p.emit(&out)
			}
		default:
			if err := handler(r, p.emitFn); err != nil {
				p.emitError(err)
			}
		}
	}
	return 0, nil
}

var errTable = frameErr("record table entry out of range")

// fill sets p.rec to the record e locates in recs. The checks keep a bad
// table an error rather than a panic.
func (p *processor) fill(e *tableEntry, recs []byte) error {
	r, n := &p.rec, uint64(len(recs))
	r.Timestamp, r.Offset, r.Output = p.baseTS+e.tsDelta, p.baseOffset+int64(e.offDelta), 0
	r.Key, r.Value = nil, nil
	if e.keyLen >= 0 {
		if uint64(uint32(e.keyAt))+uint64(e.keyLen) > n {
			return errTable
		}
		r.Key = recs[e.keyAt : e.keyAt+e.keyLen : e.keyAt+e.keyLen]
	}
	if e.valueLen >= 0 {
		if uint64(uint32(e.valueAt))+uint64(e.valueLen) > n {
			return errTable
		}
		r.Value = recs[e.valueAt : e.valueAt+e.valueLen : e.valueAt+e.valueLen]
	}
	p.hdrs = p.hdrs[:0]
	r.Headers = p.hdrs
	if e.hdrCount == 0 {
		return nil
	}
	if uint32(e.hdrsAt) > uint32(e.end) || uint64(uint32(e.end)) > n {
		return errTable
	}
	_, b, ok := varint(recs[e.hdrsAt:e.end]) // the count, known already
	if !ok {
		return errTable
	}
	return p.decodeHeaders(b, int64(e.hdrCount))
}

// table views b as the record table of n entries. In WebAssembly the
// frame is 8-byte aligned; elsewhere (tests) it may need a copy.
func (p *processor) table(b []byte, n int) []tableEntry {
	if n == 0 {
		return nil
	}
	if uintptr(unsafe.Pointer(&b[0]))%8 == 0 {
		return unsafe.Slice((*tableEntry)(unsafe.Pointer(&b[0])), n)
	}
	if cap(p.aligned) < n {
		p.aligned = make([]tableEntry, n)
	}
	p.aligned = p.aligned[:n]
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&p.aligned[0])), len(b)), b)
	return p.aligned
}

// keepSet starts the output frame with a keep-set entry for n records
// (OnFilter's answer: the host takes the kept records from its input)
// and returns its bitmap, cleared, for the records' bits.
func (p *processor) keepSet(n int) []byte {
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
	p.out = b
	return bits
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

// emit appends an output record tied to the current input record. The
// entry's length, source offset delta and key and value lengths are
// written as 5-byte varints and its timestamp delta as a 10-byte one,
// longer than need be (the ABI allows it) but with no branches: in
// WebAssembly compiled from Go, every taken branch and every call costs
// more than the bytes do.
func (p *processor) emit(r *Record) {
	if uint(r.Output) >= errorOutput {
		p.emitError(fmt.Errorf("output %d out of range", r.Output))
		return
	}
	key, value := r.Key, r.Value
	n := 1 + 5 + 10 + 5 + len(key) + 5 + len(value) + 1
	if len(r.Headers) != 0 {
		n += varintLen(int64(len(r.Headers))) - 1
		for _, h := range r.Headers {
			n += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
		}
	}
	// Written by index into room made once: in WebAssembly every append
	// is a call.
	start := len(p.out)
	if cap(p.out)-start < 5+n {
		grown := make([]byte, start, 2*cap(p.out)+5+n)
		copy(grown, p.out)
		p.out = grown
	}
	b := p.out[start : start+5+n]
	put5(b, int64(n))
	b[5] = byte(r.Output)
	put5(b[6:], p.cur.Offset-p.baseOffset)
	put10(b[11:], r.Timestamp-p.baseTS)
	put5(b[21:], nullableLen(key))
	i := 26 + copy(b[26:], key)
	put5(b[i:], nullableLen(value))
	i += 5
	i += copy(b[i:], value)
	if len(r.Headers) == 0 {
		b[i] = 0
	} else {
		i = putVarint(b, i, int64(len(r.Headers)))
		for _, h := range r.Headers {
			i = putVarint(b, i, int64(len(h.Key)))
			i += copy(b[i:], h.Key)
			i = putBytes(b, i, h.Value)
		}
	}
	p.out = p.out[:start+5+n]
}

// nullableLen is the length Kafka records give b: -1 for null.
func nullableLen(b []byte) int64 {
	if b == nil {
		return -1
	}
	return int64(len(b))
}

// put5 writes v (|v| < 2^34) as a 5-byte zigzag varint.
func put5(b []byte, v int64) {
	u := uint64(v<<1) ^ uint64(v>>63)
	_ = b[4]
	b[0] = byte(u) | 0x80
	b[1] = byte(u>>7) | 0x80
	b[2] = byte(u>>14) | 0x80
	b[3] = byte(u>>21) | 0x80
	b[4] = byte(u >> 28)
}

// put10 writes v as a 10-byte zigzag varint.
func put10(b []byte, v int64) {
	u := uint64(v<<1) ^ uint64(v>>63)
	_ = b[9] // unrolled: a loop's every turn is a taken branch
	b[0] = byte(u) | 0x80
	b[1] = byte(u>>7) | 0x80
	b[2] = byte(u>>14) | 0x80
	b[3] = byte(u>>21) | 0x80
	b[4] = byte(u>>28) | 0x80
	b[5] = byte(u>>35) | 0x80
	b[6] = byte(u>>42) | 0x80
	b[7] = byte(u>>49) | 0x80
	b[8] = byte(u>>56) | 0x80
	b[9] = byte(u >> 63)
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
