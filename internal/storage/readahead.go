package storage

import "sync"

// readahead keeps one read ahead of a log's sequential reader that has
// fallen behind the producers: while the consumer receives one fetch, the
// next window comes off the disk, so direct I/O latency and network time
// overlap. Readers that keep up are served from the recent chunk instead.
type readahead struct {
	mu     sync.Mutex
	cur    *aheadRead
	closed bool
	wg     sync.WaitGroup
	pool   *BufferPool
	limit  func(*segment) int64 // readable end of a segment now
}

type aheadRead struct {
	seg  *segment
	pos  int64
	buf  []byte
	done chan struct{}
	err  error
}

// copyTo fills dst from the current read-ahead if it covers [pos,
// pos+len(dst)) of seg, waiting for it if it is still on its way.
func (r *readahead) copyTo(dst []byte, seg *segment, pos int64) bool {
	r.mu.Lock()
	a := r.cur
	r.mu.Unlock()
	if a == nil || a.seg != seg || pos < a.pos || pos+int64(len(dst)) > a.pos+int64(len(a.buf)) {
		return false
	}
	<-a.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != a || a.err != nil {
		return false
	}
	copy(dst, a.buf[pos-a.pos:])
	return true
}

// start begins reading the blocks of seg that hold [pos, pos+n), or as much
// of it as readers may see, unless that is already under way.
func (r *readahead) start(seg *segment, pos int64, n int) {
	end := min(alignUp(pos+int64(n)), r.limit(seg))
	pos = alignDown(pos)
	if end <= pos {
		return
	}
	r.mu.Lock()
	if a := r.cur; r.closed || (a != nil && a.seg == seg && a.pos == pos) {
		r.mu.Unlock()
		return
	}
	a := &aheadRead{seg: seg, pos: pos, buf: r.pool.Get(int(end - pos)), done: make(chan struct{})}
	old := r.cur
	r.cur = a
	r.wg.Add(2) // under mu, so wait() cannot slip in between
	r.mu.Unlock()
	go func() { // give the old buffer back once its read is over
		defer r.wg.Done()
		if old != nil {
			<-old.done
			r.pool.Put(old.buf)
		}
	}()
	go func() {
		defer r.wg.Done()
		a.err = seg.readAt(a.buf, a.pos, r.pool)
		close(a.done)
	}()
}

// reset forgets the read-ahead, whose bytes may no longer match the file
// (after a truncation).
func (r *readahead) reset() {
	r.mu.Lock()
	old := r.cur
	r.cur = nil
	r.mu.Unlock()
	if old != nil {
		<-old.done
		r.pool.Put(old.buf)
	}
}

// wait stops new read-aheads and lets every one finish, before files close.
func (r *readahead) wait() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
}
