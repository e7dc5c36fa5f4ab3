package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/weir-dev/weir/internal/record"
)

// The Raft view of a log: every batch is one Raft entry, and entry indexes
// are consecutive across the whole log, from 1 for the first batch ever
// written. An entry's term is its batch's partition leader epoch. This lets
// the partition log serve as the Raft log with one copy of the data.
//
// Each segment knows the index of its first batch (index file version 3);
// the first segment's is also kept, with the term of the entry before it,
// in the raft-start checkpoint, which moves forward when segments are
// deleted or the log is reset to a snapshot.

// Errors of the Raft view, mirroring go.etcd.io/raft's ErrCompacted and
// ErrUnavailable.
var (
	ErrIndexCompacted   = errors.New("raft index compacted")
	ErrIndexUnavailable = errors.New("raft index unavailable")
)

const raftStartName = "raft-start"

// raftStart is the checkpoint of where the Raft log begins.
type raftStart struct {
	firstIndex uint64 // index of the first segment's first batch
	prevTerm   uint64 // term of the entry before it (0 at the very start)
	// base is the offset of that batch when the log was reset to a
	// snapshot (0 otherwise): a log left without segments starts there.
	base int64
}

func (l *Log) readRaftStart() raftStart {
	body, err := ReadSealed(filepath.Join(l.dir, raftStartName))
	if err != nil || (len(body) != 16 && len(body) != 24) {
		if err != nil && !os.IsNotExist(err) {
			l.logger.Warn("raft-start checkpoint unreadable; assuming the log starts at index 1", "err", err)
		}
		return raftStart{firstIndex: 1}
	}
	rs := raftStart{firstIndex: binary.BigEndian.Uint64(body), prevTerm: binary.BigEndian.Uint64(body[8:])}
	if len(body) == 24 {
		rs.base = int64(binary.BigEndian.Uint64(body[16:]))
	}
	return rs
}

func (l *Log) writeRaftStart(rs raftStart) error {
	body := binary.BigEndian.AppendUint64(nil, rs.firstIndex)
	body = binary.BigEndian.AppendUint64(body, rs.prevTerm)
	if rs.base > 0 {
		body = binary.BigEndian.AppendUint64(body, uint64(rs.base))
	}
	return WriteFileAtomic(l.dir, raftStartName, Seal(body))
}

// assignRaftIndexes fills in the first index of segments whose index file
// did not give one: from the checkpoint for the first segment, from the
// segment before for the others.
func assignRaftIndexes(segs []*segment, rs raftStart) {
	for i, s := range segs {
		if s.firstIndex != 0 {
			continue
		}
		if i == 0 {
			s.firstIndex = rs.firstIndex
			continue
		}
		prev := segs[i-1]
		s.firstIndex = prev.firstIndex + prev.count
	}
}

// FirstIndex is the Raft index of the first batch the Raft log keeps. The
// log cleaner's segments lie before it: compaction removed entries from
// them, so they are data for consumers and snapshots, not Raft entries.
func (l *Log) FirstIndex() uint64 {
	first, _ := l.raftFirst()
	return first
}

// raftFirst returns FirstIndex and the term of the entry before it.
func (l *Log) raftFirst() (uint64, uint64) {
	l.mu.Lock()
	prevTerm := l.prevTerm
	l.mu.Unlock()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	for _, s := range l.segs {
		s.imu.RLock()
		first, compacted := s.firstIndex, s.compacted
		if compacted && len(s.epochs) > 0 {
			prevTerm = uint64(uint32(s.epochs[len(s.epochs)-1].Epoch))
		}
		s.imu.RUnlock()
		if !compacted {
			return first, prevTerm
		}
	}
	return l.segs[len(l.segs)-1].firstIndex, prevTerm
}

// LastIndex is the Raft index of the last batch appended (FirstIndex()-1
// when the log holds none).
func (l *Log) LastIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastIndexLocked()
}

func (l *Log) lastIndexLocked() uint64 {
	a := l.active
	a.imu.RLock()
	defer a.imu.RUnlock()
	return a.firstIndex + a.count - 1
}

// Term returns the term (leader epoch) of entry i, for FirstIndex()-1 <= i
// <= LastIndex().
func (l *Log) Term(i uint64) (uint64, error) {
	l.mu.Lock()
	last := l.lastIndexLocked()
	l.mu.Unlock()
	first, prevTerm := l.raftFirst()
	switch {
	case i+1 == first:
		return prevTerm, nil
	case i < first:
		return 0, ErrIndexCompacted
	case i > last:
		return 0, ErrIndexUnavailable
	}
	var hdr [record.HeaderSize]byte
	if err := l.readEntry(i, hdr[:]); err != nil {
		return 0, err
	}
	return uint64(uint32(binary.BigEndian.Uint32(hdr[12:]))), nil
}

// readEntry reads the first len(dst) bytes of entry i's batch.
func (l *Log) readEntry(i uint64, dst []byte) error {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	s, pos, err := l.locateLocked(i)
	if err != nil {
		return err
	}
	if _, err := s.f.ReadAt(dst, pos); err != nil {
		return fmt.Errorf("read segment %d: %w", s.base, err)
	}
	return nil
}

