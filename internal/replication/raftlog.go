package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/storage"
)

// raftLog is raft.Storage over a partition log plus the group's small
// state file (see docs/format/raft-state.md): term, vote, the applied index
// and the membership history. The log is the Raft log: entry i is the log's
// i-th batch, its term the batch's leader epoch.
type raftLog struct {
	log *storage.Log
	dec *record.Decompressor
	// replay makes a restart apply every entry of the log again (state
	// machines kept only in memory); otherwise it resumes after applied.
	replay bool

	mu         sync.Mutex
	term, vote uint64
	// applied is the last entry applied, as last known; it is written
	// lazily (a restart applies again what came after it, which is
	// harmless) and serves as the commit index Raft restarts with.
	applied uint64
	saved   uint64 // applied as last written
	// confs is the membership after each applied configuration change,
	// oldest first; the first element is the membership at or before the
	// log's first index.
	confs []confAt
}

type confAt struct {
	index uint64
	cs    *raftpb.ConfState
}

const stateFileName = "raft-state"

// stateVersion is the version of the raft-state file format.
const stateVersion = 1

// openRaftLog loads the group's state file. A group seen for the first
// time starts with the given voters (none for a replica added later, which
// learns its membership from the leader).
func openRaftLog(log *storage.Log, dec *record.Decompressor, voters []uint64, replay bool) (*raftLog, error) {
	s := &raftLog{log: log, dec: dec, replay: replay}
	body, err := storage.ReadSealed(filepath.Join(log.Dir(), stateFileName))
	switch {
	case os.IsNotExist(err):
		if log.LastIndex() >= log.FirstIndex() {
			return nil, fmt.Errorf("raft state of %s is missing but its log has entries", log.Dir())
		}
		s.confs = []confAt{{index: log.FirstIndex() - 1, cs: &raftpb.ConfState{Voters: slices.Clone(voters)}}}
		if err := s.save(); err != nil {
			return nil, err
		}
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("raft state of %s is damaged: %w", log.Dir(), err)
	}
	if err := s.decode(body); err != nil {
		return nil, fmt.Errorf("raft state of %s: %w", log.Dir(), err)
	}
	return s, nil
}

func (s *raftLog) encode() []byte {
	b := []byte{stateVersion}
	b = binary.AppendUvarint(b, s.term)
	b = binary.AppendUvarint(b, s.vote)
	b = binary.AppendUvarint(b, s.applied)
	b = binary.AppendUvarint(b, uint64(len(s.confs)))
	for _, c := range s.confs {
		cs, err := proto.Marshal(c.cs)
		if err != nil {
			panic(err) // a ConfState always marshals
		}
		b = binary.AppendUvarint(b, c.index)
		b = binary.AppendUvarint(b, uint64(len(cs)))
		b = append(b, cs...)
	}
	return b
}

var errBadState = errors.New("bad raft state file")

func (s *raftLog) decode(b []byte) error {
	if len(b) < 1 || b[0] != stateVersion {
		return fmt.Errorf("%w: unknown version", errBadState)
	}
	b = b[1:]
	next := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	s.term, s.vote, s.applied = next(), next(), next()
	n := next()
	if b == nil || n == 0 || n > 1<<16 {
		return fmt.Errorf("%w: membership history", errBadState)
	}
	s.confs = nil
	for range n {
		idx, size := next(), next()
		if b == nil || size > uint64(len(b)) {
			return fmt.Errorf("%w: truncated membership", errBadState)
		}
		cs := &raftpb.ConfState{}
		if err := proto.Unmarshal(b[:size], cs); err != nil {
			return fmt.Errorf("%w: %v", errBadState, err)
		}
		b = b[size:]
		s.confs = append(s.confs, confAt{index: idx, cs: cs})
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errBadState, len(b))
	}
	return nil
}

// save writes the state file crash-safely. Caller holds mu or owns s.
func (s *raftLog) save() error {
	s.prune()
	if err := storage.WriteFileAtomic(s.log.Dir(), stateFileName, storage.Seal(s.encode())); err != nil {
		return err
	}
	s.saved = s.applied
	return nil
}

// prune drops membership entries no snapshot can need any more.
func (s *raftLog) prune() {
	first := s.log.FirstIndex()
	for len(s.confs) > 1 && s.confs[1].index <= first-1 {
		s.confs = s.confs[1:]
	}
}

// confAtLocked is the membership in force after entry i.
func (s *raftLog) confAtLocked(i uint64) *raftpb.ConfState {
	cs := s.confs[0].cs
	for _, c := range s.confs[1:] {
		if c.index > i {
			break
		}
		cs = c.cs
	}
	return cs
}

// appliedLocked is where Raft resumes applying entries after a restart.
func (s *raftLog) appliedLocked() uint64 {
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	if s.replay {
		return first - 1
	}
	return min(max(s.applied, first-1), last)
}

// restartApplied is the applied index to give Raft at start.
func (s *raftLog) restartApplied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appliedLocked()
}

// setHardState records term and vote; it writes the file (fsynced) when
// they changed, which Raft requires before it sends anything. The commit
// index is not kept: Raft relearns it from the leader.
func (s *raftLog) setHardState(hs *raftpb.HardState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hs.GetTerm() == s.term && hs.GetVote() == s.vote {
		return nil
	}
	s.term, s.vote = hs.GetTerm(), hs.GetVote()
	return s.save()
}

