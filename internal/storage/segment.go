package storage

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-dev/weir/internal/record"
)

const (
	segmentSuffix = ".log"
	indexSuffix   = ".index"
)

func segmentName(base int64) string { return fmt.Sprintf("%020d%s", base, segmentSuffix) }
func indexName(base int64) string   { return fmt.Sprintf("%020d%s", base, indexSuffix) }

// indexEntry maps an offset (relative to the segment base) to the file
// position of the batch that starts there, and gives that batch's ordinal
// in the segment (its Raft index relative to the segment's first).
type indexEntry struct {
	rel uint32
	pos uint32
	ord uint32
}

// timeEntry says: every batch before offset base+rel has a max timestamp
// below ts. Entries are strictly increasing in both fields.
type timeEntry struct {
	ts  int64
	rel uint32
}

// EpochEntry records the first offset written under a leader epoch.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// segment is one file of a partition log plus its in-memory indexes.
//
// Fields under "append state" are owned by the log's mu. Index fields are
// under imu because readers search them while the appender adds entries.
type segment struct {
	base int64
	dir  string
	f    *os.File     // buffered: recovery, scans, truncation
	df   *os.File     // direct I/O (nil where unsupported): appends and fetch reads
	size atomic.Int64 // bytes of valid batches
	// removed is set under Log.segMu (write) when the file is closed for
	// good; holders of segMu (read) check it before touching the file.
	removed bool
	// compacted says the log cleaner wrote this segment: records were
	// removed, so its batches may skip offsets. Set before the segment is
	// shared (by the cleaner, or at load from the index or the cleaner
	// checkpoint) and not changed after.
	compacted bool
	// sealed is set once the file is final: cut to its data, durable and
	// indexed. Only sealed segments are compacted.
	sealed atomic.Bool

	// append state (Log.mu)
	bytesSinceIndex int
	lastTimeIndexed int64
	rollAt          time.Time // when the segment becomes old enough to roll

	imu         sync.RWMutex
	offsets     []indexEntry
	times       []timeEntry
	epochs      []EpochEntry
	next        int64 // offset after the last batch; base when empty
	maxTS       int64 // -1 when empty
	maxTSOffset int64
	// Raft view: every batch is one Raft entry. firstIndex is the index of
	// the segment's first batch (0 until known: a rebuilt index learns it
	// from the segment before, or the log's raft-start checkpoint), count
	// the number of batches.
	firstIndex uint64
	count      uint64
}

func newSegment(dir string, base int64, f *os.File) (*segment, error) {
	s := &segment{base: base, dir: dir, f: f, next: base, maxTS: -1, maxTSOffset: -1, lastTimeIndexed: -1}
	df, err := openDirect(s.path())
	if err != nil {
		return nil, fmt.Errorf("open segment %d for direct I/O: %w", base, err)
	}
	s.df = df
	return s, nil
}

func (s *segment) close() error {
	if s.df != nil {
		s.df.Close()
	}
	return s.f.Close()
}

// writeAt writes p at pos. With direct I/O p must be block-aligned in
// address, length and position.
func (s *segment) writeAt(p []byte, pos int64) error {
	f := s.f
	if s.df != nil {
		f = s.df
	}
	_, err := f.WriteAt(p, pos)
	return err
}

// readAt fills dst from pos. With direct I/O it reads the enclosing blocks
// into a pooled aligned buffer and copies, so the page cache is neither
// filled nor consulted: on the machines measured, faulting in page-cache
// pages cost three times the CPU of the rest of the consume path.
func (s *segment) readAt(dst []byte, pos int64, pool *BufferPool) error {
	if s.df == nil {
		_, err := s.f.ReadAt(dst, pos)
		return err
	}
	start := alignDown(pos)
	end := alignUp(pos + int64(len(dst)))
	buf := pool.Get(int(end - start))
	defer pool.Put(buf)
	n, err := s.df.ReadAt(buf, start)
	if int64(n) < pos-start+int64(len(dst)) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	copy(dst, buf[pos-start:])
	return nil
}

func (s *segment) path() string      { return filepath.Join(s.dir, segmentName(s.base)) }
func (s *segment) indexPath() string { return filepath.Join(s.dir, indexName(s.base)) }

