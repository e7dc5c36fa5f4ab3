package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/weir-dev/weir/internal/record"
)

// recover loads the segments in l.dir. Sealed segments with an intact index
// are trusted as they are; the active segment after an unclean shutdown and
// any segment whose index is missing or damaged are scanned batch by batch,
// checking CRCs and offsets, and cut at the first bad batch. A bad batch
// before the last segment also drops every later segment, so the log is
// always an unbroken prefix of what was written. A compaction swap that a
// crash interrupted is finished (or, if it never committed, its files are
// dropped) before anything else.
func (l *Log) recover() error {
	if err := l.finishInterruptedSwap(); err != nil {
		return err
	}
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("read dir: %w", err)
	}
	var bases []int64
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			os.Remove(filepath.Join(l.dir, name)) // an interrupted atomic write
		case strings.HasSuffix(name, cleanedSuffix):
			os.Remove(filepath.Join(l.dir, name)) // output of a compaction that never committed
		default:
			if b, ok := parseBase(name, segmentSuffix); ok {
				bases = append(bases, b)
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })

	clean := l.readCleanMarker()
	if err := os.Remove(filepath.Join(l.dir, cleanMarkerName)); err == nil {
		if err := SyncDir(l.dir); err != nil {
			return err
		}
	}
	logStart, err := l.readLogStart()
	if err != nil {
		return err
	}
	cleanedTo := l.readCleanerCheckpoint()
	cfg := l.cfg.Load()
	now := l.clock.Now()

	var segs []*segment
	for i, base := range bases {
		last := i == len(bases)-1
		if n := len(segs); n > 0 && segs[n-1].nextOffset() != base {
			l.logger.Error("segment does not continue the log; dropping it and every later segment",
				"segment", base, "expected", segs[n-1].nextOffset())
			l.removeSegmentFiles(bases[i:])
			break
		}
		// Batches never reach into the next segment; for compacted
		// segments, whose offsets may jump, that bounds the jumps.
		maxNext := int64(math.MaxInt64)
		if !last {
			maxNext = bases[i+1]
		}
		// Everything below the cleaner checkpoint was written by the
		// cleaner, so a segment there whose index is lost may have gaps.
		seg, err := l.openSegment(base, last && !clean, base < cleanedTo, maxNext, cfg)
		if err != nil {
			for _, s := range segs {
				s.close()
			}
			return err
		}
		if seg.size.Load() == 0 && !last {
			// An empty sealed segment (a crash right after a roll) holds
			// nothing; the next segment continues at the same offset.
			seg.close()
			l.removeSegmentFiles([]int64{base})
			continue
		}
		if !last {
			seg.sealed.Store(true)
		}
		segs = append(segs, seg)
	}
	rs := l.readRaftStart()
	if len(segs) == 0 {
		// A log reset to a snapshot may have lost its segment before the
		// checkpoint of its start offset was written.
		seg, err := l.createSegment(max(logStart, rs.base))
		if err != nil {
			return err
		}
		seg.firstIndex = rs.firstIndex
		segs = append(segs, seg)
		if err := SyncDir(l.dir); err != nil {
			return err
		}
	}
	active := segs[len(segs)-1]
	active.rollAt = now.Add(cfg.SegmentAge)
	if ts := active.maxTimestamp(); ts > 0 && active.size.Load() > 0 {
		// After a restart the segment's age is judged by its newest
		// record, as Kafka does.
		if t := timeFromMillis(ts).Add(cfg.SegmentAge); t.Before(active.rollAt) {
			active.rollAt = t
		}
	}
	if !clean {
		// What survived the crash is on disk now; make it durable before
		// anything may depend on it.
		if err := datasync(active.f); err != nil {
			return fmt.Errorf("sync recovered segment: %w", err)
		}
	}

	assignRaftIndexes(segs, rs)
	l.prevTerm = rs.prevTerm
	l.segs = segs
	l.active = active
	if err := l.resetTail(); err != nil {
		return err
	}
	l.leo = active.nextOffset()
	for _, s := range segs {
		s.imu.RLock()
		for _, e := range s.epochs {
			if n := len(l.epochs); n == 0 || l.epochs[n-1].Epoch != e.Epoch {
				l.epochs = append(l.epochs, e)
			}
		}
		s.imu.RUnlock()
	}
	l.durable = l.leo
	start := max(logStart, segs[0].base)
	if start > l.leo {
		start = l.leo
	}
	l.logStart.Store(start)
	if cleanedTo > l.leo {
		// Damage cut the log below the checkpoint: what is appended next
		// has not been cleaned.
		if err := l.writeCleanerCheckpoint(l.leo); err != nil {
			return err
		}
		cleanedTo = l.leo
	}
	l.cleanedTo.Store(cleanedTo)
	end := &boundary{next: l.leo, seg: active, pos: active.size.Load()}
	l.visible.Store(end)
	l.written.Store(end)
	l.logEnd.Store(end)
	return nil
}

