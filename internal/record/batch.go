// Package record understands Kafka record batches (magic v2): it parses and
// validates batch headers and records, rewrites the fields a broker owns
// (base offset, partition leader epoch, log-append time) and decompresses
// payloads. It does no I/O and is shared by the storage and protocol layers.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Field positions inside a v2 record batch header. The CRC covers everything
// from attributesPos to the end of the batch; the base offset, length and
// partition leader epoch are outside it so a broker can set them in place.
const (
	baseOffsetPos      = 0
	lengthPos          = 8
	leaderEpochPos     = 12
	magicPos           = 16
	crcPos             = 17
	attributesPos      = 21
	lastOffsetDeltaPos = 23
	firstTimestampPos  = 27
	maxTimestampPos    = 35
	producerIDPos      = 43
	producerEpochPos   = 51
	baseSequencePos    = 53
	numRecordsPos      = 57

	// HeaderSize is the size of a v2 batch header, including the first
	// record's position.
	HeaderSize = 61
	// LengthFieldEnd is the number of bytes before the batch length
	// counts: Size() == Length + LengthFieldEnd.
	LengthFieldEnd = 12
	// MagicV2 is the only batch format this package accepts.
	MagicV2 = 2
)

// Attribute bits of a v2 batch.
const (
	compressionMask       = 0x07
	timestampTypeBit      = 0x08
	transactionalBit      = 0x10
	controlBit            = 0x20
	deleteHorizonBit      = 0x40
	knownAttributeBitMask = compressionMask | timestampTypeBit | transactionalBit | controlBit | deleteHorizonBit
)

// Compression is a batch compression codec as numbered by Kafka.
type Compression uint8

// The compression codecs Kafka defines.
const (
	CompressionNone   Compression = 0
	CompressionGzip   Compression = 1
	CompressionSnappy Compression = 2
	CompressionLZ4    Compression = 3
	CompressionZstd   Compression = 4
)

func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionSnappy:
		return "snappy"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC32C of b, the checksum Kafka batches and Weir's own
// files use.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Header is a decoded v2 batch header.
type Header struct {
	BaseOffset      int64
	Length          int32
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	FirstTimestamp  int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// Size is the number of bytes the whole batch takes.
func (h *Header) Size() int { return int(h.Length) + LengthFieldEnd }

// LastOffset is the offset of the batch's last record.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset after the batch.
func (h *Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression is the codec of the batch's records.
func (h *Header) Compression() Compression { return Compression(h.Attributes & compressionMask) }

// LogAppendTime reports whether MaxTimestamp is the broker's append time.
func (h *Header) LogAppendTime() bool { return h.Attributes&timestampTypeBit != 0 }

// Transactional reports whether the batch belongs to a transaction.
func (h *Header) Transactional() bool { return h.Attributes&transactionalBit != 0 }

// Control reports whether the batch is a control batch (transaction marker).
func (h *Header) Control() bool { return h.Attributes&controlBit != 0 }

// Idempotent reports whether the batch carries a producer id.
func (h *Header) Idempotent() bool { return h.ProducerID >= 0 }

// LastSequence is the sequence number of the batch's last record, wrapping
// at MaxInt32 as Kafka's sequences do.
func (h *Header) LastSequence() int32 { return IncSequence(h.BaseSequence, h.LastOffsetDelta) }

// IncSequence adds n to a producer sequence number with Kafka's wraparound.
func IncSequence(seq, n int32) int32 {
	if seq > (1<<31-1)-n {
		return n - ((1<<31 - 1) - seq) - 1
	}
	return seq + n
}

// ParseHeader decodes the header at the start of b. It checks only that
// enough bytes are present; Validate checks the rest.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, corruptf("batch header needs %d bytes, have %d", HeaderSize, len(b))
	}
	be := binary.BigEndian
	return Header{
		BaseOffset:      int64(be.Uint64(b[baseOffsetPos:])),
		Length:          int32(be.Uint32(b[lengthPos:])),
		LeaderEpoch:     int32(be.Uint32(b[leaderEpochPos:])),
		Magic:           int8(b[magicPos]),
		CRC:             be.Uint32(b[crcPos:]),
		Attributes:      int16(be.Uint16(b[attributesPos:])),
		LastOffsetDelta: int32(be.Uint32(b[lastOffsetDeltaPos:])),
		FirstTimestamp:  int64(be.Uint64(b[firstTimestampPos:])),
		MaxTimestamp:    int64(be.Uint64(b[maxTimestampPos:])),
		ProducerID:      int64(be.Uint64(b[producerIDPos:])),
		ProducerEpoch:   int16(be.Uint16(b[producerEpochPos:])),
		BaseSequence:    int32(be.Uint32(b[baseSequencePos:])),
		NumRecords:      int32(be.Uint32(b[numRecordsPos:])),
	}, nil
}