// track adds a batch that now sits at pos to the in-memory indexes. Entries
// are sparse: one per interval bytes of batches.
func (s *segment) track(h *record.Header, pos int64, interval int) {
	s.imu.Lock()
	if s.bytesSinceIndex >= interval && pos > 0 {
		rel := uint32(h.BaseOffset - s.base)
		s.offsets = append(s.offsets, indexEntry{rel: rel, pos: uint32(pos), ord: uint32(s.count)})
		if s.maxTS > s.lastTimeIndexed {
			s.times = append(s.times, timeEntry{ts: s.maxTS, rel: rel})
			s.lastTimeIndexed = s.maxTS
		}
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += h.Size()
	if h.MaxTimestamp > s.maxTS {
		s.maxTS = h.MaxTimestamp
		s.maxTSOffset = h.LastOffset()
	}
	if n := len(s.epochs); n == 0 || s.epochs[n-1].Epoch != h.LeaderEpoch {
		s.epochs = append(s.epochs, EpochEntry{Epoch: h.LeaderEpoch, StartOffset: h.BaseOffset})
	}
	s.next = h.NextOffset()
	s.count++
	s.imu.Unlock()
}

// floor returns the position of the indexed batch closest below offset.
func (s *segment) floor(offset int64) int64 {
	s.imu.RLock()
	defer s.imu.RUnlock()
	if offset <= s.base || len(s.offsets) == 0 {
		return 0
	}
	rel := offset - s.base
	i := sort.Search(len(s.offsets), func(i int) bool { return int64(s.offsets[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(s.offsets[i-1].pos)
}

// timeFloor returns the offset to start scanning from for the first batch
// whose max timestamp is at least ts.
func (s *segment) timeFloor(ts int64) int64 {
	s.imu.RLock()
	defer s.imu.RUnlock()
	i := sort.Search(len(s.times), func(i int) bool { return s.times[i].ts >= ts })
	if i == 0 {
		return s.base
	}
	return s.base + int64(s.times[i-1].rel)
}

func (s *segment) nextOffset() int64 {
	s.imu.RLock()
	defer s.imu.RUnlock()
	return s.next
}

func (s *segment) maxTimestamp() int64 {
	s.imu.RLock()
	defer s.imu.RUnlock()
	return s.maxTS
}

// truncateIndexes drops index entries at or after pos and resets the
// summary fields; the caller rescans what is left to rebuild them exactly.
func (s *segment) resetIndexes() {
	s.imu.Lock()
	s.offsets = s.offsets[:0]
	s.times = s.times[:0]
	s.epochs = s.epochs[:0]
	s.next = s.base
	s.maxTS, s.maxTSOffset = -1, -1
	s.count = 0
	s.imu.Unlock()
	s.bytesSinceIndex = 0
	s.lastTimeIndexed = -1
}

// Index file layout (all big endian), see docs/format/log.md:
//
//	magic "WIDX" | version u32 | flags u32 (version 2+) |
//	firstIndex u64 | count u64 (version 3) | base i64 |
//	size i64 | next i64 | maxTS i64 | maxTSOffset i64 | nOffsets u32 |
//	nTimes u32 | nEpochs u32 | offsets (rel u32, pos u32, ord u32 (v3))... |
//	times (ts i64, rel u32)... | epochs (epoch i32, start i64)... | crc32c u32
//
// Versions 1 and 2 are still read; version 3 is written.
const (
	indexMagic   = "WIDX"
	indexVersion = 3

	// indexFlagCompacted marks a segment written by the log cleaner, whose
	// batches may skip offsets.
	indexFlagCompacted = 1 << 0
	indexKnownFlags    = indexFlagCompacted
)

func (s *segment) encodeIndex() []byte {
	s.imu.RLock()
	defer s.imu.RUnlock()
	be := binary.BigEndian
	b := make([]byte, 0, 64+8*len(s.offsets)+12*len(s.times)+12*len(s.epochs))
	b = append(b, indexMagic...)
	b = be.AppendUint32(b, indexVersion)
	var flags uint32
	if s.compacted {
		flags |= indexFlagCompacted
	}
	b = be.AppendUint32(b, flags)
	b = be.AppendUint64(b, s.firstIndex)
	b = be.AppendUint64(b, s.count)
	b = be.AppendUint64(b, uint64(s.base))
	b = be.AppendUint64(b, uint64(s.size.Load()))
	b = be.AppendUint64(b, uint64(s.next))
	b = be.AppendUint64(b, uint64(s.maxTS))
	b = be.AppendUint64(b, uint64(s.maxTSOffset))
	b = be.AppendUint32(b, uint32(len(s.offsets)))
	b = be.AppendUint32(b, uint32(len(s.times)))
	b = be.AppendUint32(b, uint32(len(s.epochs)))
	for _, e := range s.offsets {
		b = be.AppendUint32(b, e.rel)
		b = be.AppendUint32(b, e.pos)
		b = be.AppendUint32(b, e.ord)
	}
	for _, e := range s.times {
		b = be.AppendUint64(b, uint64(e.ts))
		b = be.AppendUint32(b, e.rel)
	}
	for _, e := range s.epochs {
		b = be.AppendUint32(b, uint32(e.Epoch))
		b = be.AppendUint64(b, uint64(e.StartOffset))
	}
	return Seal(b)
}

// errBadIndex is returned for an index file that cannot be trusted; the
// caller rebuilds the index from the segment.
var errBadIndex = fmt.Errorf("bad index file")

// loadIndex reads the segment's index file and installs it if it is intact
// and describes exactly fileSize bytes of segment.
func (s *segment) loadIndex(fileSize int64) error {
	data, err := ReadSealed(s.indexPath())
	if err != nil {
		return fmt.Errorf("%w: %v", errBadIndex, err)
	}
	be := binary.BigEndian
	const fixed = 4 + 4 + 8*5 + 4*3
	if len(data) < fixed || string(data[:4]) != indexMagic {
		return fmt.Errorf("%w: header", errBadIndex)
	}
	var flags uint32
	var firstIndex, count uint64
	d := data[8:]
	version := be.Uint32(data[4:])
	switch version {
	case 1, 2:
		// Older files lack the Raft index and batch count: rebuild once.
		return fmt.Errorf("%w: version %d predates Raft indexes", errBadIndex, version)
	case 3:
		if len(data) < fixed+4 {
			return fmt.Errorf("%w: header", errBadIndex)
		}
		flags = be.Uint32(d)
		d = d[4:]
		if flags&^indexKnownFlags != 0 {
			return fmt.Errorf("%w: unknown flags %#x", errBadIndex, flags)
		}
		if len(d) < 16 {
			return fmt.Errorf("%w: header", errBadIndex)
		}
		firstIndex, count = be.Uint64(d), be.Uint64(d[8:])
		d = d[16:]
	default:
		return fmt.Errorf("%w: version %d", errBadIndex, version)
	}
	const entrySize = 12
	base := int64(be.Uint64(d))
	size := int64(be.Uint64(d[8:]))
	next := int64(be.Uint64(d[16:]))
	maxTS := int64(be.Uint64(d[24:]))
	maxTSOff := int64(be.Uint64(d[32:]))
	nOff, nTime, nEpoch := int(be.Uint32(d[40:])), int(be.Uint32(d[44:])), int(be.Uint32(d[48:]))
	d = d[52:]
	if base != s.base || size != fileSize || next < base {
		return fmt.Errorf("%w: describes base %d size %d, file is base %d size %d", errBadIndex, base, size, s.base, fileSize)
	}
	if len(d) != entrySize*nOff+12*nTime+12*nEpoch {
		return fmt.Errorf("%w: entry counts", errBadIndex)
	}
	offsets := make([]indexEntry, nOff)
	for i := range offsets {
		offsets[i] = indexEntry{rel: be.Uint32(d), pos: be.Uint32(d[4:]), ord: be.Uint32(d[8:])}
		d = d[entrySize:]
		if int64(offsets[i].pos) >= size || (i > 0 && offsets[i].rel <= offsets[i-1].rel) {
			return fmt.Errorf("%w: offset entry %d", errBadIndex, i)
		}
	}
	times := make([]timeEntry, nTime)
	for i := range times {
		times[i] = timeEntry{ts: int64(be.Uint64(d)), rel: be.Uint32(d[8:])}
		d = d[12:]
	}
	epochs := make([]EpochEntry, nEpoch)
	for i := range epochs {
		epochs[i] = EpochEntry{Epoch: int32(be.Uint32(d)), StartOffset: int64(be.Uint64(d[4:]))}
		d = d[12:]
	}
	s.imu.Lock()
	s.offsets, s.times, s.epochs = offsets, times, epochs
	s.next, s.maxTS, s.maxTSOffset = next, maxTS, maxTSOff
	s.firstIndex, s.count = firstIndex, count
	s.imu.Unlock()
	s.size.Store(size)
	s.compacted = flags&indexFlagCompacted != 0
	if len(times) > 0 {
		s.lastTimeIndexed = times[len(times)-1].ts
	}
	s.bytesSinceIndex = int(size)
	if len(offsets) > 0 {
		s.bytesSinceIndex = int(size - int64(offsets[len(offsets)-1].pos))
	}
	return nil
}
