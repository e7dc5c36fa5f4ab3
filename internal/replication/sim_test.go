package replication

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/weir-dev/weir/internal/clock"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/replication/transport"
	"github.com/weir-dev/weir/internal/storage"
)

var (
	simSeed  = flag.Uint64("sim.seed", 0, "run only this simulation seed")
	simSeeds = flag.Int("sim.seeds", 40, "number of simulation seeds to run")
	simSteps = flag.Int("sim.steps", 400, "steps per simulation")
)

// TestSimulation runs whole clusters of engines on a seeded in-memory
// network that drops, duplicates and reorders messages, partitions nodes
// and crashes them, and checks Raft's promises after every step:
// replicas agree on committed entries, acknowledged proposals survive
// where they were acknowledged, high watermarks never go back, and a term
// has at most one leader. A failure prints its seed; rerun it with
// -sim.seed.
func TestSimulation(t *testing.T) {
	seeds := []uint64{*simSeed}
	if *simSeed == 0 {
		seeds = nil
		for i := range *simSeeds {
			seeds = append(seeds, uint64(i+1))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			// Raft draws election timeouts from crypto/rand: seed it too.
			cryptotest.SetGlobalRandom(t, seed)
			s := newSim(t, seed)
			defer s.close()
			s.run(*simSteps)
			if t.Failed() {
				t.Logf("replay with: go test ./internal/replication -run 'TestSimulation/^%d$' -sim.seed %d", seed, seed)
			}
		})
	}
}

type sim struct {
	t      *testing.T
	seed   uint64
	rng    *rand.Rand
	net    *transport.MemNetwork
	nodes  []*simNode
	groups []uint64
	next   int // next value number
	acked  []ackedProposal
	open   []openProposal
	// leaders remembers who led each group in each term.
	leaders map[[2]uint64]uint64
	// committed remembers every committed entry seen, by group and index.
	committed map[uint64]map[uint64]entryID
}

type simNode struct {
	id     uint64
	dir    string
	up     bool
	syncer *storage.Syncer
	eng    *Engine
	logs   map[uint64]*storage.Log
	groups map[uint64]*Group
	sms    map[uint64]*simSM
}

type entryID struct {
	term uint64
	base int64
	crc  uint32
}

type ackedProposal struct {
	group, index uint64
	base         int64
	value        string
}

type openProposal struct {
	group uint64
	p     *Proposal
	value string
}

// simSM checks the driver's calls on one replica.
type simSM struct {
	NopStateMachine
	t        *testing.T
	log      *storage.Log
	node     uint64
	hw       int64
	applied  uint64
	appended uint64
	restores int
}

func (m *simSM) Appended(index uint64, _ []byte) {
	if index <= m.appended {
		m.t.Errorf("node %d: appended %d after %d", m.node, index, m.appended)
	}
	m.appended = index
}

func (m *simSM) Truncated(index uint64) {
	if index < m.applied {
		m.t.Errorf("node %d: truncated to %d below applied %d", m.node, index, m.applied)
	}
	m.appended = index
}

func (m *simSM) Restored(index uint64) {
	m.appended, m.applied = index, index
	m.restores++
}

func (m *simSM) Apply(index uint64, _ []byte) {
	if index <= m.applied {
		m.t.Errorf("node %d: applied %d again after %d", m.node, index, m.applied)
	}
	m.applied = index
}

func (m *simSM) Committed(index uint64, hw int64) {
	if hw < m.hw {
		m.t.Errorf("node %d: high watermark went back from %d to %d", m.node, m.hw, hw)
	}
	m.hw = hw
	m.applied = max(m.applied, index)
	if got := m.log.HighWatermark(); got != hw {
		m.t.Errorf("node %d: log high watermark %d, committed up to %d", m.node, got, hw)
	}
}

