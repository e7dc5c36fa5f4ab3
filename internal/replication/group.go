package replication

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/storage"
)

// StateMachine is what a group's owner hears from the driver. Every call
// runs on the driver goroutine, in log order, and must not block.
type StateMachine interface {
	// Appended: entry index (a Kafka batch, offsets assigned) was appended
	// to the local log. Every replica hears it, leader included, before
	// the entry is committed: state derived from the whole log (producer
	// sequences) follows it.
	Appended(index uint64, batch []byte)
	// Truncated: the uncommitted entries after index were cut from the
	// local log (a new leader overwrote them).
	Truncated(index uint64)
	// Restored: the log was reset to a snapshot; it now starts after
	// index.
	Restored(index uint64)
	// Apply: committed entry index with its batch (internal entries are
	// not passed).
	Apply(index uint64, batch []byte)
	// Committed: entries through index are committed; hw is the offset
	// after them, and the log's high watermark is already there.
	Committed(index uint64, hw int64)
	// StatusChanged: leadership, readiness or membership changed.
	StatusChanged(st Status)
}

// NopStateMachine ignores everything; embed it to implement only some
// methods.
type NopStateMachine struct{}

func (NopStateMachine) Appended(uint64, []byte) {}
func (NopStateMachine) Truncated(uint64)        {}
func (NopStateMachine) Restored(uint64)         {}
func (NopStateMachine) Apply(uint64, []byte)    {}
func (NopStateMachine) Committed(uint64, int64) {}
func (NopStateMachine) StatusChanged(Status)    {}

// Status is a group's state as last published by the driver.
type Status struct {
	Group  uint64
	Leader uint64 // 0 when unknown
	Term   uint64
	// IsLeader: this replica leads. Ready: it has committed an entry of
	// its own term, so its high watermark is final and it may serve.
	IsLeader bool
	Ready    bool
	// Membership: voters (both halves while joint) and learners.
	Voters         []uint64
	VotersOutgoing []uint64
	Learners       []uint64
	Commit         uint64
	LastIndex      uint64
	// InSync (leader only): members the leader hears from and streams to,
	// itself included — Kafka's ISR.
	InSync []uint64
	// Match (leader only): each member's last replicated index.
	Match map[uint64]uint64
	// Failed is set when the group stopped after an I/O error.
	Failed error
}

// Joint reports whether a membership change is half-way.
func (s *Status) Joint() bool { return len(s.VotersOutgoing) > 0 }

// Members lists every voter and learner once.
func (s *Status) Members() []uint64 {
	out := slices.Concat(s.Voters, s.VotersOutgoing, s.Learners)
	slices.Sort(out)
	return slices.Compact(out)
}

// Group is one Raft group hosted on this node.
type Group struct {
	e       *Engine
	id      uint64
	log     *storage.Log
	st      *raftLog
	rn      *raft.RawNode
	sm      StateMachine
	forward bool

	status atomic.Pointer[Status]

	// Driver-owned.
	dirty      bool
	removed    bool
	failed     error
	unmatched  []*Proposal // proposed, not yet seen in the log
	inflight   []*Proposal // in the log, waiting for commit
	local      []*Proposal // appended this round, waiting for the fsync
	ends       []indexEnd  // offset after each appended, uncommitted entry
	lead, term uint64
	raftState  raft.StateType
	leaderTerm uint64 // the term this replica leads, 0 when it does not
	readyIndex uint64 // index of the leader's first entry of its term
	wasReady   bool
	committed  uint64
	inSync     []uint64
	match      map[uint64]uint64
	changed    bool // publish a new status
	// recoverTo is set when the log came back shorter than what this
	// replica had applied (its disk lost acknowledged data): until the
	// log reaches it again the replica votes for nobody, so it cannot help
	// elect a leader missing entries it had helped commit.
	recoverTo uint64
	// lastResp is when each follower last answered this leader (driver
	// only); lease is the wall-clock time (Unix ns) until which this
	// leader may serve reads: a majority answered recently enough that no
	// other leader can have been elected yet.
	lastResp map[uint64]time.Time
	lease    atomic.Int64
}

