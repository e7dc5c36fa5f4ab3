package broker

import (
	"sync"
	"testing"

	"github.com/weir-dev/weir/internal/replication"
)

// A Raft group reports its first status from the engine before AddGroup
// returns it for p.rg: a coordinator load that finishes in that window
// must not need p.rg (CI on 2026-11-24 panicked on a nil p.rg there).
func TestLedStateLoadsBeforeTheGroupIsStored(t *testing.T) {
	p := &Partition{index: 3, topic: &Topic{Name: OffsetsTopic}}
	st := replication.Status{IsLeader: true, Ready: true, Term: 2}
	p.status.Store(&st)
	var wg sync.WaitGroup
	l := ledStates[string]{wg: &wg, logger: func(msg string, args ...any) { t.Log(append([]any{msg}, args...)...) }}
	l.follow(p, st, func() (string, error) { return "state", nil }, nil)
	wg.Wait()
	if v, ok := l.get(3); !ok || v != "state" {
		t.Fatalf("state %q, loaded %v", v, ok)
	}
	// Losing the leadership drops the state.
	next := replication.Status{IsLeader: false, Term: 3}
	p.status.Store(&next)
	l.follow(p, next, nil, nil)
	if _, ok := l.get(3); ok {
		t.Fatal("state kept after leadership went")
	}
}