// locateLocked finds the segment and file position of entry i.
func (l *Log) locateLocked(i uint64) (*segment, int64, error) {
	j := sort.Search(len(l.segs), func(j int) bool { return l.segs[j].firstIndex > i })
	if j == 0 {
		return nil, 0, ErrIndexCompacted
	}
	s := l.segs[j-1]
	s.imu.RLock()
	if i >= s.firstIndex+s.count {
		s.imu.RUnlock()
		return nil, 0, ErrIndexUnavailable
	}
	ord := uint32(i - s.firstIndex)
	k := sort.Search(len(s.offsets), func(k int) bool { return s.offsets[k].ord > ord })
	pos, at := int64(0), uint32(0)
	if k > 0 {
		pos, at = int64(s.offsets[k-1].pos), s.offsets[k-1].ord
	}
	s.imu.RUnlock()
	var hdr [record.LengthFieldEnd]byte
	for ; at < ord; at++ {
		if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
			return nil, 0, fmt.Errorf("read segment %d: %w", s.base, err)
		}
		size := record.PeekSize(hdr[:])
		if size < record.HeaderSize {
			return nil, 0, fmt.Errorf("%w: segment %d: batch length %d at %d", record.ErrCorrupt, s.base, size, pos)
		}
		pos += int64(size)
	}
	return s, pos, nil
}

// EntryBatches returns the batches of entries [lo, hi), at least one and
// otherwise no more than maxBytes in total.
func (l *Log) EntryBatches(lo, hi, maxBytes uint64) ([][]byte, error) {
	first, last := l.FirstIndex(), l.LastIndex()
	switch {
	case lo < first:
		return nil, ErrIndexCompacted
	case hi > last+1 || lo >= hi:
		return nil, ErrIndexUnavailable
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var out [][]byte
	var total uint64
	for i := lo; i < hi; {
		s, pos, err := l.locateLocked(i)
		if err != nil {
			return nil, err
		}
		s.imu.RLock()
		end := s.firstIndex + s.count
		s.imu.RUnlock()
		for ; i < hi && i < end; i++ {
			var hdr [record.LengthFieldEnd]byte
			if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
				return nil, fmt.Errorf("read segment %d: %w", s.base, err)
			}
			size := record.PeekSize(hdr[:])
			if size < record.HeaderSize {
				return nil, fmt.Errorf("%w: segment %d: batch length %d at %d", record.ErrCorrupt, s.base, size, pos)
			}
			if len(out) > 0 && total+uint64(size) > maxBytes {
				return out, nil
			}
			b := make([]byte, size)
			if _, err := s.f.ReadAt(b, pos); err != nil {
				return nil, fmt.Errorf("read segment %d: %w", s.base, err)
			}
			out = append(out, b)
			total += uint64(size)
			pos += int64(size)
		}
	}
	return out, nil
}

// IndexOfOffset returns the Raft index of the batch holding offset (or the
// first batch after it, in a gap).
func (l *Log) IndexOfOffset(offset int64) (uint64, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	for j := l.segmentForLocked(offset); j < len(l.segs); j++ {
		s := l.segs[j]
		s.imu.RLock()
		rel := offset - s.base
		k := sort.Search(len(s.offsets), func(k int) bool { return int64(s.offsets[k].rel) > rel })
		pos, ord := int64(0), uint64(0)
		if k > 0 {
			pos, ord = int64(s.offsets[k-1].pos), uint64(s.offsets[k-1].ord)
		}
		first, count, size := s.firstIndex, s.count, s.size.Load()
		s.imu.RUnlock()
		var hdr [record.HeaderSize]byte
		for ; ord < count && pos < size; ord++ {
			if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
				return 0, fmt.Errorf("read segment %d: %w", s.base, err)
			}
			if record.PeekLastOffset(hdr[:]) >= offset {
				return first + ord, nil
			}
			pos += int64(record.PeekSize(hdr[:]))
		}
	}
	return 0, ErrIndexUnavailable
}

// OffsetOfIndex returns the base offset of entry i's batch.
func (l *Log) OffsetOfIndex(i uint64) (int64, error) {
	var hdr [record.HeaderSize]byte
	if err := l.readEntry(i, hdr[:]); err != nil {
		return 0, err
	}
	return record.PeekBaseOffset(hdr[:]), nil
}

// TruncateAfterIndex removes every entry after i (Raft's conflict
// resolution on followers). Only uncommitted entries may go.
func (l *Log) TruncateAfterIndex(i uint64) error {
	if i >= l.LastIndex() {
		return nil
	}
	off, err := l.OffsetOfIndex(i + 1)
	if err != nil {
		return err
	}
	return l.TruncateTo(off)
}