// LeaseHeld reports whether this replica leads with a majority's recent
// acknowledgement, so what it serves is current: a leader cut off (or
// paused) stops serving before another can be elected.
func (g *Group) LeaseHeld(now time.Time) bool {
	st := g.status.Load()
	if st == nil || !st.IsLeader {
		return false
	}
	if len(st.Voters) <= 1 && len(st.VotersOutgoing) == 0 {
		return true
	}
	return now.UnixNano() < g.lease.Load()
}

// noteResponse records a follower's answer and extends the lease to the
// time a majority had answered by, plus half an election timeout (the
// least time after which a follower that heard the leader then may start
// an election), on the driver.
func (g *Group) noteResponse(from uint64) {
	now := g.e.cfg.Clock.Now()
	if g.lastResp == nil {
		g.lastResp = map[uint64]time.Time{}
	}
	g.lastResp[from] = now
	cs := g.st.currentConf()
	lease := g.quorumTime(cs.GetVoters(), now)
	if out := cs.GetVotersOutgoing(); len(out) > 0 {
		if o := g.quorumTime(out, now); o.Before(lease) {
			lease = o
		}
	}
	half := time.Duration(g.e.cfg.ElectionTicks) * g.e.cfg.TickInterval / 2
	g.lease.Store(lease.Add(half).UnixNano())
}

// quorumTime is the time by which a majority of voters (this node at now)
// had answered.
func (g *Group) quorumTime(voters []uint64, now time.Time) time.Time {
	times := make([]time.Time, 0, len(voters))
	for _, v := range voters {
		switch t, ok := g.lastResp[v]; {
		case v == g.e.cfg.NodeID:
			times = append(times, now)
		case ok:
			times = append(times, t)
		default:
			times = append(times, time.Time{})
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return b.Compare(a) })
	return times[len(times)/2]
}

// screen adapts an incoming message to a replica whose disk lost its log
// tail, which Raft assumes never happens; false drops the message.
func (g *Group) screen(m *raftpb.Message) bool {
	last := g.log.LastIndex()
	if g.recoverTo != 0 && last >= g.recoverTo {
		g.e.logger.Info("replica caught up after losing its log tail", "group", g.id, "index", last)
		g.recoverTo = 0
	}
	switch m.GetType() {
	case raftpb.MessageType_MsgHeartbeat:
		// The leader's idea of what this replica holds may predate the
		// loss; entries through the log end still match the leader's.
		if m.GetCommit() > last {
			m.Commit = new(last)
			// Tell the leader, which would otherwise never re-send what
			// it believes this replica has (on an idle partition nothing
			// new would make it find out): a rejection below its match
			// index, which Raft ignores as stale and followerLostTail
			// acts on.
			g.e.queueMsg(g, &raftpb.Message{Type: raftpb.MessageType_MsgAppResp.Enum(), To: new(m.GetFrom()),
				From: new(g.e.cfg.NodeID), Term: new(m.GetTerm()), Index: new(last), Reject: new(true), RejectHint: new(last)})
		}
	case raftpb.MessageType_MsgVote, raftpb.MessageType_MsgPreVote:
		return g.recoverTo == 0
	case raftpb.MessageType_MsgAppResp:
		if m.GetReject() && g.leaderTerm != 0 {
			g.followerLostTail(m)
		}
		if g.leaderTerm != 0 && m.GetTerm() == g.leaderTerm {
			g.noteResponse(m.GetFrom())
		}
	case raftpb.MessageType_MsgHeartbeatResp:
		if g.leaderTerm != 0 && m.GetTerm() == g.leaderTerm {
			g.noteResponse(m.GetFrom())
		}
	}
	return true
}