func simDir(t *testing.T) string {
	// tmpfs keeps thousands of fsyncs cheap; the logic under test is the
	// same on any file system.
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "weir-sim-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

func newSim(t *testing.T, seed uint64) *sim {
	s := &sim{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed)),
		net:       transport.NewMemNetwork(int64(seed)),
		leaders:   map[[2]uint64]uint64{},
		committed: map[uint64]map[uint64]entryID{},
	}
	n := 3
	if s.rng.IntN(4) == 0 {
		n = 5
	}
	s.groups = []uint64{1, 2}
	base := simDir(t)
	for i := range n {
		s.nodes = append(s.nodes, &simNode{id: uint64(i + 1), dir: fmt.Sprintf("%s/n%d", base, i+1)})
	}
	for _, nd := range s.nodes {
		s.start(nd, true)
	}
	s.net.SetDropRate(float64(s.rng.IntN(10)) / 100)
	s.net.SetDuplicateRate(float64(s.rng.IntN(5)) / 100)
	s.net.SetReorder(s.rng.IntN(2) == 0)
	return s
}

func (s *sim) voters() []uint64 {
	var v []uint64
	for _, nd := range s.nodes {
		v = append(v, nd.id)
	}
	return v
}

func (s *sim) start(nd *simNode, first bool) {
	t := s.t
	nd.syncer = storage.NewSyncer(1)
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("WEIR_SIM_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	nd.eng = New(Config{NodeID: nd.id, Clock: clock.NewFake(time.UnixMilli(1_700_000_000_000)), Logger: logger})
	if first {
		nd.eng.SetTransport(s.net.Endpoint(nd.id, nd.eng.Receive, nd.eng.Unreachable))
	} else {
		nd.eng.SetTransport(s.net.Restart(nd.id, nd.eng.Receive, nd.eng.Unreachable))
	}
	nd.logs, nd.groups, nd.sms = map[uint64]*storage.Log{}, map[uint64]*Group{}, map[uint64]*simSM{}
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 2 << 10 // many segments, so rolls happen
	cfg.RetentionBytes = 8 << 10
	cfg.RetentionAge = -1
	for _, gid := range s.groups {
		l, err := storage.Open(fmt.Sprintf("%s/g%d", nd.dir, gid), storage.Options{Config: cfg, Syncer: nd.syncer})
		if err != nil {
			t.Fatalf("seed %d: node %d: open log: %v", s.seed, nd.id, err)
		}
		sm := &simSM{t: t, node: nd.id, hw: -1, log: l}
		g, err := nd.eng.AddGroup(GroupConfig{ID: gid, Log: l, Voters: s.voters(), StateMachine: sm})
		if err != nil {
			t.Fatalf("seed %d: node %d: add group: %v", s.seed, nd.id, err)
		}
		nd.logs[gid], nd.groups[gid], nd.sms[gid] = l, g, sm
	}
	nd.up = true
	nd.eng.Process()
}

func (s *sim) crash(nd *simNode) {
	s.net.Crash(nd.id)
	nd.up = false
	// No Close: the state files keep what they last had, buffered log
	// data is lost.
	for _, l := range nd.logs {
		l.Abandon()
	}
	nd.syncer.Close()
}

func (s *sim) close() {
	for _, nd := range s.nodes {
		if nd.up {
			nd.eng.Close()
			for _, l := range nd.logs {
				l.Close()
			}
			nd.syncer.Close()
		}
	}
}

// settle lets every live node process what it has, delivering at most
// budget messages.
func (s *sim) settle(budget int) {
	for range 50 {
		busy := false
		for _, nd := range s.nodes {
			if nd.up {
				for nd.eng.Process() {
					busy = true
				}
			}
		}
		if budget > 0 {
			k := s.net.Deliver(min(budget, 8))
			budget -= k
			if k > 0 {
				busy = true
			}
		}
		if !busy {
			return
		}
	}
}

func (s *sim) run(steps int) {
	down := func() int {
		n := 0
		for _, nd := range s.nodes {
			if !nd.up {
				n++
			}
		}
		return n
	}
	for step := 0; step < steps && !s.t.Failed(); step++ {
		nd := s.nodes[s.rng.IntN(len(s.nodes))]
		switch r := s.rng.IntN(100); {
		case r < 30:
			for _, n := range s.nodes {
				if n.up {
					n.eng.Tick()
				}
			}
		case r < 55:
			s.propose()
		case r < 58 && nd.up && down() < (len(s.nodes)-1)/2:
			s.crash(nd)
		case r < 63 && !nd.up:
			s.start(nd, false)
		case r < 65:
			a, b := s.nodes[s.rng.IntN(len(s.nodes))], s.nodes[s.rng.IntN(len(s.nodes))]
			if a != b {
				s.net.Partition(a.id, b.id)
			}
		case r < 66:
			s.net.Isolate(nd.id)
		case r < 70:
			s.net.HealAll()
		case r < 73 && nd.up:
			// Retention deletes old segments: lagging replicas then need
			// a snapshot.
			for _, l := range nd.logs {
				if _, err := l.ApplyRetention(); err != nil {
					s.t.Fatalf("seed %d: node %d: retention: %v", s.seed, nd.id, err)
				}
			}
		}
		s.settle(20 + s.rng.IntN(40))
		s.check()
	}
	s.converge()
}

func (s *sim) propose() {
	for _, nd := range s.nodes {
		if !nd.up {
			continue
		}
		for _, gid := range s.groups {
			g := nd.groups[gid]
			if st := g.Status(); !st.IsLeader || s.rng.IntN(2) == 0 {
				continue
			}
			value := fmt.Sprintf("g%d-v%d-%s", gid, s.next, strings.Repeat("x", s.rng.IntN(300)))
			s.next++
			n := 1 + s.rng.IntN(3)
			recs := make([]record.Record, n)
			for i := range recs {
				recs[i] = record.Record{Value: []byte(value)}
			}
			b, err := record.Build(record.BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
			if err != nil {
				s.t.Fatal(err)
			}
			s.open = append(s.open, openProposal{group: gid, p: g.Propose(b), value: value})
		}
	}
}

// check runs the invariants on every live node.
func (s *sim) check() {
	// Acknowledgements.
	keep := s.open[:0]
	for _, op := range s.open {
		select {
		case <-op.p.Done():
			if op.p.Err() == nil && op.p.localErr == nil && op.p.index != 0 {
				base, _ := op.p.Offsets()
				s.acked = append(s.acked, ackedProposal{group: op.group, index: op.p.index, base: base, value: op.value})
			}
		default:
			keep = append(keep, op)
		}
	}
	s.open = keep
	for _, nd := range s.nodes {
		if !nd.up {
			continue
		}
		for _, gid := range s.groups {
			st := nd.groups[gid].Status()
			if st.Failed != nil {
				s.t.Fatalf("seed %d: node %d group %d failed: %v", s.seed, nd.id, gid, st.Failed)
			}
			if st.IsLeader {
				key := [2]uint64{gid, st.Term}
				if other, ok := s.leaders[key]; ok && other != nd.id {
					s.t.Fatalf("seed %d: group %d term %d has two leaders: %d and %d", s.seed, gid, st.Term, other, nd.id)
				}
				s.leaders[key] = nd.id
			}
			s.checkCommitted(nd, gid, st.Commit)
		}
	}
}

// checkCommitted compares the node's committed entries with every
// committed entry seen anywhere before.
func (s *sim) checkCommitted(nd *simNode, gid, commit uint64) {
	l := nd.logs[gid]
	first := l.FirstIndex()
	seen := s.committed[gid]
	if seen == nil {
		seen = map[uint64]entryID{}
		s.committed[gid] = seen
	}
	for i := first; i <= commit; i++ {
		id, ok := s.entryAt(l, i)
		if !ok {
			s.t.Fatalf("seed %d: node %d group %d: committed entry %d unreadable (log %d..%d)", s.seed, nd.id, gid, i, first, l.LastIndex())
		}
		if prev, ok := seen[i]; ok && prev != id {
			s.t.Fatalf("seed %d: node %d group %d: committed entry %d is %+v, was %+v elsewhere", s.seed, nd.id, gid, i, id, prev)
		}
		seen[i] = id
	}
}

func (s *sim) entryAt(l *storage.Log, i uint64) (entryID, bool) {
	bs, err := l.EntryBatches(i, i+1, 1)
	if err != nil || len(bs) != 1 {
		return entryID{}, false
	}
	b := bs[0]
	h, err := record.ParseHeader(b)
	if err != nil {
		return entryID{}, false
	}
	return entryID{term: uint64(uint32(h.LeaderEpoch)), base: h.BaseOffset, crc: h.CRC}, true
}

// converge heals everything, restarts crashed nodes and runs until every
// replica holds the same log; then every acknowledged proposal must be
// where it was acknowledged.
func (s *sim) converge() {
	if s.t.Failed() {
		return
	}
	s.net.HealAll()
	s.net.SetDropRate(0)
	s.net.SetDuplicateRate(0)
	for _, nd := range s.nodes {
		if !nd.up {
			s.start(nd, false)
		}
	}
	for round := 0; ; round++ {
		for _, nd := range s.nodes {
			nd.eng.Tick()
		}
		s.settle(10000)
		s.check()
		if s.t.Failed() {
			return
		}
		if s.converged() {
			break
		}
		if round > 2000 {
			s.t.Fatalf("seed %d: replicas did not converge", s.seed)
		}
	}
	for _, a := range s.acked {
		for _, nd := range s.nodes {
			l := nd.logs[a.group]
			if a.index < l.FirstIndex() {
				continue
			}
			bs, err := l.EntryBatches(a.index, a.index+1, 1)
			if err != nil {
				s.t.Fatalf("seed %d: node %d lost acknowledged entry %d of group %d: %v", s.seed, nd.id, a.index, a.group, err)
			}
			var got []byte
			record.ForEachRecord(bs[0], nil, func(_ *record.Header, r *record.Record) error {
				got = r.Value
				return nil
			})
			if record.PeekBaseOffset(bs[0]) != a.base || !bytes.Equal(got, []byte(a.value)) {
				s.t.Fatalf("seed %d: node %d group %d entry %d holds %q at %d; %q was acknowledged at %d",
					s.seed, nd.id, a.group, a.index, got, record.PeekBaseOffset(bs[0]), a.value, a.base)
			}
		}
	}
	if testing.Verbose() {
		restores, first := 0, uint64(0)
		for _, nd := range s.nodes {
			for gid, sm := range nd.sms {
				restores += sm.restores
				first = max(first, nd.logs[gid].FirstIndex())
			}
		}
		st := s.net.Stats()
		s.t.Logf("seed %d: %d nodes, %d proposals acknowledged, %d snapshots installed, highest first index %d, network %+v",
			s.seed, len(s.nodes), len(s.acked), restores, first, st)
	}
}

func (s *sim) converged() bool {
	for _, gid := range s.groups {
		var lasts, commits []uint64
		for _, nd := range s.nodes {
			lasts = append(lasts, nd.logs[gid].LastIndex())
			commits = append(commits, nd.groups[gid].Status().Commit)
		}
		if slices.Min(lasts) != slices.Max(lasts) || slices.Min(commits) != slices.Max(lasts) {
			return false
		}
	}
	return true
}

// A replica cut off while the others delete old segments comes back
// through a snapshot: its log restarts where the leader's begins, at the
// same offset, and it then agrees with the others.
func TestSnapshotCatchUp(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 7)
	s := newSim(t, 7)
	defer s.close()
	s.net.SetDropRate(0)
	s.net.SetDuplicateRate(0)
	lagging := s.nodes[len(s.nodes)-1]
	s.net.Isolate(lagging.id)
	for range 300 {
		for _, n := range s.nodes {
			n.eng.Tick()
		}
		s.propose()
		s.settle(1000)
		s.check()
	}
	for _, nd := range s.nodes {
		if nd != lagging {
			for _, l := range nd.logs {
				if _, err := l.ApplyRetention(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for gid, l := range lagging.logs {
		for _, nd := range s.nodes {
			if nd != lagging && nd.logs[gid].FirstIndex() <= l.LastIndex()+1 {
				t.Fatalf("group %d: node %d still has entry %d the lagging replica needs; retention did not cut enough", gid, nd.id, l.LastIndex()+1)
			}
		}
	}
	s.converge()
	for gid, sm := range lagging.sms {
		if sm.restores == 0 {
			t.Errorf("group %d: the lagging replica caught up without a snapshot", gid)
		}
		want := s.nodes[0].logs[gid]
		if got := lagging.logs[gid]; got.LogEndOffset() != want.LogEndOffset() || got.LastIndex() != want.LastIndex() {
			t.Errorf("group %d: lagging replica ends at offset %d index %d, the others at %d %d", gid, got.LogEndOffset(), got.LastIndex(), want.LogEndOffset(), want.LastIndex())
		}
	}
}

// TestLeaseLapsesWhenCutOff: a leader that stops hearing from a majority
// stops claiming a lease half an election timeout after it last did, and
// holds one again once they answer.
func TestLeaseLapsesWhenCutOff(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 11)
	s := newSim(t, 11)
	defer s.close()
	s.net.SetDropRate(0)
	s.net.SetDuplicateRate(0)
	var leader *simNode
	for range 200 {
		for _, n := range s.nodes {
			n.eng.Tick()
		}
		s.settle(1000)
		for _, nd := range s.nodes {
			if st := nd.groups[1].Status(); st.IsLeader && st.Ready {
				leader = nd
			}
		}
		if leader != nil {
			break
		}
	}
	if leader == nil {
		t.Fatal("no leader for group 1")
	}
	clk := leader.eng.cfg.Clock.(*clock.Fake)
	g := leader.groups[1]
	if !g.LeaseHeld(clk.Now()) {
		t.Fatal("a ready leader with answering followers holds no lease")
	}
	s.net.Isolate(leader.id)
	clk.Advance(400 * time.Millisecond)
	if !g.LeaseHeld(clk.Now()) {
		t.Fatal("lease lapsed before half an election timeout")
	}
	clk.Advance(200 * time.Millisecond)
	if g.LeaseHeld(clk.Now()) {
		t.Fatal("a leader cut off for more than half an election timeout still holds its lease")
	}
	s.net.HealAll()
	for range 3 {
		leader.eng.Tick()
		s.settle(1000)
	}
	if st := g.Status(); st.IsLeader && !g.LeaseHeld(clk.Now()) {
		t.Fatal("still leading after the network healed, but no lease")
	}
}

// TestWipedFollowerRepairsWhileIdle: a follower loses its whole log (and
// Raft state) and comes back before the leader notices; with no new
// proposals, it still gets the log back.
func TestWipedFollowerRepairsWhileIdle(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 5)
	s := newSim(t, 5)
	defer s.close()
	s.net.SetDropRate(0)
	s.net.SetDuplicateRate(0)
	for range 100 {
		for _, n := range s.nodes {
			n.eng.Tick()
		}
		s.propose()
		s.settle(1000)
	}
	for range 20 { // let every follower catch up
		for _, n := range s.nodes {
			n.eng.Tick()
		}
		s.settle(1000)
	}
	var leader, follower *simNode
	for _, nd := range s.nodes {
		if nd.groups[1].Status().IsLeader {
			leader = nd
		} else {
			follower = nd
		}
	}
	if leader == nil || follower == nil {
		t.Fatal("no leader and follower for group 1")
	}
	want := leader.logs[1].LastIndex()
	s.crash(follower)
	if err := os.RemoveAll(fmt.Sprintf("%s/g1", follower.dir)); err != nil {
		t.Fatal(err)
	}
	s.start(follower, false)
	for range 200 {
		for _, n := range s.nodes {
			n.eng.Tick()
		}
		s.settle(1000)
		if follower.logs[1].LastIndex() >= want {
			return
		}
	}
	t.Fatalf("wiped follower has index %d after idle ticks, leader %d", follower.logs[1].LastIndex(), want)
}
