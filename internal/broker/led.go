package broker

import (
	"sync"

	"github.com/weir-dev/weir/internal/replication"
)

// ledStates keeps, in a cluster, one piece of coordinator state per
// internal partition this node leads: loaded (off the Raft driver) when
// the node becomes the ready leader of a term, dropped when it stops.
type ledStates[T any] struct {
	mu      sync.Mutex
	byPart  map[int32]led[T]
	loading map[int32]uint64 // partition -> term being loaded
	wg      *sync.WaitGroup  // loads in progress (the broker's)
	logger  func(msg string, args ...any)
}

type led[T any] struct {
	v    T
	term uint64
}

// get returns the state of partition idx, if this node leads it.
func (l *ledStates[T]) get(idx int32) (T, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.byPart[idx]
	return s.v, ok
}

// all returns every state held.
func (l *ledStates[T]) all() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]T, 0, len(l.byPart))
	for _, s := range l.byPart {
		out = append(out, s.v)
	}
	return out
}

// follow reacts to a status change of partition p: it drops the state of
// a term p no longer leads (calling drop) and starts load for a term it
// now leads. A load that finishes after the term ended is dropped.
func (l *ledStates[T]) follow(p *Partition, st replication.Status, load func() (T, error), drop func(T)) {
	leading := st.IsLeader && st.Ready
	l.mu.Lock()
	if l.byPart == nil {
		l.byPart, l.loading = map[int32]led[T]{}, map[int32]uint64{}
	}
	cur, have := l.byPart[p.index]
	if have && (!leading || cur.term != st.Term) {
		delete(l.byPart, p.index)
		if drop != nil {
			go drop(cur.v)
		}
		have = false
	}
	start := leading && !have && l.loading[p.index] != st.Term
	if start {
		l.loading[p.index] = st.Term
	}
	l.mu.Unlock()
	if !start {
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		v, err := load()
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.loading[p.index] == st.Term {
			delete(l.loading, p.index)
		}
		// The status last reported to the partition, not p.rg's: the
		// group reports (and this may run) before AddGroup has
		// returned it to be stored in p.rg.
		now := p.status.Load()
		_, taken := l.byPart[p.index]
		if err != nil || now == nil || !now.IsLeader || now.Term != st.Term || taken {
			if err != nil {
				l.logger("load coordinator state", "partition", p.name(), "err", err)
			}
			if err == nil && drop != nil {
				drop(v)
			}
			return
		}
		l.byPart[p.index] = led[T]{v: v, term: st.Term}
	}()
}
