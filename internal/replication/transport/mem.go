package transport

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// MemNetwork is an in-memory network for deterministic tests. It has no
// goroutines and no clock: Send only queues, and the test decides when and
// in what order envelopes arrive by calling Deliver. Every random choice
// (drops, duplicates, delivery order) comes from one generator seeded by
// NewMemNetwork, so the same seed and the same calls give the same history.
//
// Envelopes travel one at a time: each delivery calls the receiver's
// Handler with a single envelope. Handlers may call Send; the network's lock
// is not held while a handler or an Unreachable callback runs. Use a
// MemNetwork from one goroutine if the schedule is to be reproducible.
type MemNetwork struct {
	mu struct {
		sync.Mutex
		rng      *rand.Rand
		nodes    map[uint64]*memNode
		queues   map[memLink][]memItem
		active   []memLink // links with queued envelopes, sorted
		pending  int
		cut      map[memLink]bool // one-way cuts
		isolated map[uint64]bool
		dropRate float64
		dupRate  float64
		reorder  bool
		stats    MemStats
	}
}

// MemStats counts envelopes. Every envelope Send accepted (plus each
// duplicate) ends up delivered or dropped, or is still pending:
// Sent + Duplicated == Delivered + Dropped + Pending.
type MemStats struct {
	Sent       uint64 // envelopes given to Send by live endpoints
	Delivered  uint64 // handed to a handler
	Dropped    uint64 // lost: partition, crash, random drop, forgotten peer
	Duplicated uint64 // extra copies queued
	Pending    int    // queued now
}

type memLink struct{ from, to uint64 }

func (a memLink) compare(b memLink) int {
	if c := cmp.Compare(a.from, b.from); c != 0 {
		return c
	}
	return cmp.Compare(a.to, b.to)
}

type memItem struct {
	group uint64
	msg   *raftpb.Message
}

type memNode struct {
	gen         uint64 // bumped by Restart; stale endpoints are ignored
	up          bool
	handler     Handler
	unreachable func(peer uint64)
	forgotten   map[uint64]bool // peers removed with RemovePeer
}

// MemEndpoint is one node's Transport on a MemNetwork. After its node
// crashes or it is closed, it does nothing; Restart returns a new one.
type MemEndpoint struct {
	net *MemNetwork
	id  uint64
	gen uint64
}

// NewMemNetwork returns an empty network whose random choices follow seed.
// Delivery is FIFO per link until SetReorder(true).
func NewMemNetwork(seed int64) *MemNetwork {
	n := &MemNetwork{}
	n.mu.rng = rand.New(rand.NewPCG(uint64(seed), 0x5745495220524146)) // "WEIR RAF"
	n.mu.nodes = make(map[uint64]*memNode)
	n.mu.queues = make(map[memLink][]memItem)
	n.mu.cut = make(map[memLink]bool)
	n.mu.isolated = make(map[uint64]bool)
	return n
}

// Endpoint attaches node id with its handler and Unreachable callback (nil
// for none). Every attached node can reach every other; no SetPeer is
// needed. It panics if id is already attached: use Restart.
func (n *MemNetwork) Endpoint(id uint64, h Handler, unreachable func(peer uint64)) *MemEndpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.mu.nodes[id]; ok {
		panic(fmt.Sprintf("transport: mem endpoint %d already exists", id))
	}
	n.mu.nodes[id] = &memNode{}
	return n.startLocked(id, h, unreachable)
}

// Restart brings node id back after Crash (or Close) with a new handler and
// callback, and returns its new endpoint; the old one stays dead.
func (n *MemNetwork) Restart(id uint64, h Handler, unreachable func(peer uint64)) *MemEndpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd := n.mu.nodes[id]
	if nd == nil {
		panic(fmt.Sprintf("transport: restart of unknown mem endpoint %d", id))
	}
	if nd.up {
		n.downLocked(id)
	}
	return n.startLocked(id, h, unreachable)
}

func (n *MemNetwork) startLocked(id uint64, h Handler, unreachable func(uint64)) *MemEndpoint {
	nd := n.mu.nodes[id]
	nd.gen++
	nd.up = true
	nd.handler = h
	nd.unreachable = unreachable
	nd.forgotten = make(map[uint64]bool)
	return &MemEndpoint{net: n, id: id, gen: nd.gen}
}