// followerLostTail handles a follower that rejects entries below what it
// had acknowledged: Raft's leader ignores such rejections as stale and
// would never resend the lost entries, so it hands leadership to another
// up-to-date voter, whose fresh view of the followers repairs it.
func (g *Group) followerLostTail(m *raftpb.Message) {
	from := m.GetFrom()
	var lost bool
	var best, bestMatch uint64
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		switch {
		case id == from:
			lost = m.GetRejectHint() < pr.Match
		case id != g.e.cfg.NodeID && !pr.IsLearner && pr.Match >= bestMatch:
			best, bestMatch = id, pr.Match
		}
	})
	if !lost || best == 0 {
		return
	}
	g.e.logger.Warn("follower lost acknowledged entries; handing leadership over so it can be repaired", "group", g.id, "follower", from, "to", best)
	g.rn.TransferLeader(best)
}

type indexEnd struct {
	index uint64
	next  int64
}

// ID is the group's id.
func (g *Group) ID() uint64 { return g.id }

// Log is the group's log.
func (g *Group) Log() *storage.Log { return g.log }

// Status returns the group's state as of the driver's last round.
func (g *Group) Status() Status { return *g.status.Load() }

// Proposal is a batch on its way into a group's log.
type Proposal struct {
	data []byte
	g    *Group
	// Set on the driver before local closes.
	index      uint64
	term       uint64
	baseOffset int64
	lastOffset int64
	localErr   error
	err        error
	local      chan struct{}
	done       chan struct{}
	localDone  bool
}

// Local is closed once the batch is in this node's log and fsynced (or
// the proposal failed): acks=1.
func (p *Proposal) Local() <-chan struct{} { return p.local }

// Done is closed once the batch is committed (or the proposal failed):
// acks=all.
func (p *Proposal) Done() <-chan struct{} { return p.done }

// LocalErr is the outcome of Local, once it is closed.
func (p *Proposal) LocalErr() error { return p.localErr }

// Err is the outcome of Done, once it is closed.
func (p *Proposal) Err() error { return p.err }

// Offsets are the batch's offsets, known once Local is closed without
// error.
func (p *Proposal) Offsets() (base, last int64) { return p.baseOffset, p.lastOffset }

// Index is the batch's Raft index and term, known once Local is closed.
func (p *Proposal) Index() (index, term uint64) { return p.index, p.term }

// Propose appends batch (one Kafka batch) to the group's log through Raft.
// The batch's header is rewritten in place when it is stored (offsets and
// leader epoch). Only the leader accepts proposals unless the group
// forwards them; a forwarded proposal completes once it is on its way
// (the caller learns the outcome from what it applies).
func (g *Group) Propose(batch []byte) *Proposal {
	p := &Proposal{data: batch, g: g, local: make(chan struct{}), done: make(chan struct{})}
	if !g.e.enqueue(item{g: g, prop: p}) {
		p.fail(ErrGroupClosed)
	}
	return p
}

func (p *Proposal) fail(err error) {
	if !p.localDone {
		p.localDone = true
		p.localErr = err
		close(p.local)
	}
	p.err = err
	close(p.done)
}

func (p *Proposal) succeedLocal() {
	if !p.localDone {
		p.localDone = true
		close(p.local)
	}
}

// ProposeConfChange asks the group to change its membership; progress
// shows in Status.
func (g *Group) ProposeConfChange(cc *raftpb.ConfChangeV2) {
	g.e.run(func() {
		if g.removed {
			return
		}
		if err := g.rn.ProposeConfChange(cc); err != nil {
			g.e.logger.Info("membership change refused", "group", g.id, "err", err)
		}
		g.e.markDirty(g)
	})
}

// TransferLeadership asks the leader to hand over to a member.
func (g *Group) TransferLeadership(to uint64) {
	g.e.run(func() {
		if !g.removed {
			g.rn.TransferLeader(to)
			g.e.markDirty(g)
		}
	})
}

