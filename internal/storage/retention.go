package storage

import (
	"fmt"
	"math"
	"os"
	"strconv"
)

// ApplyRetention deletes whole segments that are older than RetentionAge,
// that push the log past RetentionBytes, or that lie entirely before the log
// start offset. It never deletes data above the high watermark, and rolls
// an expired active segment first so it can go too. It returns how many
// segments it removed.
func (l *Log) ApplyRetention() (int, error) {
	cfg := l.cfg.Load()
	now := l.clock.Now()
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.failed != nil {
		return 0, nil
	}
	hw := l.visible.Load().next
	cutoff := now.Add(-cfg.RetentionAge).UnixMilli()
	expired := func(s *segment) bool {
		return cfg.RetentionAge >= 0 && s.maxTimestamp() >= 0 && s.maxTimestamp() < cutoff
	}
	if a := l.active; a.size.Load() > 0 && expired(a) && a.nextOffset() <= hw {
		if err := l.rollLocked(cfg); err != nil {
			return 0, l.failLocked(err)
		}
		l.requestSyncLocked() // seals the rolled segment
	}
	l.segMu.RLock()
	var total int64
	for _, s := range l.segs {
		total += s.size.Load()
	}
	start := l.logStart.Load()
	n := 0
	for _, s := range l.segs[:len(l.segs)-1] {
		size := s.size.Load()
		bySize := cfg.RetentionBytes >= 0 && total-size >= cfg.RetentionBytes
		if s.nextOffset() > hw || !(bySize || expired(s) || s.nextOffset() <= start) {
			break
		}
		total -= size
		n++
	}
	l.segMu.RUnlock()
	return n, l.deleteOldestLocked(n)
}

// deleteOldestLocked removes the n oldest segments.
func (l *Log) deleteOldestLocked(n int) error {
	if n == 0 {
		return nil
	}
	// The Raft log now starts at the next segment; remember where, and the
	// term of the entry before it, before any file goes.
	last := l.segs[n-1]
	last.imu.RLock()
	rs := raftStart{firstIndex: l.segs[n].firstIndex, prevTerm: l.prevTerm}
	if k := len(last.epochs); k > 0 {
		rs.prevTerm = uint64(uint32(last.epochs[k-1].Epoch))
	}
	last.imu.RUnlock()
	if err := l.writeRaftStart(rs); err != nil {
		return err
	}
	l.prevTerm = rs.prevTerm
	l.segMu.Lock()
	gone := append([]*segment(nil), l.segs[:n]...)
	l.segs = append(l.segs[:0:0], l.segs[n:]...)
	for _, s := range gone {
		s.removed = true
		s.close()
	}
	if first := l.segs[0].base; first > l.logStart.Load() {
		l.logStart.Store(first)
	}
	l.segMu.Unlock()
	for _, s := range gone {
		l.undirtyLocked(s)
		if err := os.Remove(s.path()); err != nil {
			return fmt.Errorf("remove segment %d: %w", s.base, err)
		}
		os.Remove(s.indexPath())
		l.logger.Info("deleted segment", "segment", s.base, "bytes", s.size.Load())
	}
	return SyncDir(l.dir)
}

func (l *Log) undirtyLocked(s *segment) {
	for i, d := range l.dirty {
		if d == s {
			l.dirty = append(l.dirty[:i], l.dirty[i+1:]...)
			return
		}
	}
}

// DeleteRecordsBefore moves the log start offset up to offset (at most the
// high watermark), durably, and deletes segments that fall entirely before
// it. It returns the new log start offset.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if l.failed != nil {
		// A failed compaction swap may have left file names that no
		// longer match the segment list: touch nothing until a restart.
		return 0, l.failed
	}
	hw := l.visible.Load().next
	if offset < 0 || offset > hw {
		return 0, fmt.Errorf("%w: %d is past the high watermark %d", ErrOffsetOutOfRange, offset, hw)
	}
	if offset <= l.logStart.Load() {
		return l.logStart.Load(), nil
	}
	if err := WriteFileAtomic(l.dir, logStartName, Seal([]byte(strconv.FormatInt(offset, 10)))); err != nil {
		return 0, err
	}
	l.logStart.Store(offset)
	l.segMu.RLock()
	n := 0
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.nextOffset() > offset {
			break
		}
		n++
	}
	l.segMu.RUnlock()
	return offset, l.deleteOldestLocked(n)
}

