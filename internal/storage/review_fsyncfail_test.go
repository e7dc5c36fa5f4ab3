package storage

import (
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// goroutineParked reports whether some goroutine whose stack contains all
// of frames is parked with the given wait reason (e.g. "sync.Cond.Wait").
func goroutineParked(reason string, frames ...string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if !strings.Contains(header, "["+reason) {
			continue
		}
		all := true
		for _, f := range frames {
			if !strings.Contains(g, f) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// waitParked spins (yielding, no sleeps) until a goroutine is parked as
// described.
func waitParked(t *testing.T, reason string, frames ...string) {
	t.Helper()
	for i := 0; !goroutineParked(reason, frames...); i++ {
		if i > 2_000_000 {
			t.Fatalf("no goroutine parked in %s with %v", reason, frames)
		}
		runtime.Gosched()
	}
}

// TestReviewAppendHangsAfterFsyncFailure: an Append that waits for the
// syncer because the write-behind buffer is full (>= maxTailBytes) sleeps on
// l.flushed. If the fsync of the round in progress then fails, syncNow calls
// failLocked without broadcasting flushed, and every later round returns
// early (l.failed != nil) without broadcasting either: the producer blocks
// until Close, holding Partition.mu, and the kafka reader goroutine with it
// (so Server.Shutdown never finishes either).
func TestReviewAppendHangsAfterFsyncFailure(t *testing.T) {
	dir := t.TempDir()
	const value = 1 << 20
	var batches [][]byte
	for i := range 20 {
		batches = append(batches, testBatch(t, i, 1, 0, value))
	}
	next := 1 // batches[0] is appended by the test goroutine

	var l *Log
	var once sync.Once
	w1done := make(chan error, 1)
	var realF *os.File
	hook := func(int64) {
		once.Do(func() {
			// Round 1 has written its chunk and will fsync next.
			// Producers keep appending until the buffer is full...
			for {
				l.mu.Lock()
				full := len(l.tail) >= maxTailBytes
				l.mu.Unlock()
				if full {
					break
				}
				if _, err := l.Append(batches[next], 0, 0); err != nil {
					t.Error(err)
					return
				}
				next++
			}
			// ...and the next one waits for the syncer.
			b := batches[next]
			next++
			go func() {
				_, err := l.Append(b, 0, 0)
				w1done <- err
			}()
			waitParked(t, "sync.Cond.Wait", "storage.(*Log).Append")
			// The fsync about to run fails (EBADF here stands in for EIO).
			l.mu.Lock()
			seg := l.active
			l.mu.Unlock()
			closed, err := os.Open(seg.path())
			if err != nil {
				t.Error(err)
				return
			}
			closed.Close()
			realF, seg.f = seg.f, closed
		})
	}
	var err error
	l, err = Open(dir, Options{Config: DefaultConfig(), OnWritten: hook})
	if err != nil {
		t.Fatal(err)
	}
	// No Syncer: rounds run on goroutines counted by l.bg.
	if _, err := l.Append(batches[0], 0, 0); err != nil {
		t.Fatal(err)
	}
	l.bg.Wait() // round 1 (fsync fails) and the round the producers queued

	l.mu.Lock()
	failed := l.failed
	l.mu.Unlock()
	if failed == nil {
		t.Fatal("fsync failure was not injected")
	}
	// Every round is over; nothing else will broadcast flushed. A woken
	// waiter would see l.failed and return, so one still parked in
	// Cond.Wait now is parked for good.
	stuck := false
	select {
	case err := <-w1done:
		t.Logf("blocked append returned: %v", err)
	default:
		stuck = goroutineParked("sync.Cond.Wait", "storage.(*Log).Append")
	}
	if stuck {
		t.Errorf("Append waiting for buffer space is never woken after the fsync failure (log failed: %v); only Close releases it", failed)
	}
	l.Close() // releases it
	if stuck {
		t.Logf("after Close the append returned: %v", <-w1done)
	}
	if realF != nil {
		realF.Close()
	}
}
