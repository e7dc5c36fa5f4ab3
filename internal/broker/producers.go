package broker

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/replication"
)

// producerDedupWindow is how many recent batches per producer are
// remembered: clients keep at most five requests in flight per connection
// when idempotent, so a retry is always one of the last five.
const producerDedupWindow = 5

// batchMeta is what is remembered of one appended idempotent batch.
type batchMeta struct {
	firstSeq, lastSeq      int32
	baseOffset, lastOffset int64
	// prop is the Raft proposal of a batch the leader proposed whose
	// offsets are not known yet (cluster mode, never snapshotted).
	prop *replication.Proposal
}

// producerState is a producer's sequence state on one partition.
type producerState struct {
	epoch         int16
	batches       []batchMeta // newest last, at most producerDedupWindow
	lastTimestamp int64       // ms of the last append, for expiry
	txnFirst      int64       // first offset of its open transaction here; -1 for none
}

func newProducerState(epoch int16) *producerState {
	return &producerState{epoch: epoch, txnFirst: -1}
}

// AbortedTxn is an aborted transaction's span in a partition, from its
// first record to its abort marker, as Fetch reports it to read_committed
// consumers.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64 // the abort marker
}

// seqCheck is the verdict on an incoming idempotent batch.
type seqCheck struct {
	duplicate *batchMeta // set when the batch was already written
}

// check applies Kafka's sequence rules to batch h from producer st (nil when
// the partition has no state for it).
func (st *producerState) check(h *record.Header) (seqCheck, error) {
	if h.ProducerEpoch < 0 || h.BaseSequence < 0 {
		return seqCheck{}, fmt.Errorf("%w: idempotent batch with epoch %d, sequence %d", ErrInvalidRecord, h.ProducerEpoch, h.BaseSequence)
	}
	if st == nil {
		// Unknown producer (new, or its state expired): any sequence starts
		// it, as Kafka accepts.
		return seqCheck{}, nil
	}
	switch {
	case h.ProducerEpoch < st.epoch:
		return seqCheck{}, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, st.epoch)
	case h.ProducerEpoch > st.epoch:
		if h.BaseSequence != 0 {
			return seqCheck{}, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return seqCheck{}, nil
	}
	last := h.LastSequence()
	for i := range st.batches {
		if b := &st.batches[i]; b.firstSeq == h.BaseSequence && b.lastSeq == last {
			return seqCheck{duplicate: b}, nil
		}
	}
	if n := len(st.batches); n > 0 {
		if want := record.IncSequence(st.batches[n-1].lastSeq, 1); h.BaseSequence != want {
			return seqCheck{}, fmt.Errorf("%w: producer %d expected sequence %d, got %d", ErrOutOfOrderSequence, h.ProducerID, want, h.BaseSequence)
		}
	}
	return seqCheck{}, nil
}

// record notes an appended batch.
func (st *producerState) record(h *record.Header, ts int64) {
	if h.ProducerEpoch != st.epoch {
		st.epoch = h.ProducerEpoch
		st.batches = st.batches[:0]
	}
	if len(st.batches) == producerDedupWindow {
		copy(st.batches, st.batches[1:])
		st.batches = st.batches[:producerDedupWindow-1]
	}
	st.batches = append(st.batches, batchMeta{
		firstSeq: h.BaseSequence, lastSeq: h.LastSequence(),
		baseOffset: h.BaseOffset, lastOffset: h.LastOffset(),
	})
	st.lastTimestamp = ts
}

// Producer state snapshot layout (big endian, sealed with a CRC32C):
//
//	version u8 (=2) | offset i64 | count u32 |
//	per producer: id i64 | epoch i16 | lastTimestamp i64 | txnFirst i64 | n u8 |
//	              n × (firstSeq i32 | lastSeq i32 | baseOffset i64 | lastOffset i64)
//	aborted u32 | aborted × (producerId i64 | firstOffset i64 | lastOffset i64)
//
// Version 1 (no txnFirst, no aborted list) is still read.
const (
	snapshotName     = "producer-state"
	prevSnapshotName = "producer-state.prev" // the snapshot before the last
	snapshotVersion  = 2
)

func encodeProducerSnapshot(offset int64, producers map[int64]*producerState, aborted []AbortedTxn) []byte {
	be := binary.BigEndian
	b := []byte{snapshotVersion}
	b = be.AppendUint64(b, uint64(offset))
	b = be.AppendUint32(b, uint32(len(producers)))
	for id, st := range producers {
		b = be.AppendUint64(b, uint64(id))
		b = be.AppendUint16(b, uint16(st.epoch))
		b = be.AppendUint64(b, uint64(st.lastTimestamp))
		b = be.AppendUint64(b, uint64(st.txnFirst))
		b = append(b, byte(len(st.batches)))
		for _, bm := range st.batches {
			b = be.AppendUint32(b, uint32(bm.firstSeq))
			b = be.AppendUint32(b, uint32(bm.lastSeq))
			b = be.AppendUint64(b, uint64(bm.baseOffset))
			b = be.AppendUint64(b, uint64(bm.lastOffset))
		}
	}
	b = be.AppendUint32(b, uint32(len(aborted)))
	for _, a := range aborted {
		b = be.AppendUint64(b, uint64(a.ProducerID))
		b = be.AppendUint64(b, uint64(a.FirstOffset))
		b = be.AppendUint64(b, uint64(a.LastOffset))
	}
	return b
}

var errBadSnapshot = errors.New("bad producer state snapshot")

func decodeProducerSnapshot(b []byte) (int64, map[int64]*producerState, []AbortedTxn, error) {
	be := binary.BigEndian
	if len(b) < 13 || (b[0] != 1 && b[0] != snapshotVersion) {
		return 0, nil, nil, errBadSnapshot
	}
	v2 := b[0] == 2
	offset := int64(be.Uint64(b[1:]))
	n := int(be.Uint32(b[9:]))
	b = b[13:]
	producers := make(map[int64]*producerState, min(n, 1<<16))
	for range n {
		if len(b) < 19 {
			return 0, nil, nil, errBadSnapshot
		}
		id := int64(be.Uint64(b))
		st := newProducerState(int16(be.Uint16(b[8:])))
		st.lastTimestamp = int64(be.Uint64(b[10:]))
		b = b[18:]
		if v2 {
			if len(b) < 9 {
				return 0, nil, nil, errBadSnapshot
			}
			st.txnFirst = int64(be.Uint64(b))
			b = b[8:]
		}
		nb := int(b[0])
		b = b[1:]
		if nb > producerDedupWindow || len(b) < nb*24 {
			return 0, nil, nil, errBadSnapshot
		}
		for range nb {
			st.batches = append(st.batches, batchMeta{
				firstSeq: int32(be.Uint32(b)), lastSeq: int32(be.Uint32(b[4:])),
				baseOffset: int64(be.Uint64(b[8:])), lastOffset: int64(be.Uint64(b[16:])),
			})
			b = b[24:]
		}
		producers[id] = st
	}
	var aborted []AbortedTxn
	if v2 {
		if len(b) < 4 {
			return 0, nil, nil, errBadSnapshot
		}
		na := int(be.Uint32(b))
		b = b[4:]
		if len(b) != na*24 {
			return 0, nil, nil, errBadSnapshot
		}
		for range na {
			aborted = append(aborted, AbortedTxn{ProducerID: int64(be.Uint64(b)), FirstOffset: int64(be.Uint64(b[8:])), LastOffset: int64(be.Uint64(b[16:]))})
			b = b[24:]
		}
	}
	if len(b) != 0 {
		return 0, nil, nil, errBadSnapshot
	}
	return offset, producers, aborted, nil
}