// resetTail points the write-behind buffer at the end of the active
// segment, loading the last partial block so the next write-out can
// rewrite it whole. The buffer must hold no unwritten data.
func (l *Log) resetTail() error {
	size := l.active.size.Load()
	l.tailPos = alignDown(size)
	l.tail = l.growTail(l.tail[:0], int(size-l.tailPos))
	l.tailDirty = false
	if len(l.tail) == 0 {
		return nil
	}
	if err := l.active.readAt(l.tail, l.tailPos, l.buffers); err != nil {
		return fmt.Errorf("read last block of segment %d: %w", l.active.base, err)
	}
	return nil
}

// openSegment opens one segment file and loads or rebuilds its index,
// cutting the file at the first bad batch. If that breaks the chain of
// offsets, the caller's continuity check drops the segments after it.
// compacted says whether a scan must accept gaps between batches (the index,
// when intact, says so itself); no batch may reach maxNext.
func (l *Log) openSegment(base int64, mustScan, compacted bool, maxNext int64, cfg *Config) (*segment, error) {
	path := filepath.Join(l.dir, segmentName(base))
	f, err := os.OpenFile(path, os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat segment %d: %w", base, err)
	}
	seg, err := newSegment(l.dir, base, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	fileSize := st.Size()
	if !mustScan {
		err := seg.loadIndex(fileSize)
		if err == nil {
			return seg, nil
		}
		l.logger.Info("rebuilding segment index", "segment", base, "reason", err, "compacted", compacted)
		seg.resetIndexes()
	}
	seg.compacted = compacted
	end, gapped, stopErr := scanSegment(seg, fileSize, cfg.IndexIntervalBytes, maxNext)
	// A cleaned segment without gaps kept every batch (a replicated log
	// compacts so; see CompactOptions.KeepEntries): its batches are still
	// Raft entries.
	seg.compacted = compacted && gapped
	seg.size.Store(end)
	if end < fileSize {
		tail := make([]byte, min(fileSize-end, 4096))
		n, _ := f.ReadAt(tail, end)
		zeroTail := n > 0 && bytes.Count(tail[:n], []byte{0}) == n
		if zeroTail {
			l.logger.Debug("trimmed preallocated zeros", "segment", base, "valid_bytes", end)
		} else {
			l.logger.Warn("truncated segment at last valid batch",
				"segment", base, "valid_bytes", end, "dropped_bytes", fileSize-end, "reason", stopErr)
		}
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("truncate segment %d: %w", base, err)
		}
		if err := datasync(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync segment %d: %w", base, err)
		}
	}
	if !mustScan {
		// A sealed segment whose index was rebuilt gets it written back.
		if err := WriteFileAtomic(l.dir, indexName(base), seg.encodeIndex()); err != nil {
			l.logger.Warn("write rebuilt index", "segment", base, "err", err)
		}
	}
	return seg, nil
}

// errTornTail marks a scan that stopped because the file ends inside a
// batch: the signature of a write interrupted by a crash.
var errTornTail = errors.New("file ends inside a batch")