// Crash stops node id: everything queued to or from it is dropped, it
// receives nothing until Restart, and sends to it are reported unreachable.
func (n *MemNetwork) Crash(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if nd := n.mu.nodes[id]; nd != nil && nd.up {
		n.downLocked(id)
	}
}

func (n *MemNetwork) downLocked(id uint64) {
	n.mu.nodes[id].up = false
	for _, l := range slices.Clone(n.mu.active) {
		if l.from == id || l.to == id {
			k := len(n.mu.queues[l])
			n.mu.stats.Dropped += uint64(k)
			n.mu.pending -= k
			n.removeLinkLocked(l)
		}
	}
}

// Partition cuts both directions between a and b.
func (n *MemNetwork) Partition(a, b uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.cut[memLink{a, b}] = true
	n.mu.cut[memLink{b, a}] = true
}

// OneWay cuts the direction from → to only.
func (n *MemNetwork) OneWay(from, to uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.cut[memLink{from, to}] = true
}

// Heal restores both directions between a and b (cut by Partition or
// OneWay; an Isolate stays until HealAll).
func (n *MemNetwork) Heal(a, b uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.mu.cut, memLink{a, b})
	delete(n.mu.cut, memLink{b, a})
}

// Isolate cuts node id off from every other node, present and future.
func (n *MemNetwork) Isolate(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.isolated[id] = true
}

// HealAll removes every cut and isolation.
func (n *MemNetwork) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.mu.cut)
	clear(n.mu.isolated)
}

// SetDropRate makes each sent envelope vanish silently with probability p.
func (n *MemNetwork) SetDropRate(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.dropRate = p
}

// SetDuplicateRate makes each sent envelope arrive twice with probability p.
func (n *MemNetwork) SetDuplicateRate(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.dupRate = p
}

// SetReorder chooses between delivering any queued envelope next (true)
// and the oldest of a randomly chosen link (false, the default).
func (n *MemNetwork) SetReorder(on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.reorder = on
}

// Stats returns the counters.
func (n *MemNetwork) Stats() MemStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.mu.stats
	s.Pending = n.mu.pending
	return s
}

// Pending is how many envelopes are queued.
func (n *MemNetwork) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.pending
}

// reachableLocked says whether from → to is open now.
func (n *MemNetwork) reachableLocked(from, to uint64) bool {
	nd := n.mu.nodes[to]
	return nd != nil && nd.up && !n.mu.cut[memLink{from, to}] && !n.mu.isolated[from] && !n.mu.isolated[to]
}

// Deliver hands up to max queued envelopes to their receivers and returns
// how many it delivered. Envelopes whose link was cut or whose receiver
// crashed since they were sent are dropped on the way (and reported
// unreachable to the sender); they do not count toward max.
func (n *MemNetwork) Deliver(max int) int {
	delivered := 0
	for delivered < max {
		n.mu.Lock()
		l, it, ok := n.popLocked()
		if !ok {
			n.mu.Unlock()
			break
		}
		if !n.reachableLocked(l.from, l.to) {
			n.mu.stats.Dropped++
			var cb func(uint64)
			if nd := n.mu.nodes[l.from]; nd != nil && nd.up {
				cb = nd.unreachable
			}
			n.mu.Unlock()
			if cb != nil {
				cb(l.to)
			}
			continue
		}
		n.mu.stats.Delivered++
		h := n.mu.nodes[l.to].handler
		n.mu.Unlock()
		if h != nil {
			h(l.from, []Envelope{{Group: it.group, Msg: it.msg}})
		}
		delivered++
	}
	return delivered
}

// DeliverAll delivers until nothing is queued, including what handlers send
// meanwhile, and returns how many it delivered. With handlers that always
// answer, it does not return.
func (n *MemNetwork) DeliverAll() int {
	total := 0
	for {
		d := n.Deliver(1 << 30)
		total += d
		if d == 0 && n.Pending() == 0 {
			return total
		}
	}
}

