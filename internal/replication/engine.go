// Package replication runs a node's Raft groups — one per partition replica
// plus the controller — on go.etcd.io/raft/v3 RawNodes, with the partition
// log as the Raft log (one copy of the data).
//
// One driver goroutine owns every RawNode (multi-raft): it ticks them, steps
// incoming messages and proposals into them, and handles their Ready in
// rounds. A round appends the new entries of every group to their logs,
// sends what may go before the fsync (a leader's appends), waits for one
// fsync round of all touched logs (group commit across partitions), then
// sends the responses that promise durability, applies committed entries
// and advances. Messages to a peer from all groups share one connection.
//
// Tests drive an engine by hand (Tick, Process) on a MemNetwork, which makes
// whole clusters replayable from a seed.
package replication

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/weir-dev/weir/internal/clock"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/replication/transport"
	"github.com/weir-dev/weir/internal/storage"
)

// Errors of proposals and groups.
var (
	// ErrNotLeader: this replica does not lead its group (any more).
	ErrNotLeader = errors.New("not the leader")
	// ErrGroupClosed: the group was removed or the engine closed.
	ErrGroupClosed = errors.New("raft group closed")
	// ErrDropped: Raft refused the proposal (a leadership transfer, or too
	// much uncommitted data).
	ErrDropped = errors.New("proposal dropped")
)

// Config sets up an engine.
type Config struct {
	NodeID uint64
	// TickInterval is Raft's logical clock; elections take ElectionTicks
	// ticks (randomized up to twice that), heartbeats HeartbeatTicks.
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	// MaxSizePerMsg bounds the entries in one append message;
	// MaxInflightMsgs the append messages in flight per follower.
	MaxSizePerMsg   uint64
	MaxInflightMsgs int
	// MaxUncommittedBytes bounds a leader's uncommitted entries per group;
	// proposals beyond it are dropped (the client retries).
	MaxUncommittedBytes uint64
	Clock               clock.Clock
	Logger              *slog.Logger
}

func (c *Config) setDefaults() {
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = 1
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs <= 0 {
		c.MaxInflightMsgs = 256
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = 64 << 20
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Engine runs one node's Raft groups.
type Engine struct {
	cfg    Config
	logger *slog.Logger
	dec    *record.Decompressor
	tr     transport.Transport

	mu     sync.Mutex
	inbox  []item
	closed bool
	wake   chan struct{}

	// Owned by the driver (the goroutine calling Tick and Process).
	groups map[uint64]*Group
	order  []*Group // groups by id, for a deterministic tick order
	dirty  []*Group
	out    map[uint64][]transport.Envelope // messages to send, by peer
	now    int64                           // wall clock of this round, ms
	ticks  int

	stop chan struct{}
	done chan struct{}
}

// item is one unit of work for the driver.
type item struct {
	g    *Group
	gid  uint64
	msg  *raftpb.Message
	prop *Proposal
	fn   func()
}

// New returns an engine; give it a transport with SetTransport, then
// either Start it or drive it with Tick and Process.
func New(cfg Config) *Engine {
	cfg.setDefaults()
	return &Engine{
		cfg:    cfg,
		logger: cfg.Logger.With("node", cfg.NodeID),
		dec:    record.NewDecompressor(),
		wake:   make(chan struct{}, 1),
		groups: map[uint64]*Group{},
		out:    map[uint64][]transport.Envelope{},
	}
}

// SetTransport sets the transport messages go out on. Its handler must be
// the engine's Receive and its unreachable callback Unreachable.
func (e *Engine) SetTransport(tr transport.Transport) { e.tr = tr }

// NodeID is the engine's node.
func (e *Engine) NodeID() uint64 { return e.cfg.NodeID }

// Receive takes messages from a peer (the transport's handler).
func (e *Engine) Receive(from uint64, envs []transport.Envelope) {
	e.mu.Lock()
	for _, env := range envs {
		if env.Msg != nil {
			e.inbox = append(e.inbox, item{gid: env.Group, msg: env.Msg})
		}
	}
	e.mu.Unlock()
	e.signal()
}

// Unreachable tells the groups that a peer could not be reached (the
// transport's callback), so leaders stop streaming to it optimistically.
func (e *Engine) Unreachable(peer uint64) {
	e.run(func() {
		for _, g := range e.order {
			if g.leaderTerm != 0 {
				g.rn.ReportUnreachable(peer)
			}
		}
	})
}

func (e *Engine) enqueue(it item) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false
	}
	e.inbox = append(e.inbox, it)
	e.mu.Unlock()
	e.signal()
	return true
}

