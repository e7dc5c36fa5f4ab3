package storage

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestReviewCloseRacingAppendLeavesTrustedGarbage: Close syncs up to the log
// end it sees, then marks the log closed. An Append that lands between the
// two (Close does not exclude appends) is buffered but not written; Close
// then seals the active segment with its in-memory size (Truncate extends or
// cuts the file to a size that includes the unwritten batch, whose bytes are
// zeros), writes an index describing that size and a clean-shutdown marker
// with the new log end. The next Open trusts the index and serves zeros as a
// batch: "recovery accepting garbage". The round that would have written the
// batch runs later on the shared Syncer and skips the removed segment.
//
// The interleaving is made deterministic by holding the single Syncer worker
// with a second log whose rounds block on demand, and by appending from
// A's OnDurable callback of the round Close waits for (after Close's Sync
// took its target, before Close sets closed).
func TestReviewCloseRacingAppendLeavesTrustedGarbage(t *testing.T) {
	syncer := NewSyncer(1)
	defer syncer.Close()

	// Log B holds the worker: its first two rounds block until released.
	var bCalls atomic.Int32
	bEntered := make(chan int32, 2)
	bRelease := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	B, err := Open(t.TempDir(), Options{Config: DefaultConfig(), Syncer: syncer, OnWritten: func(int64) {
		if n := bCalls.Add(1); n <= 2 {
			bEntered <- n
			<-bRelease[n-1]
		}
	}})
	if err != nil {
		t.Fatal(err)
	}

	dirA := t.TempDir()
	var A *Log
	var armed atomic.Bool
	batch2 := testBatch(t, 1, 1, 0, 100)
	A, err = Open(dirA, Options{Config: DefaultConfig(), Syncer: syncer, OnDurable: func(off int64) {
		A.SetHighWatermark(off)
		if armed.CompareAndSwap(true, false) {
			// A producer appends to B and to A while Close(A) is between
			// its Sync and closed = true.
			if _, err := B.Append(testBatch(t, 0, 1, 0, 100), 0, 0); err != nil {
				t.Error(err)
			}
			// Close has begun, so the append must be refused rather
			// than buffered behind the final sync.
			if _, err := A.Append(batch2, 0, 0); !errors.Is(err, ErrClosed) {
				t.Errorf("append during Close: %v, want ErrClosed", err)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := B.Append(testBatch(t, 0, 1, 0, 100), 0, 0); err != nil {
		t.Fatal(err)
	}
	<-bEntered // the worker is busy with B
	if _, err := A.Append(testBatch(t, 0, 1, 0, 100), 0, 0); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	closeErr := make(chan error, 1)
	go func() { closeErr <- A.Close() }()
	for { // until Close waits in Sync for batch 1
		A.mu.Lock()
		n := len(A.waiters)
		A.mu.Unlock()
		if n > 0 {
			break
		}
		runtime.Gosched()
	}
	close(bRelease[0]) // A's round runs: batch 1 durable, hook appends batch 2
	<-bEntered         // B's next round holds the worker again
	if err := <-closeErr; err != nil {
		t.Fatalf("close: %v", err)
	}
	close(bRelease[1])
	syncer.Close() // drains A's round for batch 2: its segment is closed by now
	B.Close()

	l, err := Open(dirA, Options{Config: DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Logf("reopened: log end %d, high watermark %d", l.LogEndOffset(), l.HighWatermark())
	for off := int64(0); off < l.HighWatermark(); off++ {
		buf, err := l.Read(nil, off, ReadOptions{MaxBytes: 1 << 20, MinOneBatch: true})
		if err != nil {
			t.Fatalf("reopened log claims offset %d (clean shutdown, index trusted) but reading it fails: %v", off, err)
		}
		if len(buf) == 0 {
			t.Fatalf("empty read at %d", off)
		}
	}
}