// popLocked removes the next envelope to deliver.
func (n *MemNetwork) popLocked() (memLink, memItem, bool) {
	if n.mu.pending == 0 {
		return memLink{}, memItem{}, false
	}
	var l memLink
	idx := 0
	if n.mu.reorder {
		// Uniform over all queued envelopes.
		r := n.mu.rng.IntN(n.mu.pending)
		for _, al := range n.mu.active {
			if k := len(n.mu.queues[al]); r < k {
				l, idx = al, r
				break
			} else {
				r -= k
			}
		}
	} else {
		l = n.mu.active[n.mu.rng.IntN(len(n.mu.active))]
	}
	q := n.mu.queues[l]
	it := q[idx]
	q = slices.Delete(q, idx, idx+1)
	n.mu.pending--
	if len(q) == 0 {
		n.removeLinkLocked(l)
	} else {
		n.mu.queues[l] = q
	}
	return l, it, true
}

func (n *MemNetwork) pushLocked(l memLink, it memItem) {
	q, ok := n.mu.queues[l]
	if !ok || len(q) == 0 {
		i, _ := slices.BinarySearchFunc(n.mu.active, l, memLink.compare)
		n.mu.active = slices.Insert(n.mu.active, i, l)
	}
	n.mu.queues[l] = append(q, it)
	n.mu.pending++
}

func (n *MemNetwork) removeLinkLocked(l memLink) {
	delete(n.mu.queues, l)
	if i, ok := slices.BinarySearchFunc(n.mu.active, l, memLink.compare); ok {
		n.mu.active = slices.Delete(n.mu.active, i, i+1)
	}
}

// ID is the endpoint's node id.
func (e *MemEndpoint) ID() uint64 { return e.id }

// liveLocked returns the endpoint's node if this endpoint is its current,
// running incarnation.
func (e *MemEndpoint) liveLocked() *memNode {
	nd := e.net.mu.nodes[e.id]
	if nd == nil || nd.gen != e.gen || !nd.up {
		return nil
	}
	return nd
}

// Send queues copies of envs for node to. Sends to a node that is cut off,
// crashed, unknown or forgotten are dropped and reported unreachable, as a
// TCP transport would; random drops are silent, like lost packets.
func (e *MemEndpoint) Send(to uint64, envs []Envelope) {
	n := e.net
	n.mu.Lock()
	nd := e.liveLocked()
	if nd == nil {
		n.mu.Unlock()
		return
	}
	report := false
	l := memLink{e.id, to}
	for i := range envs {
		env := &envs[i]
		if env.Msg == nil {
			continue
		}
		n.mu.stats.Sent++
		if nd.forgotten[to] || !n.reachableLocked(e.id, to) {
			n.mu.stats.Dropped++
			report = true
			continue
		}
		if n.mu.dropRate > 0 && n.mu.rng.Float64() < n.mu.dropRate {
			n.mu.stats.Dropped++
			continue
		}
		n.pushLocked(l, memItem{group: env.Group, msg: proto.CloneOf(env.Msg)})
		if n.mu.dupRate > 0 && n.mu.rng.Float64() < n.mu.dupRate {
			n.mu.stats.Duplicated++
			n.pushLocked(l, memItem{group: env.Group, msg: proto.CloneOf(env.Msg)})
		}
	}
	cb := nd.unreachable
	n.mu.Unlock()
	if report && cb != nil {
		cb(to)
	}
}

// SetPeer undoes RemovePeer; addresses mean nothing here.
func (e *MemEndpoint) SetPeer(id uint64, _ string) {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if nd := e.liveLocked(); nd != nil {
		delete(nd.forgotten, id)
	}
}

// RemovePeer makes later sends to id drop (and report unreachable), as a
// TCP transport without that peer's address would.
func (e *MemEndpoint) RemovePeer(id uint64) {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if nd := e.liveLocked(); nd != nil {
		nd.forgotten[id] = true
	}
}

// Close takes the node off the network as Crash does.
func (e *MemEndpoint) Close() error {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if e.liveLocked() != nil {
		e.net.downLocked(e.id)
	}
	return nil
}