// ResetTo empties the log and starts it again at Raft index firstIndex and
// offset next, the entry before having term prevTerm: a replica installing
// a snapshot. Segments go newest first, so a crash part way leaves a
// prefix of the old log, which is still a valid Raft log.
func (l *Log) ResetTo(firstIndex, prevTerm uint64, next int64) error {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	if err := l.Sync(); err != nil {
		return err
	}
	l.syncMu.Lock() // as in TruncateTo
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed || l.closing:
		return ErrClosed
	case l.failed != nil:
		return l.failed
	case next < 0 || firstIndex == 0:
		return fmt.Errorf("reset log to index %d offset %d: out of range", firstIndex, next)
	}
	l.segMu.Lock()
	defer l.segMu.Unlock()
	l.ra.reset()
	l.keepRecent(nil, nil)
	for len(l.segs) > 0 {
		s := l.segs[len(l.segs)-1]
		l.segs = l.segs[:len(l.segs)-1]
		s.removed = true
		s.close()
		if err := os.Remove(s.path()); err != nil && !os.IsNotExist(err) {
			return l.failLocked(fmt.Errorf("remove segment %d: %w", s.base, err))
		}
		os.Remove(s.indexPath())
	}
	l.dirty, l.toSeal, l.outq, l.outqBytes = nil, nil, nil, 0
	if err := SyncDir(l.dir); err != nil {
		return l.failLocked(err)
	}
	if err := l.writeRaftStart(raftStart{firstIndex: firstIndex, prevTerm: prevTerm, base: next}); err != nil {
		return l.failLocked(err)
	}
	if err := WriteFileAtomic(l.dir, logStartName, Seal([]byte(strconv.FormatInt(next, 10)))); err != nil {
		return l.failLocked(err)
	}
	if err := l.writeCleanerCheckpoint(next); err != nil {
		return l.failLocked(err)
	}
	seg, err := l.createSegment(next)
	if err != nil {
		return l.failLocked(err)
	}
	if err := SyncDir(l.dir); err != nil {
		seg.close()
		return l.failLocked(err)
	}
	seg.firstIndex = firstIndex
	seg.rollAt = l.clock.Now().Add(l.cfg.Load().SegmentAge)
	l.segs = []*segment{seg}
	l.active = seg
	l.prevTerm = prevTerm
	l.tail, l.tailPos, l.tailDirty = l.tail[:0], 0, false
	l.leo, l.durable = next, next
	l.epochs = nil
	l.pending = nil
	l.unflushed, l.needFsync = 0, false
	l.cleanedTo.Store(next)
	l.logStart.Store(next)
	b := &boundary{next: next, seg: seg, pos: 0}
	l.visible.Store(b)
	l.written.Store(b)
	l.logEnd.Store(b)
	return nil
}

// Abandon drops the log as a crash would: data still buffered in memory is
// lost, files are closed without sealing and no clean-shutdown marker is
// left. For crash tests of the layers above.
func (l *Log) Abandon() {
	l.syncMu.Lock() // a write-out in progress finishes first
	l.mu.Lock()
	l.closing, l.closed = true, true
	l.tailDirty, l.outq, l.dirty, l.toSeal = false, nil, nil, nil
	for _, w := range l.waiters {
		w.err = ErrClosed
		close(w.done)
	}
	l.waiters = nil
	l.flushed.Broadcast()
	l.mu.Unlock()
	l.syncMu.Unlock()
	l.bg.Wait()
	l.ra.wait()
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.closeFiles()
}

// LowerHighWatermark moves the high watermark back to offset (to the start
// of the batch holding it): a replica reopening its log may hold entries
// beyond what it knows to be committed, and readers and retention must not
// see them until they are. What lies between is on disk (call it after
// Open, before appending).
func (l *Log) LowerHighWatermark(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	vis := l.visible.Load()
	if offset >= vis.next {
		return nil
	}
	offset = max(offset, l.logStart.Load())
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	j := l.segmentForLocked(offset)
	s := l.segs[j]
	pos, err := findPos(s, offset, s.size.Load())
	if err != nil {
		return err
	}
	start := boundary{next: offset, seg: s, pos: pos}
	var pending []boundary
	var hdr [record.HeaderSize]byte
	first := true
	for {
		if s == vis.seg && pos >= vis.pos {
			break
		}
		if pos >= s.size.Load() {
			if j+1 >= len(l.segs) {
				break
			}
			j++
			s, pos = l.segs[j], 0
			continue
		}
		if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
			return fmt.Errorf("read segment %d: %w", s.base, err)
		}
		size := record.PeekSize(hdr[:])
		if size < record.HeaderSize {
			return fmt.Errorf("%w: segment %d: batch length %d at %d", record.ErrCorrupt, s.base, size, pos)
		}
		if first {
			start.next = record.PeekBaseOffset(hdr[:])
			first = false
		}
		pos += int64(size)
		pending = append(pending, boundary{next: record.PeekLastOffset(hdr[:]) + 1, seg: s, pos: pos})
	}
	if first {
		return nil // offset is at the end already
	}
	l.visible.Store(&start)
	l.pending = append(pending, l.pending...)
	return nil
}
