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
