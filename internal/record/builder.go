package record

import (
	"encoding/binary"
	"fmt"
)

// BatchOptions describe a batch to build.
type BatchOptions struct {
	BaseOffset     int64
	LeaderEpoch    int32
	FirstTimestamp int64
	Compression    Compression
	ProducerID     int64 // -1 for none
	ProducerEpoch  int16
	BaseSequence   int32
	Transactional  bool
	Control        bool
}

// NoProducer is the producer id, epoch and sequence of a batch without
// idempotence.
const NoProducer = -1

// Build encodes records into one v2 batch. Offset deltas are assigned in
// order; each record's TimestampDelta is kept. It is used by tests, tools and
// the broker's own internal writes, never on the produce path.
func Build(opts BatchOptions, records []Record) ([]byte, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("build batch: no records")
	}
	var body []byte
	maxTS := opts.FirstTimestamp
	for i := range records {
		r := records[i]
		r.OffsetDelta = int32(i)
		body = appendRecord(body, &r)
		if ts := opts.FirstTimestamp + r.TimestampDelta; ts > maxTS {
			maxTS = ts
		}
	}
	if opts.Compression != CompressionNone {
		var err error
		if body, err = Compress(opts.Compression, body); err != nil {
			return nil, err
		}
	}
	b := make([]byte, HeaderSize, HeaderSize+len(body))
	be := binary.BigEndian
	be.PutUint64(b[baseOffsetPos:], uint64(opts.BaseOffset))
	be.PutUint32(b[lengthPos:], uint32(HeaderSize-LengthFieldEnd+len(body)))
	be.PutUint32(b[leaderEpochPos:], uint32(opts.LeaderEpoch))
	b[magicPos] = MagicV2
	attrs := uint16(opts.Compression)
	if opts.Transactional {
		attrs |= transactionalBit
	}
	if opts.Control {
		attrs |= controlBit
	}
	be.PutUint16(b[attributesPos:], attrs)
	be.PutUint32(b[lastOffsetDeltaPos:], uint32(len(records)-1))
	be.PutUint64(b[firstTimestampPos:], uint64(opts.FirstTimestamp))
	be.PutUint64(b[maxTimestampPos:], uint64(maxTS))
	be.PutUint64(b[producerIDPos:], uint64(opts.ProducerID))
	be.PutUint16(b[producerEpochPos:], uint16(opts.ProducerEpoch))
	be.PutUint32(b[baseSequencePos:], uint32(opts.BaseSequence))
	be.PutUint32(b[numRecordsPos:], uint32(len(records)))
	b = append(b, body...)
	be.PutUint32(b[crcPos:], Checksum(b[attributesPos:]))
	return b, nil
}

// BatchBuilder encodes records into one uncompressed v2 batch without a
// producer id, as they come: the transform runner's output path.
type BatchBuilder struct {
	buf         []byte // header room, then the records
	n           int32
	first, last int64 // timestamps: the first record's, the largest
}

// Add appends a record with timestamp ts (ms).
func (b *BatchBuilder) Add(ts int64, key, value []byte, headers []RecordHeader) {
	if b.n == 0 {
		if cap(b.buf) < HeaderSize {
			b.buf = make([]byte, HeaderSize, 64<<10)
		}
		b.buf = b.buf[:HeaderSize]
		b.first, b.last = ts, ts
	}
	b.last = max(b.last, ts)
	b.buf = AppendRecord(b.buf, 0, ts-b.first, b.n, key, value, headers)
	b.n++
}

// Len is the number of records added; Size the batch's size so far.
func (b *BatchBuilder) Len() int  { return int(b.n) }
func (b *BatchBuilder) Size() int { return len(b.buf) }

// Finish returns the batch (offsets from 0, checksummed) and starts a new
// one; the batch is the caller's.
func (b *BatchBuilder) Finish() []byte {
	if b.n == 0 {
		return nil
	}
	out := b.buf
	be := binary.BigEndian
	be.PutUint64(out[baseOffsetPos:], 0)
	be.PutUint32(out[lengthPos:], uint32(len(out)-LengthFieldEnd))
	be.PutUint32(out[leaderEpochPos:], 0)
	out[magicPos] = MagicV2
	be.PutUint16(out[attributesPos:], 0)
	be.PutUint32(out[lastOffsetDeltaPos:], uint32(b.n-1))
	be.PutUint64(out[firstTimestampPos:], uint64(b.first))
	be.PutUint64(out[maxTimestampPos:], uint64(b.last))
	be.PutUint64(out[producerIDPos:], ^uint64(0))
	be.PutUint16(out[producerEpochPos:], ^uint16(0))
	be.PutUint32(out[baseSequencePos:], ^uint32(0))
	be.PutUint32(out[numRecordsPos:], uint32(b.n))
	be.PutUint32(out[crcPos:], Checksum(out[attributesPos:]))
	b.buf, b.n = nil, 0
	return out
}

// Reissue copies a stored batch as a new one with the same records (still
// compressed, if they were): offsets from 0, no producer id, not part of a
// transaction, checksummed again. It is how a transform that keeps every
// record of a batch writes them on without decoding them.
func Reissue(batch []byte) []byte {
	out := append([]byte(nil), batch...)
	be := binary.BigEndian
	be.PutUint64(out[baseOffsetPos:], 0)
	be.PutUint32(out[leaderEpochPos:], 0)
	attrs := be.Uint16(out[attributesPos:]) &^ (transactionalBit | controlBit | deleteHorizonBit)
	be.PutUint16(out[attributesPos:], attrs)
	be.PutUint64(out[producerIDPos:], ^uint64(0))
	be.PutUint16(out[producerEpochPos:], ^uint16(0))
	be.PutUint32(out[baseSequencePos:], ^uint32(0))
	be.PutUint32(out[crcPos:], Checksum(out[attributesPos:]))
	return out
}