// markApplied notes that entries through i were applied.
func (s *raftLog) markApplied(i uint64) {
	s.mu.Lock()
	s.applied = max(s.applied, i)
	s.mu.Unlock()
}

// recordConf remembers, durably, the membership after the configuration
// change at index (now applied, with everything before it).
func (s *raftLog) recordConf(index uint64, cs *raftpb.ConfState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.confs), func(i int) bool { return s.confs[i].index >= index })
	c := confAt{index: index, cs: proto.Clone(cs).(*raftpb.ConfState)}
	if i == 0 {
		s.confs = []confAt{c}
	} else {
		s.confs = append(s.confs[:i], c)
	}
	s.applied = max(s.applied, index)
	return s.save()
}

// flush writes the applied index if it moved since the last write.
func (s *raftLog) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applied == s.saved {
		return nil
	}
	return s.save()
}

// currentConf is the latest membership known.
func (s *raftLog) currentConf() *raftpb.ConfState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(s.confs[len(s.confs)-1].cs).(*raftpb.ConfState)
}

// InitialState implements raft.Storage.
func (s *raftLog) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	applied := s.appliedLocked()
	commit := max(applied, min(s.applied, s.log.LastIndex()))
	hs := &raftpb.HardState{Term: new(s.term), Vote: new(s.vote), Commit: &commit}
	if s.term == 0 && s.vote == 0 && commit == 0 {
		hs = nil
	}
	return hs, proto.Clone(s.confAtLocked(applied)).(*raftpb.ConfState), nil
}

// Entries implements raft.Storage.
func (s *raftLog) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	batches, err := s.log.EntryBatches(lo, hi, maxSize)
	if err != nil {
		return nil, raftError(err)
	}
	out := make([]*raftpb.Entry, len(batches))
	for i, b := range batches {
		if out[i], err = batchEntry(b, lo+uint64(i), s.dec); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Term implements raft.Storage.
func (s *raftLog) Term(i uint64) (uint64, error) {
	t, err := s.log.Term(i)
	return t, raftError(err)
}

// LastIndex implements raft.Storage.
func (s *raftLog) LastIndex() (uint64, error) { return s.log.LastIndex(), nil }

// FirstIndex implements raft.Storage.
func (s *raftLog) FirstIndex() (uint64, error) { return s.log.FirstIndex(), nil }

// Snapshot implements raft.Storage. A snapshot is only metadata: "the log
// starts after index X, whose successor has offset O". A replica that
// installs one empties its log and restarts it there; everything the
// leader still has arrives as entries.
func (s *raftLog) Snapshot() (*raftpb.Snapshot, error) {
	first := s.log.FirstIndex()
	index := first - 1
	term, err := s.log.Term(index)
	if err != nil {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	next := s.log.LogEndOffset()
	if first <= s.log.LastIndex() {
		if next, err = s.log.OffsetOfIndex(first); err != nil {
			return nil, raft.ErrSnapshotTemporarilyUnavailable
		}
	}
	s.mu.Lock()
	cs := proto.Clone(s.confAtLocked(index)).(*raftpb.ConfState)
	s.mu.Unlock()
	return &raftpb.Snapshot{
		Data:     encodeSnapshot(snapshotData{NextOffset: next}),
		Metadata: &raftpb.SnapshotMetadata{ConfState: cs, Index: &index, Term: &term},
	}, nil
}

// install resets the log to the snapshot.
func (s *raftLog) install(snap *raftpb.Snapshot) (snapshotData, error) {
	d, err := decodeSnapshot(snap.Data)
	if err != nil {
		return d, err
	}
	md := snap.GetMetadata()
	if err := s.log.ResetTo(md.GetIndex()+1, md.GetTerm(), d.NextOffset); err != nil {
		return d, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.confs = []confAt{{index: md.GetIndex(), cs: proto.Clone(md.GetConfState()).(*raftpb.ConfState)}}
	s.applied = md.GetIndex()
	return d, s.save()
}

// raftError maps the log's errors onto raft's.
func raftError(err error) error {
	switch {
	case errors.Is(err, storage.ErrIndexCompacted):
		return raft.ErrCompacted
	case errors.Is(err, storage.ErrIndexUnavailable):
		return raft.ErrUnavailable
	}
	return err
}

// snapshotData is the body of a snapshot.
type snapshotData struct {
	NextOffset int64 // offset of the entry after the snapshot's index
}

const snapshotVersion = 1

func encodeSnapshot(d snapshotData) []byte {
	b := []byte{snapshotVersion}
	return binary.AppendVarint(b, d.NextOffset)
}

var errBadSnapshot = errors.New("bad raft snapshot")

func decodeSnapshot(b []byte) (snapshotData, error) {
	if len(b) < 2 || b[0] != snapshotVersion {
		return snapshotData{}, fmt.Errorf("%w: version", errBadSnapshot)
	}
	v, n := binary.Varint(b[1:])
	if n <= 0 || n != len(b)-1 || v < 0 {
		return snapshotData{}, fmt.Errorf("%w: next offset", errBadSnapshot)
	}
	return snapshotData{NextOffset: v}, nil
}