// run queues fn to run on the driver.
func (e *Engine) run(fn func()) bool { return e.enqueue(item{fn: fn}) }

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Start runs the driver goroutine with a real ticker.
func (e *Engine) Start() {
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(e.done)
		t := e.cfg.Clock.NewTimer(e.cfg.TickInterval)
		defer t.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-e.wake:
			case <-t.C():
				e.Tick()
				t.Reset(e.cfg.TickInterval)
			}
			if e.Process() {
				e.signal()
			}
		}
	}()
}

// Close stops the driver (if started) and every group: their proposals
// fail and their state files are written. Logs stay open; their owners
// close them.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	e.mu.Unlock()
	if e.stop != nil {
		close(e.stop)
		<-e.done
	}
	for _, g := range e.order {
		g.shutdown(ErrGroupClosed)
	}
	e.groups = map[uint64]*Group{}
	e.order = nil
	e.dec.Close()
}

// reorder rebuilds the sorted group list after a change.
func (e *Engine) reorder() {
	e.order = e.order[:0]
	for _, g := range e.groups {
		e.order = append(e.order, g)
	}
	slices.SortFunc(e.order, func(a, b *Group) int { return cmp.Compare(a.id, b.id) })
}

// Tick advances every group's logical clock by one tick. Driver only.
func (e *Engine) Tick() {
	e.ticks++
	var failed []*Group
	for _, g := range e.order {
		g.rn.Tick()
		e.markDirty(g)
		if g.leaderTerm != 0 {
			g.refreshProgress()
		}
		if e.ticks%stateFlushTicks == 0 {
			// Keeps the applied index a restart resumes from recent, so
			// the high watermark comes back close to where it was.
			if err := g.st.flush(); err != nil {
				g.e.logger.Error("write raft state", "group", g.id, "err", err)
				failed = append(failed, g)
			}
		}
	}
	for _, g := range failed {
		g.fail(errors.New("cannot write raft state"))
	}
}

// stateFlushTicks is how often (in ticks) applied indexes are written.
const stateFlushTicks = 50

func (e *Engine) markDirty(g *Group) {
	if !g.dirty {
		g.dirty = true
		e.dirty = append(e.dirty, g)
	}
}

// Process handles everything queued and one round of Ready. It reports
// whether more work is ready. Driver only.
func (e *Engine) Process() bool {
	e.mu.Lock()
	items := e.inbox
	e.inbox = nil
	e.mu.Unlock()
	for i := range items {
		e.handle(&items[i])
		items[i] = item{}
	}
	return e.round()
}

func (e *Engine) handle(it *item) {
	switch {
	case it.fn != nil:
		it.fn()
	case it.msg != nil:
		g := e.groups[it.gid]
		if g == nil {
			return // a group this node does not (yet) host
		}
		if !g.screen(it.msg) {
			return
		}
		if err := g.rn.Step(it.msg); err == nil {
			e.markDirty(g)
		}
	case it.prop != nil:
		it.g.propose(it.prop)
	}
}

// pendingGroup is a group with a Ready in the current round.
type pendingGroup struct {
	g     *Group
	rd    raft.Ready
	waits []*storage.DurableWait
	later []*raftpb.Message // sent once the round's writes are durable
}

// round handles the Ready of every group that has one.
func (e *Engine) round() bool {
	e.now = e.cfg.Clock.Now().UnixMilli()
	var ready []pendingGroup
	for _, g := range e.dirty {
		g.dirty = false
		if g.removed || !g.rn.HasReady() {
			continue
		}
		ready = append(ready, pendingGroup{g: g, rd: g.rn.Ready()})
	}
	e.dirty = e.dirty[:0]
	if len(ready) == 0 {
		return false
	}
	// Persist: snapshots, entries (buffered), term and vote (fsynced).
	for i := range ready {
		p := &ready[i]
		p.g.noteSoftState(p.rd)
		if err := p.g.persist(p); err != nil {
			p.g.fail(err)
			continue
		}
		for _, m := range p.rd.Messages {
			switch m.GetType() {
			case raftpb.MessageType_MsgAppResp, raftpb.MessageType_MsgVoteResp, raftpb.MessageType_MsgPreVoteResp:
				p.later = append(p.later, m) // they promise durability
			default:
				e.queueMsg(p.g, m)
			}
		}
	}
	e.flush()
	// One fsync round for all logs written.
	for i := range ready {
		p := &ready[i]
		for _, w := range p.waits {
			<-w.Done()
			if err := w.Err(); err != nil && !p.g.removed {
				p.g.fail(fmt.Errorf("sync log: %w", err))
			}
		}
	}
	for i := range ready {
		p := &ready[i]
		if p.g.removed {
			continue
		}
		p.g.persisted()
		for _, m := range p.later {
			e.queueMsg(p.g, m)
		}
	}
	e.flush()
	more := false
	for i := range ready {
		p := &ready[i]
		if p.g.removed {
			continue
		}
		p.g.apply(p.rd.CommittedEntries)
		p.g.rn.Advance(p.rd)
		p.g.publish()
		if p.g.rn.HasReady() {
			e.markDirty(p.g)
			more = true
		}
	}
	return more
}

