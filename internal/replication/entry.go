package replication

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/weir-dev/weir/internal/record"
)

// Every Raft entry is one record batch in the group's log. Normal entries
// are the Kafka batches clients (or coordinators) wrote. Entries that carry
// no Kafka data — the empty entry a new leader appends, membership changes —
// are stored as internal control batches (producer id -2) with one record:
// key = a control record key of type internalKeyType, value = entry type
// (one byte) then the entry's data. They take one offset each and fetches
// never return them, so consumers see a gap, as after compaction.

// internalKeyType is the control record type of internal entries ("WR").
const internalKeyType = 0x5752

// ErrBadEntry is returned for an internal batch that cannot be decoded.
var ErrBadEntry = errors.New("bad internal raft entry")

// encodeInternal builds the batch that stores a data-less entry.
func encodeInternal(typ raftpb.EntryType, data []byte, now int64) []byte {
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), internalKeyType)
	val := append([]byte{byte(typ)}, data...)
	b, err := record.Build(record.BatchOptions{
		FirstTimestamp: now, ProducerID: record.InternalProducerID, ProducerEpoch: -1, BaseSequence: -1, Control: true,
	}, []record.Record{{Key: key, Value: val}})
	if err != nil {
		panic(err) // one non-empty record always builds
	}
	return b
}

// decodeInternal returns the entry type and data stored in an internal
// batch.
func decodeInternal(batch []byte, d *record.Decompressor) (raftpb.EntryType, []byte, error) {
	var (
		typ   raftpb.EntryType
		data  []byte
		found bool
	)
	err := record.ForEachRecord(batch, d, func(_ *record.Header, r *record.Record) error {
		if found || len(r.Key) != 4 || binary.BigEndian.Uint16(r.Key[2:]) != internalKeyType || len(r.Value) < 1 {
			return fmt.Errorf("%w: unexpected record", ErrBadEntry)
		}
		typ = raftpb.EntryType(r.Value[0])
		data = append([]byte(nil), r.Value[1:]...)
		found = true
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: no record", ErrBadEntry)
	}
	if err == nil && typ != raftpb.EntryType_EntryNormal && typ != raftpb.EntryType_EntryConfChange && typ != raftpb.EntryType_EntryConfChangeV2 {
		err = fmt.Errorf("%w: entry type %d", ErrBadEntry, typ)
	}
	return typ, data, err
}

// entryBatch returns the batch that stores e in the log.
func entryBatch(e *raftpb.Entry, now int64) []byte {
	if e.GetType() == raftpb.EntryType_EntryNormal && len(e.Data) > 0 {
		return e.Data
	}
	return encodeInternal(e.GetType(), e.Data, now)
}

// batchEntry rebuilds the Raft entry stored as batch at index.
func batchEntry(batch []byte, index uint64, d *record.Decompressor) (*raftpb.Entry, error) {
	if len(batch) < record.HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes at index %d", ErrBadEntry, len(batch), index)
	}
	term := uint64(uint32(record.PeekLeaderEpoch(batch)))
	e := &raftpb.Entry{Index: &index, Term: &term}
	if !record.PeekInternal(batch) {
		e.Type = raftpb.EntryType_EntryNormal.Enum()
		e.Data = batch
		return e, nil
	}
	typ, data, err := decodeInternal(batch, d)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	e.Type = typ.Enum()
	if len(data) > 0 {
		e.Data = data
	}
	return e, nil
}