// TruncateTo removes every batch that holds an offset at or after next, so
// that the log ends at or before next; a batch straddling next goes whole.
// It is for replication (dropping an uncommitted tail) and recovery tests;
// the caller must not append concurrently, and only data above the high
// watermark may go (readers bounded by it never see the cut). The high
// watermark and durable offset are pulled back with the log end.
func (l *Log) TruncateTo(next int64) error {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	if err := l.Sync(); err != nil { // nothing may stay buffered or unsealed
		return err
	}
	// A write-out round that began after the Sync captured the old log
	// end; it must finish before the cut, or it would mark the log
	// durable (and written) past the new end.
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if next >= l.leo {
		return nil
	}
	if next < l.logStart.Load() {
		return fmt.Errorf("%w: truncate to %d below log start %d", ErrOffsetOutOfRange, next, l.logStart.Load())
	}
	cfg := l.cfg.Load()
	l.segMu.Lock()
	defer l.segMu.Unlock()
	// Readers start read-aheads only under segMu: with it held, none can
	// begin from the bytes about to go.
	l.ra.reset()
	l.keepRecent(nil, nil)
	for len(l.segs) > 1 && l.segs[len(l.segs)-1].base >= next {
		s := l.segs[len(l.segs)-1]
		l.segs = l.segs[:len(l.segs)-1]
		l.undirtyLocked(s)
		s.removed = true
		s.close()
		os.Remove(s.path())
		os.Remove(s.indexPath())
	}
	s := l.segs[len(l.segs)-1]
	pos, err := findPos(s, next, s.size.Load())
	if err != nil {
		return l.failLocked(err)
	}
	if err := s.f.Truncate(pos); err != nil {
		return l.failLocked(fmt.Errorf("truncate segment %d: %w", s.base, err))
	}
	os.Remove(s.indexPath())
	s.resetIndexes()
	s.sealed.Store(false) // it is the active segment again
	end, _, err := scanSegment(s, pos, cfg.IndexIntervalBytes, math.MaxInt64)
	if err != nil || end != pos {
		return l.failLocked(fmt.Errorf("rescan truncated segment %d: %v", s.base, err))
	}
	s.size.Store(pos)
	if err := datasync(s.f); err != nil {
		return l.failLocked(fmt.Errorf("sync truncated segment %d: %w", s.base, err))
	}
	if err := SyncDir(l.dir); err != nil {
		return l.failLocked(err)
	}
	l.active = s
	if err := l.resetTail(); err != nil {
		return l.failLocked(err)
	}
	l.leo = s.nextOffset()
	if l.cleanedTo.Load() > l.leo {
		// What is appended from here on has not been cleaned.
		if err := l.writeCleanerCheckpoint(l.leo); err != nil {
			return l.failLocked(err)
		}
		l.cleanedTo.Store(l.leo)
	}
	if l.durable > l.leo {
		l.durable = l.leo
	}
	b := &boundary{next: l.leo, seg: s, pos: pos}
	l.logEnd.Store(b)
	l.written.Store(b)
	if l.visible.Load().next > l.leo {
		l.visible.Store(b)
	}
	keep := l.pending[:0]
	for _, p := range l.pending {
		if p.next <= l.leo {
			keep = append(keep, p)
		}
	}
	l.pending = keep
	for len(l.epochs) > 0 && l.epochs[len(l.epochs)-1].StartOffset >= l.leo {
		l.epochs = l.epochs[:len(l.epochs)-1]
	}
	return nil
}
