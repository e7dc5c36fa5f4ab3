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
	// UpToLogEnd reads past the high watermark up to the end of what has
	// been written to the files; it is for replication, never for clients.
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
		bound = l.written.Load()
	}
	if offset < l.logStart.Load() || offset > end.next {
		return dst, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, l.logStart.Load(), end.next)
	}
	if offset >= bound.next {
		return dst, nil
	}
	if out, ok := l.readRecent(dst, offset, bound, opts); ok {
		return out, nil
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
		out, found, err := l.readSegment(dst, s, offset, limit, opts)
		if err != nil || found {
			return out, err
		}
	}
	return dst, nil
}

// readRecent serves a read from the chunk last written out, if it holds
// offset: the common case of a consumer that keeps up with producers.
func (l *Log) readRecent(dst []byte, offset int64, bound *boundary, opts ReadOptions) ([]byte, bool) {
	l.recentMu.RLock()
	defer l.recentMu.RUnlock()
	rc := l.recent
	if rc == nil || offset < rc.fromOffset {
		return dst, false
	}
	limit := rc.pos + int64(len(rc.buf))
	switch {
	case bound.seg == rc.seg:
		limit = min(limit, bound.pos)
	case bound.seg.base < rc.seg.base:
		return dst, false // nothing of this segment is visible yet
	}
	buf := rc.buf[:limit-rc.pos]
	p := int(rc.from - rc.pos)
	for {
		if p+record.HeaderSize > len(buf) {
			return dst, false
		}
		if record.PeekLastOffset(buf[p:]) >= offset {
			break
		}
		p += record.PeekSize(buf[p:])
	}
	first, q := p, p
	for q+record.HeaderSize <= len(buf) {
		size := record.PeekSize(buf[q:])
		if q+size > len(buf) || (q-first+size > opts.MaxBytes && !(q == first && opts.MinOneBatch)) {
			break
		}
		q += size
	}
	return append(dst, buf[first:q]...), true
}

// segmentForLocked returns the index of the segment that would hold offset.
func (l *Log) segmentForLocked(offset int64) int {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	return max(i-1, 0)
}

// maxReadBytes caps the bytes one partition read returns (beyond a single
// larger batch, which is returned whole).
const maxReadBytes = 8 << 20

// headerScratch is how much is read at a time while skipping batches: more
// than an index interval's worth of headers.
const headerScratch = 8 << 10

// readSegment reads, in one I/O when it can, from the indexed position below
// offset far enough to skip to offset's batch and return up to MaxBytes of
// whole batches after it. found is false if s holds nothing at or after
// offset below limit.
func (l *Log) readSegment(dst []byte, s *segment, offset, limit int64, opts ReadOptions) ([]byte, bool, error) {
	pos := s.floor(offset)
	// One partition read returns at most maxReadBytes even if the client
	// allows more: fetches may return less than their limits, and this
	// bounds the buffers one request pins.
	maxBytes := min(max(opts.MaxBytes, 0), maxReadBytes)
	window := min(limit-pos, int64(maxBytes)+headerScratch)
	if window < record.LengthFieldEnd {
		return dst, false, nil
	}
	buf := l.buffers.Get(int(window))
	defer l.buffers.Put(buf)
	if !l.ra.copyTo(buf, s, pos) {
		if err := s.readAt(buf, pos, l.buffers); err != nil {
			return dst, false, fmt.Errorf("read segment %d: %w", s.base, err)
		}
	}
	// Skip batches that end before offset.
	p := 0
	for {
		if p+record.HeaderSize > len(buf) {
			if pos+int64(p) >= limit {
				return dst, false, nil
			}
			// The skip ran past the window (batches much larger than
			// the index interval): find the start exactly and retry there.
			start, err := findPos(s, offset, limit)
			if err != nil || start >= limit {
				return dst, false, err
			}
			return l.readFrom(dst, s, start, limit, opts)
		}
		size := record.PeekSize(buf[p:])
		if size < record.HeaderSize {
			return dst, false, fmt.Errorf("%w: segment %d: batch length %d at %d", record.ErrCorrupt, s.base, size, pos+int64(p))
		}
		if record.PeekLastOffset(buf[p:]) >= offset {
			break
		}
		p += size
	}
	// Take whole batches up to MaxBytes.
	first := p
	q, last := p, p
	for q+record.LengthFieldEnd <= len(buf) {
		size := record.PeekSize(buf[q:])
		if size < record.HeaderSize {
			return dst, false, fmt.Errorf("%w: segment %d: batch length %d at %d", record.ErrCorrupt, s.base, size, pos+int64(q))
		}
		if q+size > len(buf) || (q-first+size > maxBytes && !(q == first && opts.MinOneBatch)) {
			break
		}
		last = q
		q += size
	}
	if q > first && pos+int64(q) < limit {
		// A reader this far behind will want the next window: start it.
		next := record.PeekLastOffset(buf[last:]) + 1
		l.ra.start(s, s.floor(next), int(window))
	}
	if q == first {
		// The first batch does not fit the window: read it alone (or learn
		// that it is over MaxBytes).
		return l.readFrom(dst, s, pos+int64(first), limit, opts)
	}
	return append(dst, buf[first:q]...), true, nil
}