// Campaign makes this replica stand for election now.
func (g *Group) Campaign() {
	g.e.run(func() {
		if !g.removed {
			g.rn.Campaign()
			g.e.markDirty(g)
		}
	})
}

// Remove stops hosting the group: pending proposals fail, its state file
// is written; the log stays open for its owner to close or delete.
func (g *Group) Remove() {
	done := make(chan struct{})
	if !g.e.run(func() {
		defer close(done)
		if g.removed {
			return
		}
		delete(g.e.groups, g.id)
		g.e.reorder()
		g.shutdown(ErrGroupClosed)
	}) {
		return
	}
	if g.e.stop != nil {
		select {
		case <-done:
		case <-g.e.done:
		}
	}
}

func (g *Group) shutdown(err error) {
	g.removed = true
	g.failProposals(err)
	if g.failed == nil {
		if ferr := g.st.flush(); ferr != nil {
			g.e.logger.Warn("write raft state", "group", g.id, "err", ferr)
		}
	}
}

// fail stops a group whose log failed: it serves nothing until the node
// restarts and recovers it (from its own disk and the other replicas).
func (g *Group) fail(err error) {
	if g.removed {
		return
	}
	g.e.logger.Error("raft group stopped", "group", g.id, "err", err)
	g.failed = err
	delete(g.e.groups, g.id)
	g.e.reorder()
	g.shutdown(err)
	g.changed = true
	g.publish()
}

func (g *Group) failProposals(err error) {
	for _, list := range [][]*Proposal{g.unmatched, g.local, g.inflight} {
		for _, p := range list {
			p.fail(err)
		}
	}
	g.unmatched, g.local, g.inflight = nil, nil, nil
}

// propose runs on the driver.
func (g *Group) propose(p *Proposal) {
	switch {
	case g.removed:
		p.fail(ErrGroupClosed)
		return
	case g.leaderTerm == 0 && !g.forward:
		p.fail(ErrNotLeader)
		return
	}
	if err := g.rn.Propose(p.data); err != nil {
		p.fail(fmt.Errorf("%w: %v", ErrDropped, err))
		return
	}
	g.e.markDirty(g)
	if g.forward {
		// Possibly forwarded to the leader, and mixed with other nodes'
		// proposals: its fate shows in what gets applied.
		p.succeedLocal()
		close(p.done)
		return
	}
	g.unmatched = append(g.unmatched, p)
}

// noteSoftState follows leadership changes. A replica that stops leading
// fails every proposal it has not seen committed: the client retries, and
// idempotent producers are deduplicated by the new leader.
func (g *Group) noteSoftState(rd raft.Ready) {
	if rd.HardState != nil && rd.HardState.GetTerm() != g.term {
		g.term = rd.HardState.GetTerm()
		g.changed = true
	}
	if rd.SoftState != nil {
		g.lead, g.raftState = rd.SoftState.Lead, rd.SoftState.RaftState
		g.changed = true
	}
	leading := g.raftState == raft.StateLeader
	if g.leaderTerm != 0 && (!leading || g.leaderTerm != g.term) {
		g.leaderTerm, g.readyIndex, g.wasReady = 0, 0, false
		g.lastResp = nil
		g.lease.Store(0)
		g.inSync, g.match = nil, nil
		g.failProposals(ErrNotLeader)
	}
	if leading && g.leaderTerm == 0 {
		g.leaderTerm = g.term
	}
}

