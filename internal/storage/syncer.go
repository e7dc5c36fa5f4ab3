package storage

import (
	"sync"
	"time"
)

// Syncer runs the fsyncs of many logs on a few goroutines. A log queues
// itself when it has unsynced writes that someone waits for; while its fsync
// runs, further appends accumulate and share the next one (group commit).
type Syncer struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*Log
	closed bool
	wg     sync.WaitGroup
}

// NewSyncer starts a syncer with the given number of workers. Several
// workers let fsyncs of different partitions overlap on the device.
func NewSyncer(workers int) *Syncer {
	s := &Syncer{}
	s.cond = sync.NewCond(&s.mu)
	for range max(workers, 1) {
		s.wg.Add(1)
		go s.work()
	}
	return s
}

func (s *Syncer) schedule(l *Log) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		go l.syncNow() // shutting down: still honour the waiter
		return
	}
	s.queue = append(s.queue, l)
	s.mu.Unlock()
	s.cond.Signal()
}

func (s *Syncer) work() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.cond.Wait()
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		l := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.mu.Unlock()
		l.syncNow()
	}
}

// Close drains the queue and stops the workers.
func (s *Syncer) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cond.Broadcast()
	s.wg.Wait()
}

func timeFromMillis(ms int64) time.Time { return time.UnixMilli(ms) }
