package record

import (
	"encoding/binary"
	"fmt"
)

// Limits bound the work Validate will do on untrusted input.
type Limits struct {
	// MaxDecompressedBytes caps the size a compressed batch may expand to.
	MaxDecompressedBytes int
}

// DefaultLimits are used when a zero Limits is passed.
var DefaultLimits = Limits{MaxDecompressedBytes: 256 << 20}

// Validate checks a batch sent by a producer before it may reach a log: the
// frame (length, magic, CRC), the attributes, and every record (decompressing
// when needed), so that nothing malformed is ever stored. b must hold exactly
// one batch. The decoder d is used for compressed batches and may be shared.
func Validate(b []byte, d *Decompressor, lim Limits) (Header, error) {
	h, err := CheckFrame(b)
	if err != nil {
		return h, err
	}
	if h.Attributes&^knownAttributeBitMask != 0 {
		return h, corruptf("unknown attribute bits %#x", h.Attributes)
	}
	if h.NumRecords <= 0 {
		return h, corruptf("batch has %d records", h.NumRecords)
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return h, corruptf("last offset delta %d does not match %d records", h.LastOffsetDelta, h.NumRecords)
	}
	records := b[HeaderSize:]
	if c := h.Compression(); c != CompressionNone {
		if lim.MaxDecompressedBytes <= 0 {
			lim = DefaultLimits
		}
		buf, err := d.Decompress(c, records, lim.MaxDecompressedBytes)
		if err != nil {
			return h, err
		}
		defer d.Release(buf)
		records = buf
	}
	if err := checkRecords(records, h.NumRecords); err != nil {
		return h, err
	}
	return h, nil
}

// checkRecords walks n records in b and checks that each is well formed, that
// offset deltas count up from zero and that nothing trails them.
func checkRecords(b []byte, n int32) error {
	for i := int32(0); i < n; i++ {
		length, used := binary.Varint(b)
		if used <= 0 || length < 0 || length > int64(len(b)-used) {
			return corruptf("record %d: bad length", i)
		}
		rec := b[used : used+int(length)]
		b = b[used+int(length):]
		var r Record
		if err := r.decode(rec, false); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		if r.OffsetDelta != i {
			return corruptf("record %d has offset delta %d", i, r.OffsetDelta)
		}
	}
	if len(b) != 0 {
		return corruptf("%d bytes after the last record", len(b))
	}
	return nil
}