// persist writes a Ready's snapshot, entries and hard state.
func (g *Group) persist(p *pendingGroup) error {
	rd := &p.rd
	if !raft.IsEmptySnap(rd.Snapshot) {
		if _, err := g.st.install(rd.Snapshot); err != nil {
			return fmt.Errorf("install snapshot: %w", err)
		}
		idx := rd.Snapshot.GetMetadata().GetIndex()
		g.ends = nil
		g.committed = idx
		g.failProposals(ErrNotLeader)
		g.sm.Restored(idx)
		g.changed = true
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].GetIndex()
		if last := g.log.LastIndex(); first <= last {
			if err := g.log.TruncateAfterIndex(first - 1); err != nil {
				return fmt.Errorf("truncate after %d: %w", first-1, err)
			}
			for len(g.ends) > 0 && g.ends[len(g.ends)-1].index >= first {
				g.ends = g.ends[:len(g.ends)-1]
			}
			g.sm.Truncated(first - 1)
		} else if first != last+1 {
			return fmt.Errorf("entries start at %d, the log ends at %d", first, last)
		}
		var next int64
		for _, ent := range rd.Entries {
			batch := entryBatch(ent, g.e.now)
			ar, err := g.log.Append(batch, int32(ent.GetTerm()), 0)
			if err != nil {
				return fmt.Errorf("append entry %d: %w", ent.GetIndex(), err)
			}
			if ar.Index != ent.GetIndex() {
				return fmt.Errorf("entry %d stored at index %d", ent.GetIndex(), ar.Index)
			}
			next = ar.LastOffset + 1
			g.ends = append(g.ends, indexEnd{index: ar.Index, next: next})
			internal := record.PeekInternal(batch)
			if g.leaderTerm != 0 && ent.GetTerm() == g.leaderTerm {
				if internal && g.readyIndex == 0 && ent.GetType() == raftpb.EntryType_EntryNormal {
					g.readyIndex = ar.Index
				}
				if !internal && !g.forward {
					g.match1(ent, ar)
				}
			}
			if !internal {
				g.sm.Appended(ar.Index, batch)
			}
		}
		p.waits = append(p.waits, g.log.SyncTo(next))
	}
	if rd.HardState != nil {
		if err := g.st.setHardState(rd.HardState); err != nil {
			return fmt.Errorf("write raft state: %w", err)
		}
	}
	return nil
}

// match1 pairs a leader's new entry with the proposal that made it. Raft
// appends a leader's proposals in the order they were made (and copies
// their data), and in a group that does not forward proposals nothing else
// adds normal entries of the leader's term, so they pair in order.
func (g *Group) match1(ent *raftpb.Entry, ar storage.AppendResult) {
	if len(g.unmatched) == 0 {
		return
	}
	p := g.unmatched[0]
	g.unmatched[0] = nil
	g.unmatched = g.unmatched[1:]
	p.index, p.term = ar.Index, ent.GetTerm()
	p.baseOffset, p.lastOffset = ar.BaseOffset, ar.LastOffset
	g.local = append(g.local, p)
}

// persisted runs once the round's writes are durable.
func (g *Group) persisted() {
	for _, p := range g.local {
		p.succeedLocal()
		g.inflight = append(g.inflight, p)
	}
	clear(g.local)
	g.local = g.local[:0]
}

// apply hands committed entries to the state machine.
func (g *Group) apply(ents []*raftpb.Entry) {
	if len(ents) == 0 {
		g.completeCommitted()
		return
	}
	for _, ent := range ents {
		idx := ent.GetIndex()
		switch ent.GetType() {
		case raftpb.EntryType_EntryConfChange, raftpb.EntryType_EntryConfChangeV2:
			if err := g.applyConfChange(ent); err != nil {
				g.fail(err)
				return
			}
		default:
			// Internal entries come back with their (empty) data only.
			if len(ent.Data) >= record.HeaderSize {
				g.sm.Apply(idx, ent.Data)
			}
		}
		g.committed = idx
	}
	g.st.markApplied(g.committed)
	hw := g.endOf(g.committed)
	g.log.SetHighWatermark(hw)
	g.sm.Committed(g.committed, hw)
	g.completeCommitted()
	if ready := g.readyIndex != 0 && g.committed >= g.readyIndex; ready != g.wasReady {
		g.wasReady = ready
		g.changed = true
	}
}

