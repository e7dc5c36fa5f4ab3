package storage

import (
	"fmt"
	"sort"

	"github.com/weir-dev/weir/internal/record"
)

// ReadOptions bound a read.
type ReadOptions struct {
	// MaxBytes caps the bytes returned, except that with MinOneBatch the
	// first batch is returned whole even if it is larger (KIP-74).
	MaxBytes    int
	MinOneBatch bool
	// UpToLogEnd reads past the high watermark up to the log end; it is
	// for replication, never for clients.
	UpToLogEnd bool
}

// Read appends to dst whole batches starting with the one that holds offset,
// from a single segment, and returns the extended slice. Reading at the
// bound (the high watermark) returns nothing; offsets before the log start
// or after the log end are ErrOffsetOutOfRange.
func (l *Log) Read(dst []byte, offset int64, opts ReadOptions) ([]byte, error) {
	bound := l.visible.Load()
	end := l.logEnd.Load()
	if opts.UpToLogEnd {
		bound = end
	}
	if offset < l.logStart.Load() || offset > end.next {
		return dst, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, l.logStart.Load(), end.next)
	}
	if offset >= bound.next {
		return dst, nil
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	i := l.segmentForLocked(offset)
	for ; i < len(l.segs); i++ {
		s := l.segs[i]
		if s.base >= bound.next {
			break
		}
		limit := s.size.Load()
		if s == bound.seg {
			limit = bound.pos
		}
		pos, err := findPos(s, offset, limit)
		if err != nil {
			return dst, err
		}
		if pos < limit {
			return readBatches(dst, s, pos, limit, opts)
		}
	}
	return dst, nil
}

// segmentForLocked returns the index of the segment that would hold offset.
func (l *Log) segmentForLocked(offset int64) int {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	return max(i-1, 0)
}

// headerScratch is how much findPos reads at a time while skipping batches:
// an index interval's worth of headers in one read.
const headerScratch = 8 << 10

// findPos returns the position of the first batch in s below limit whose
// last offset is at least offset, or limit if there is none.
func findPos(s *segment, offset, limit int64) (int64, error) {
	pos := s.floor(offset)
	var scratch [headerScratch]byte
	for pos < limit {
		n := int(min(int64(len(scratch)), limit-pos))
		if n < record.HeaderSize {
			return 0, fmt.Errorf("%w: segment %d: %d bytes left at %d", record.ErrCorrupt, s.base, n, pos)
		}
		if _, err := s.f.ReadAt(scratch[:n], pos); err != nil {
			return 0, fmt.Errorf("read segment %d: %w", s.base, err)
		}
		p := 0
		for p+record.HeaderSize <= n {
			b := scratch[p:]
			size := record.PeekSize(b)
			if size < record.HeaderSize {
				return 0, fmt.Errorf("%w: segment %d: batch length %d at %d", record.ErrCorrupt, s.base, size, pos+int64(p))
			}
			if record.PeekLastOffset(b) >= offset {
				return pos + int64(p), nil
			}
			p += size
		}
		pos += int64(p)
	}
	return limit, nil
}

// readBatches reads whole batches from pos up to limit and opts.MaxBytes.
func readBatches(dst []byte, s *segment, pos, limit int64, opts ReadOptions) ([]byte, error) {
	want := int(min(int64(max(opts.MaxBytes, 0)), limit-pos))
	if want < record.HeaderSize && opts.MinOneBatch {
		want = int(min(record.HeaderSize, limit-pos))
	}
	if want <= 0 {
		return dst, nil
	}
	start := len(dst)
	dst = grow(dst, want)
	if _, err := s.f.ReadAt(dst[start:start+want], pos); err != nil {
		return dst[:start], fmt.Errorf("read segment %d: %w", s.base, err)
	}
	// Keep whole batches only.
	b := dst[start : start+want]
	p := 0
	for p+record.LengthFieldEnd <= len(b) {
		size := record.PeekSize(b[p:])
		if size < record.HeaderSize {
			return dst[:start], fmt.Errorf("%w: segment %d: batch length %d at %d", record.ErrCorrupt, s.base, size, pos+int64(p))
		}
		if p+size > len(b) {
			break
		}
		p += size
	}
	if p == 0 && opts.MinOneBatch && len(b) >= record.LengthFieldEnd {
		// The first batch is larger than MaxBytes: return it whole.
		size := record.PeekSize(b)
		if int64(size) > limit-pos {
			return dst[:start], fmt.Errorf("%w: segment %d: batch at %d overruns the segment", record.ErrCorrupt, s.base, pos)
		}
		dst = grow(dst[:start], size)
		if _, err := s.f.ReadAt(dst[start:start+size], pos); err != nil {
			return dst[:start], fmt.Errorf("read segment %d: %w", s.base, err)
		}
		return dst[:start+size], nil
	}
	return dst[:start+p], nil
}