// scanSegment reads the segment from the start, checks every batch (frame,
// CRC, consecutive offsets) and adds it to the in-memory index. It returns
// the end of the valid prefix and, if it stopped early, why. In a compacted
// segment a batch may start after the previous one ended (records were
// removed), but offsets still increase, stay addressable from the segment
// base and end at or before maxNext; gapped reports whether one did.
func scanSegment(seg *segment, fileSize int64, interval int, maxNext int64) (end int64, gapped bool, err error) {
	const chunk = 1 << 20
	buf := make([]byte, 0, chunk)
	var bufStart int64 // file position of buf[0]
	fill := func(pos int64, need int) error {
		if pos >= bufStart && pos+int64(need) <= bufStart+int64(len(buf)) {
			return nil
		}
		n := max(need, chunk)
		n = int(min(int64(n), fileSize-pos))
		if n < need {
			return errTornTail
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := seg.f.ReadAt(buf, pos); err != nil && err != io.EOF {
			return err
		}
		bufStart = pos
		return nil
	}
	pos := int64(0)
	expect := seg.base
	for pos < fileSize {
		if err := fill(pos, record.LengthFieldEnd); err != nil {
			return pos, gapped, err
		}
		size := record.PeekSize(buf[pos-bufStart:])
		if size < record.HeaderSize {
			if size == record.LengthFieldEnd && record.PeekBaseOffset(buf[pos-bufStart:]) == 0 {
				return pos, gapped, nil // zero-filled preallocation: the end
			}
			return pos, gapped, fmt.Errorf("%w: batch length %d", record.ErrCorrupt, size)
		}
		if err := fill(pos, size); err != nil {
			return pos, gapped, err
		}
		b := buf[pos-bufStart : pos-bufStart+int64(size)]
		h, err := record.CheckFrame(b)
		if err != nil {
			return pos, gapped, err
		}
		if !batchFollows(seg, &h, expect, maxNext) {
			return pos, gapped, fmt.Errorf("%w: batch at %d has offsets [%d, +%d], expected %d (compacted %v)",
				record.ErrCorrupt, pos, h.BaseOffset, h.LastOffsetDelta, expect, seg.compacted)
		}
		gapped = gapped || h.BaseOffset != expect
		seg.track(&h, pos, interval)
		expect = h.NextOffset()
		pos += int64(size)
	}
	// A segment followed by another must end where that one begins.
	gapped = gapped || (maxNext != math.MaxInt64 && expect != maxNext)
	return pos, gapped, nil
}

// batchFollows reports whether a batch with header h may come next in seg
// after offset expect.
func batchFollows(seg *segment, h *record.Header, expect, maxNext int64) bool {
	if h.LastOffsetDelta < 0 {
		return false
	}
	if !seg.compacted {
		return h.BaseOffset == expect
	}
	return h.BaseOffset >= expect && h.BaseOffset < maxNext &&
		int64(h.LastOffsetDelta) < maxNext-h.BaseOffset &&
		h.BaseOffset-seg.base <= math.MaxInt32-int64(h.LastOffsetDelta)
}

func (l *Log) removeSegmentFiles(bases []int64) {
	for _, b := range bases {
		os.Remove(filepath.Join(l.dir, segmentName(b)))
		os.Remove(filepath.Join(l.dir, indexName(b)))
	}
	if len(bases) > 0 {
		if err := SyncDir(l.dir); err != nil {
			l.logger.Warn("sync dir after removing segments", "err", err)
		}
	}
}

func (l *Log) readCleanMarker() bool {
	body, err := ReadSealed(filepath.Join(l.dir, cleanMarkerName))
	if err != nil {
		return false
	}
	_, err = strconv.ParseInt(string(body), 10, 64)
	return err == nil
}

func (l *Log) readLogStart() (int64, error) {
	body, err := ReadSealed(filepath.Join(l.dir, logStartName))
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		// The checkpoint only ever moves forward and the segments bound
		// it from below, so losing it costs no data.
		l.logger.Warn("log start offset checkpoint unreadable; using the first segment", "err", err)
		return 0, nil
	}
	n, err := strconv.ParseInt(string(body), 10, 64)
	if err != nil || n < 0 {
		return 0, nil
	}
	return n, nil
}