// readFrom reads whole batches starting exactly at start.
func (l *Log) readFrom(dst []byte, s *segment, start, limit int64, opts ReadOptions) ([]byte, bool, error) {
	var hdr [record.LengthFieldEnd]byte
	if err := s.readAt(hdr[:], start, l.buffers); err != nil {
		return dst, false, fmt.Errorf("read segment %d: %w", s.base, err)
	}
	size := int64(record.PeekSize(hdr[:]))
	if size < record.HeaderSize || start+size > limit {
		return dst, false, fmt.Errorf("%w: segment %d: batch at %d overruns the segment", record.ErrCorrupt, s.base, start)
	}
	want := min(max(int64(min(opts.MaxBytes, maxReadBytes)), size), limit-start)
	if !opts.MinOneBatch && size > int64(opts.MaxBytes) {
		return dst, true, nil
	}
	from := len(dst)
	dst = grow(dst, int(want))
	if err := s.readAt(dst[from:], start, l.buffers); err != nil {
		return dst[:from], false, fmt.Errorf("read segment %d: %w", s.base, err)
	}
	// Keep whole batches only.
	b := dst[from:]
	p := 0
	for p+record.LengthFieldEnd <= len(b) {
		n := record.PeekSize(b[p:])
		if n < record.HeaderSize || p+n > len(b) {
			break
		}
		p += n
	}
	return dst[:from+p], true, nil
}

// findPos returns the position of the first batch in s below limit whose
// last offset is at least offset, or limit if there is none. It reads
// headers through the page cache; it serves rare paths (truncation, large
// batches, timestamp lookups).
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
// timestamp reaches ts, finds the first record that does. Batches emptied
// by compaction hold no record to find.
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
		if h.MaxTimestamp >= ts && h.LastOffset() >= start && h.NumRecords > 0 {
			if h.LogAppendTime() && int64(h.NumRecords) == int64(h.LastOffsetDelta)+1 {
				// Every offset of the batch holds a record, all stamped
				// with the batch's time.
				return TimestampOffset{Offset: max(h.BaseOffset, start), Timestamp: h.MaxTimestamp, Found: true}, nil
			}
			batch := make([]byte, h.Size())
			if _, err := s.f.ReadAt(batch, pos); err != nil {
				return TimestampOffset{}, fmt.Errorf("read segment %d: %w", s.base, err)
			}
			var res TimestampOffset
			err := record.ForEachRecord(batch, d, func(h *record.Header, r *record.Record) error {
				off := h.BaseOffset + int64(r.OffsetDelta)
				t := h.FirstTimestamp + r.TimestampDelta
				if h.LogAppendTime() {
					t = h.MaxTimestamp
				}
				if t >= ts && off >= start {
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
// from or beyond, in order, up to what has been written to the files. It
// reads headers only, through the page cache (it serves start-up and a
// replica's producer state rebuild), 64 KiB at a time: small batches'
// headers come many to a read.
func (l *Log) ScanBatches(from int64, fn func(h *record.Header) error) error {
	end := l.written.Load()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	buf := make([]byte, 64<<10)
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
			n := int(min(int64(len(buf)), limit-pos))
			if n < record.HeaderSize {
				return fmt.Errorf("%w: segment %d: %d bytes left at %d", record.ErrCorrupt, s.base, n, pos)
			}
			if _, err := s.f.ReadAt(buf[:n], pos); err != nil {
				return fmt.Errorf("read segment %d: %w", s.base, err)
			}
			p := 0
			for p+record.HeaderSize <= n {
				h, err := record.ParseHeader(buf[p : p+record.HeaderSize])
				if err != nil {
					return err
				}
				if h.Size() < record.HeaderSize {
					return fmt.Errorf("%w: segment %d: batch length %d at %d", record.ErrCorrupt, s.base, h.Length, pos+int64(p))
				}
				if err := fn(&h); err != nil {
					return err
				}
				p += h.Size()
			}
			pos += int64(p)
		}
	}
	return nil
}