// PeekSize returns the total size of the batch starting at b from its length
// field, or -1 when fewer than LengthFieldEnd bytes are present.
func PeekSize(b []byte) int {
	if len(b) < LengthFieldEnd {
		return -1
	}
	return int(int32(binary.BigEndian.Uint32(b[lengthPos:]))) + LengthFieldEnd
}

// PeekBaseOffset returns the base offset of the batch starting at b.
func PeekBaseOffset(b []byte) int64 { return int64(binary.BigEndian.Uint64(b[baseOffsetPos:])) }

// PeekLastOffset returns the last offset of the batch at b, which must hold
// a whole header.
func PeekLastOffset(b []byte) int64 {
	return PeekBaseOffset(b) + int64(int32(binary.BigEndian.Uint32(b[lastOffsetDeltaPos:])))
}

// SetBaseOffset overwrites the base offset of the batch at b. The field is
// outside the CRC, so the checksum stays valid.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[baseOffsetPos:], uint64(offset))
}

// SetLeaderEpoch overwrites the partition leader epoch of the batch at b
// (outside the CRC).
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[leaderEpochPos:], uint32(epoch))
}

// SetLogAppendTime marks the batch as carrying log-append time ts and
// recomputes its CRC, as Kafka does for topics with
// message.timestamp.type=LogAppendTime.
func SetLogAppendTime(b []byte, ts int64) {
	be := binary.BigEndian
	attrs := be.Uint16(b[attributesPos:]) | timestampTypeBit
	be.PutUint16(b[attributesPos:], attrs)
	be.PutUint64(b[maxTimestampPos:], uint64(ts))
	be.PutUint32(b[crcPos:], Checksum(b[attributesPos:]))
}

// CheckCRC reports whether the CRC of the whole batch b is right.
func CheckCRC(b []byte) bool {
	if len(b) < HeaderSize {
		return false
	}
	return binary.BigEndian.Uint32(b[crcPos:]) == Checksum(b[attributesPos:])
}

// ErrCorrupt is wrapped by every error that says a batch's bytes are damaged
// or inconsistent (Kafka's CORRUPT_MESSAGE).
var ErrCorrupt = errors.New("corrupt record batch")

// ErrInvalidRecord is wrapped by errors about well-formed batches that break
// a rule (Kafka's INVALID_RECORD), such as a client-sent control batch.
var ErrInvalidRecord = errors.New("invalid record")

// ErrUnsupportedMagic says the batch is not a v2 batch.
var ErrUnsupportedMagic = errors.New("unsupported record batch magic")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// CheckFrame verifies what can be verified without reading records: that b
// holds exactly one batch whose length field matches, the magic byte and the
// CRC. It returns the decoded header.
func CheckFrame(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Magic != MagicV2 {
		return h, fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, h.Magic)
	}
	if h.Length < HeaderSize-LengthFieldEnd {
		return h, corruptf("batch length %d is shorter than a header", h.Length)
	}
	if h.Size() != len(b) {
		return h, corruptf("batch length says %d bytes, have %d", h.Size(), len(b))
	}
	if !CheckCRC(b) {
		return h, corruptf("crc mismatch")
	}
	return h, nil
}

// InternalProducerID marks the control batches only Weir writes: Raft
// entries that carry no Kafka data (a new leader's empty entry, membership
// changes). No Kafka producer id is negative other than -1, and fetches
// never return these batches.
const InternalProducerID = -2

// Internal reports whether h is one of Weir's internal control batches.
func (h *Header) Internal() bool { return h.Control() && h.ProducerID == InternalProducerID }

// PeekInternal is Internal on the raw header bytes b (at least HeaderSize).
func PeekInternal(b []byte) bool {
	return binary.BigEndian.Uint16(b[attributesPos:])&controlBit != 0 &&
		int64(binary.BigEndian.Uint64(b[producerIDPos:])) == InternalProducerID
}

// PeekLeaderEpoch returns the partition leader epoch of the batch b.
func PeekLeaderEpoch(b []byte) int32 { return int32(binary.BigEndian.Uint32(b[leaderEpochPos:])) }