// applyConfChange applies a membership change (its data is the encoded
// change, whether the entry came from memory or the log).
func (g *Group) applyConfChange(ent *raftpb.Entry) error {
	var cc raftpb.ConfChangeI
	data := ent.Data
	if ent.GetType() == raftpb.EntryType_EntryConfChange {
		c := &raftpb.ConfChange{}
		if err := proto.Unmarshal(data, c); err != nil {
			return fmt.Errorf("membership change at %d: %w", ent.GetIndex(), err)
		}
		cc = c
	} else {
		c := &raftpb.ConfChangeV2{}
		if err := proto.Unmarshal(data, c); err != nil {
			return fmt.Errorf("membership change at %d: %w", ent.GetIndex(), err)
		}
		cc = c
	}
	cs := g.rn.ApplyConfChange(cc)
	if err := g.st.recordConf(ent.GetIndex(), cs); err != nil {
		return fmt.Errorf("record membership: %w", err)
	}
	g.changed = true
	return nil
}

// completeCommitted answers the proposals the commit index has passed.
func (g *Group) completeCommitted() {
	n := 0
	for _, p := range g.inflight {
		if p.index > g.committed {
			break
		}
		close(p.done)
		n++
	}
	if n > 0 {
		clear(g.inflight[:n])
		g.inflight = g.inflight[n:]
	}
}

// endOf is the offset after entry i.
func (g *Group) endOf(i uint64) int64 {
	k := 0
	for k < len(g.ends) && g.ends[k].index < i {
		k++
	}
	if k < len(g.ends) && g.ends[k].index == i {
		next := g.ends[k].next
		g.ends = g.ends[k+1:]
		return next
	}
	g.ends = g.ends[k:]
	if i >= g.log.LastIndex() {
		return g.log.LogEndOffset()
	}
	if i < g.log.FirstIndex() {
		if off, err := g.log.OffsetOfIndex(g.log.FirstIndex()); err == nil {
			return off
		}
		return g.log.LogStartOffset()
	}
	off, err := g.log.OffsetOfIndex(i + 1)
	if err != nil {
		g.e.logger.Warn("offset of committed entry", "group", g.id, "index", i, "err", err)
		return g.log.HighWatermark()
	}
	return off
}

// refreshProgress recomputes a leader's view of its followers.
func (g *Group) refreshProgress() {
	var inSync []uint64
	match := make(map[uint64]uint64, 3)
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		match[id] = pr.Match
		if id == g.e.cfg.NodeID || (pr.RecentActive && pr.State == tracker.StateReplicate) {
			inSync = append(inSync, id)
		}
	})
	slices.Sort(inSync)
	if !slices.Equal(inSync, g.inSync) {
		g.changed = true
	}
	g.inSync, g.match = inSync, match
	if g.changed {
		g.publish()
	}
}

// publish makes the driver's view of the group visible to other
// goroutines, and tells the state machine when it changed.
func (g *Group) publish() {
	prev := g.status.Load()
	if prev != nil && !g.changed {
		if prev.Commit == g.committed {
			return
		}
		st := *prev
		st.Commit = g.committed
		st.LastIndex = g.log.LastIndex()
		g.status.Store(&st)
		return
	}
	g.changed = false
	cs := g.st.currentConf()
	st := &Status{
		Group:          g.id,
		Leader:         g.lead,
		Term:           g.term,
		IsLeader:       g.leaderTerm != 0,
		Ready:          g.leaderTerm != 0 && g.readyIndex != 0 && g.committed >= g.readyIndex,
		Voters:         cs.Voters,
		VotersOutgoing: cs.VotersOutgoing,
		Learners:       cs.Learners,
		Commit:         g.committed,
		LastIndex:      g.log.LastIndex(),
		InSync:         g.inSync,
		Match:          g.match,
		Failed:         g.failed,
	}
	g.status.Store(st)
	if prev != nil {
		g.sm.StatusChanged(*st)
	}
}