// grow extends dst by n bytes, reallocating if needed.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) < n {
		nd := make([]byte, len(dst), len(dst)+n)
		copy(nd, dst)
		dst = nd
	}
	return dst[:len(dst)+n]
}

// TimestampOffset is the answer to a timestamp lookup.
type TimestampOffset struct {
	Offset    int64
	Timestamp int64
	Found     bool
}

// OffsetForTimestamp finds the first record whose timestamp is at least ts
// among visible records.
func (l *Log) OffsetForTimestamp(ts int64, d *record.Decompressor) (TimestampOffset, error) {
	bound := l.visible.Load()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	start := l.logStart.Load()
	for _, s := range l.segs {
		if s.base >= bound.next {
			break
		}
		if s.maxTimestamp() < ts || s.nextOffset() <= start {
			continue
		}
		limit := s.size.Load()
		if s == bound.seg {
			limit = bound.pos
		}
		from := max(s.timeFloor(ts), start)
		pos, err := findPos(s, from, limit)
		if err != nil {
			return TimestampOffset{}, err
		}
		res, err := scanForTimestamp(s, pos, limit, ts, start, d)
		if err != nil || res.Found {
			return res, err
		}
	}
	return TimestampOffset{}, nil
}

// scanForTimestamp walks batches from pos and, in the first whose max
// timestamp reaches ts, finds the first record that does.
func scanForTimestamp(s *segment, pos, limit, ts, start int64, d *record.Decompressor) (TimestampOffset, error) {
	var hdr [record.HeaderSize]byte
	for pos < limit {
		if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
			return TimestampOffset{}, fmt.Errorf("read segment %d: %w", s.base, err)
		}
		h, err := record.ParseHeader(hdr[:])
		if err != nil {
			return TimestampOffset{}, err
		}
		if h.MaxTimestamp >= ts && h.LastOffset() >= start {
			if h.LogAppendTime() {
				return TimestampOffset{Offset: max(h.BaseOffset, start), Timestamp: h.MaxTimestamp, Found: true}, nil
			}
			batch := make([]byte, h.Size())
			if _, err := s.f.ReadAt(batch, pos); err != nil {
				return TimestampOffset{}, fmt.Errorf("read segment %d: %w", s.base, err)
			}
			var res TimestampOffset
			err := record.ForEachRecord(batch, d, func(h *record.Header, r *record.Record) error {
				off := h.BaseOffset + int64(r.OffsetDelta)
				if t := h.FirstTimestamp + r.TimestampDelta; t >= ts && off >= start {
					res = TimestampOffset{Offset: off, Timestamp: t, Found: true}
					return errStop
				}
				return nil
			})
			if err != nil && err != errStop {
				return TimestampOffset{}, err
			}
			if res.Found {
				return res, nil
			}
		}
		pos += int64(h.Size())
	}
	return TimestampOffset{}, nil
}

var errStop = fmt.Errorf("stop")

// MaxTimestamp returns the offset and timestamp of the record with the
// largest timestamp among visible records (ListOffsets -3), or Found false.
func (l *Log) MaxTimestamp() TimestampOffset {
	bound := l.visible.Load()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var best TimestampOffset
	for _, s := range l.segs {
		s.imu.RLock()
		ts, off := s.maxTS, s.maxTSOffset
		s.imu.RUnlock()
		if off >= 0 && off < bound.next && (!best.Found || ts > best.Timestamp) {
			best = TimestampOffset{Offset: off, Timestamp: ts, Found: true}
		}
	}
	return best
}

// ScanBatches calls fn with the header of every batch whose offsets reach
// from or beyond, in order, up to the log end. It reads headers only.
func (l *Log) ScanBatches(from int64, fn func(h *record.Header) error) error {
	end := l.logEnd.Load()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var hdr [record.HeaderSize]byte
	for i := l.segmentForLocked(from); i < len(l.segs); i++ {
		s := l.segs[i]
		limit := s.size.Load()
		if s == end.seg {
			limit = end.pos
		}
		pos, err := findPos(s, from, limit)
		if err != nil {
			return err
		}
		for pos < limit {
			if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
				return fmt.Errorf("read segment %d: %w", s.base, err)
			}
			h, err := record.ParseHeader(hdr[:])
			if err != nil {
				return err
			}
			if err := fn(&h); err != nil {
				return err
			}
			pos += int64(h.Size())
		}
	}
	return nil
}