func (e *Engine) queueMsg(g *Group, m *raftpb.Message) {
	to := m.GetTo()
	e.out[to] = append(e.out[to], transport.Envelope{Group: g.id, Msg: m})
	if m.GetType() == raftpb.MessageType_MsgSnap {
		// The snapshot is only metadata and goes out with this batch; the
		// follower's answer moves the leader on.
		g.rn.ReportSnapshot(to, raft.SnapshotFinish)
	}
}

func (e *Engine) flush() {
	peers := make([]uint64, 0, len(e.out))
	for to, envs := range e.out {
		if len(envs) > 0 {
			peers = append(peers, to)
		}
	}
	slices.Sort(peers) // a deterministic order for simulations
	for _, to := range peers {
		envs := e.out[to]
		if e.tr != nil {
			e.tr.Send(to, envs)
		}
		clear(envs)
		e.out[to] = envs[:0]
	}
}

// GroupConfig describes a group to host. Its log's high watermark belongs
// to the group from then on: it follows the commit index.
type GroupConfig struct {
	ID  uint64
	Log *storage.Log
	// Voters is the initial membership of a group created from nothing
	// (the same on every replica). A replica added to an existing group
	// passes none and learns the membership from the leader.
	Voters []uint64
	// Replay makes the group apply its whole log again at every start,
	// for state machines kept only in memory (the controller).
	Replay bool
	// Forward lets followers pass proposals to the leader (the
	// controller); otherwise only the leader accepts them (partitions).
	Forward bool
	// Campaign starts an election at once instead of after a timeout
	// (the preferred leader of a new group).
	Campaign     bool
	StateMachine StateMachine
}

// AddGroup starts hosting a group on this node. It may be called from any
// goroutine; the group is live once the driver picks it up.
func (e *Engine) AddGroup(gc GroupConfig) (*Group, error) {
	if gc.ID == 0 || gc.Log == nil {
		return nil, fmt.Errorf("add group %d: missing id or log", gc.ID)
	}
	if gc.StateMachine == nil {
		gc.StateMachine = NopStateMachine{}
	}
	st, err := openRaftLog(gc.Log, e.dec, gc.Voters, gc.Replay)
	if err != nil {
		return nil, err
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        e.cfg.NodeID,
		ElectionTick:              e.cfg.ElectionTicks,
		HeartbeatTick:             e.cfg.HeartbeatTicks,
		Storage:                   st,
		Applied:                   st.restartApplied(),
		MaxSizePerMsg:             e.cfg.MaxSizePerMsg,
		MaxInflightMsgs:           e.cfg.MaxInflightMsgs,
		MaxUncommittedEntriesSize: e.cfg.MaxUncommittedBytes,
		CheckQuorum:               true,
		PreVote:                   true,
		DisableProposalForwarding: !gc.Forward,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{e.logger.With("group", gc.ID)},
	})
	if err != nil {
		return nil, fmt.Errorf("start raft group %d: %w", gc.ID, err)
	}
	g := &Group{e: e, id: gc.ID, log: gc.Log, st: st, rn: rn, sm: gc.StateMachine, forward: gc.Forward}
	if applied := st.applied; applied > gc.Log.LastIndex() {
		g.recoverTo = applied
		e.logger.Warn("log ends before entries this replica applied: its disk lost data; it will not vote until repaired",
			"group", gc.ID, "log_end", gc.Log.LastIndex(), "applied", applied)
	}
	g.committed = st.restartApplied()
	// Entries after the applied one may not be committed: hide them from
	// readers and retention until they are.
	if err := gc.Log.LowerHighWatermark(g.endOf(g.committed)); err != nil {
		return nil, fmt.Errorf("raft group %d: %w", gc.ID, err)
	}
	g.publish()
	added := make(chan error, 1)
	if !e.run(func() {
		if _, dup := e.groups[g.id]; dup {
			added <- fmt.Errorf("raft group %d already hosted", g.id)
			return
		}
		e.groups[g.id] = g
		e.reorder()
		if gc.Campaign {
			g.rn.Campaign()
		}
		e.markDirty(g)
		added <- nil
	}) {
		return nil, ErrGroupClosed
	}
	if e.stop == nil {
		// Driven by hand: the caller's next Process adds it.
		return g, nil
	}
	select {
	case err := <-added:
		return g, err
	case <-e.done:
		return nil, ErrGroupClosed
	}
}
