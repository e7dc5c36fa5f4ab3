package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinResult is a JoinGroup answer before it is shaped for a version.
type joinResult struct {
	memberID     string
	generation   int32
	protocolType string
	protocol     string
	leader       string
	skip         bool
	members      []kmsg.JoinGroupResponseMember
	err          int16
}

func joinError(memberID string, code int16) joinResult {
	return joinResult{memberID: memberID, generation: -1, err: code}
}

func (r joinResult) response(version int16) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = version
	resp.ErrorCode = r.err
	resp.Generation = r.generation
	resp.MemberID = r.memberID
	resp.LeaderID = r.leader
	resp.Members = r.members
	resp.SkipAssignment = r.skip && version >= 9
	if r.err == 0 || r.protocol != "" {
		resp.ProtocolType = kmsg.StringPtr(r.protocolType)
		resp.Protocol = kmsg.StringPtr(r.protocol)
	}
	return resp
}

// joinWaiter is a JoinGroup call parked until its rebalance round ends.
type joinWaiter struct {
	version int16
	ch      chan *kmsg.JoinGroupResponse // capacity 1; filled once
}

func newJoinWaiter(version int16) *joinWaiter {
	return &joinWaiter{version: version, ch: make(chan *kmsg.JoinGroupResponse, 1)}
}

func (w *joinWaiter) complete(r joinResult) { w.ch <- r.response(w.version) }

// syncResult is a SyncGroup answer before it is shaped for a version.
type syncResult struct {
	protocolType string
	protocol     string
	assignment   []byte
	err          int16
}

func (r syncResult) response(version int16) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.Version = version
	resp.ErrorCode = r.err
	if r.err == 0 {
		resp.ProtocolType = kmsg.StringPtr(r.protocolType)
		resp.Protocol = kmsg.StringPtr(r.protocol)
		resp.MemberAssignment = r.assignment
	}
	return resp
}

type syncWaiter struct {
	version int16
	ch      chan *kmsg.SyncGroupResponse // capacity 1; filled once
}

func newSyncWaiter(version int16) *syncWaiter {
	return &syncWaiter{version: version, ch: make(chan *kmsg.SyncGroupResponse, 1)}
}

func (w *syncWaiter) complete(r syncResult) { w.ch <- r.response(w.version) }

// maybePrepareRebalance starts a rebalance unless one is under way.
func (g *group) maybePrepareRebalance(reason string) {
	switch g.state {
	case stateEmpty, stateCompletingRebalance, stateStable:
		g.prepareRebalance(reason)
	}
}

// prepareRebalance moves the group to PreparingRebalance. Members waiting
// in SyncGroup are sent back to rejoin. A group coming out of Empty waits
// the initial rebalance delay so that the members of a starting application
// join one round; otherwise the round ends when everyone has rejoined or
// the rebalance timeout passes.
func (g *group) prepareRebalance(reason string) {
	if g.state == stateCompletingRebalance {
		g.resetAssignments(kerr.RebalanceInProgress.Code)
	}
	g.clearPendingSync()
	initial := g.state == stateEmpty
	g.m.log.Info("preparing to rebalance group", "group", g.name, "from", g.state.String(),
		"generation", g.generation, "reason", reason)
	g.transition(statePreparingRebalance)
	if initial {
		delay := g.m.cfg.InitialRebalanceDelay
		g.armInitialJoin(delay, max(g.rebalanceTimeout()-delay, 0))
		return
	}
	if g.allJoined() {
		g.completeJoin()
		return
	}
	g.armJoin(g.rebalanceTimeout())
}

// armInitialJoin waits delay before ending the first round; a member
// joining meanwhile extends the wait by another delay, for at most
// remaining in all.
func (g *group) armInitialJoin(delay, remaining time.Duration) {
	g.joinTimer.stop()
	g.joinTimer = nil
	g.joinInitial = true
	expire := func() {
		g.joinTimer = nil
		g.joinInitial = false
		if g.state != statePreparingRebalance {
			return
		}
		if g.newMemberAdded && remaining > 0 {
			g.newMemberAdded = false
			g.armInitialJoin(min(g.m.cfg.InitialRebalanceDelay, remaining), max(remaining-delay, 0))
			return
		}
		g.completeJoin()
	}
	if delay <= 0 {
		expire()
		return
	}
	g.joinTimer = g.after(delay, expire)
}

// armJoin ends the round after d at the latest.
func (g *group) armJoin(d time.Duration) {
	g.joinTimer.stop()
	g.joinInitial = false
	g.joinTimer = g.after(d, func() {
		g.joinTimer = nil
		if g.state == statePreparingRebalance {
			g.completeJoin()
		}
	})
}

// maybeCompleteJoin ends the round if nobody is missing.
func (g *group) maybeCompleteJoin() {
	if g.state == statePreparingRebalance && !g.joinInitial && g.allJoined() {
		g.completeJoin()
	}
}

// completeJoin ends the join phase: dynamic members that did not rejoin are
// removed (absent static members keep their place until their session
// expires), a leader is chosen, the protocol voted and the generation
// bumped; every waiting member gets its JoinGroup response, the leader with
// everyone's metadata.
func (g *group) completeJoin() {
	g.joinTimer.stop()
	g.joinTimer = nil
	g.joinInitial = false
	for _, mem := range g.sortedMembers() {
		if mem.join == nil && mem.instanceID == nil {
			g.m.log.Info("removing member that did not rejoin", "group", g.name, "member", mem.id)
			g.removeMember(mem)
		}
	}
	if len(g.members) > 0 && !g.electJoinedLeader() {
		// Only absent static members remain: wait another round for them
		// to rejoin or for their sessions to expire.
		g.m.log.Warn("group could not complete rebalance because no members rejoined", "group", g.name)
		g.armJoin(max(g.rebalanceTimeout(), time.Millisecond))
		return
	}
	g.generation++
	g.newMemberAdded = false
	if len(g.members) == 0 {
		g.protocol = ""
		g.subscribed = g.computeSubscribed()
		g.transition(stateEmpty)
		g.m.log.Info("group is now empty", "group", g.name, "generation", g.generation)
		// Kafka does not undo the transition if this write fails: the
		// previous generation then comes back at restart, and its members
		// expire as their sessions run out.
		if err := g.m.store.SaveGroup(g.name, g.value(nil)); err != nil {
			g.m.log.Warn("failed to persist empty group", "group", g.name, "err", err)
		}
		return
	}
	g.protocol = g.selectProtocol()
	g.subscribed = g.computeSubscribed()
	g.transition(stateCompletingRebalance)
	g.m.log.Info("group completed join phase", "group", g.name, "generation", g.generation,
		"members", len(g.members), "protocol", g.protocol, "leader", g.leader)
	g.pendingSync = make(map[string]struct{}, len(g.members))
	for _, mem := range g.sortedMembers() {
		if mem.join != nil {
			res := g.currentJoinResult(mem.id)
			mem.join.complete(res)
			mem.join = nil
		}
		mem.isNew = false
		g.scheduleHeartbeat(mem)
		g.pendingSync[mem.id] = struct{}{}
	}
	generation := g.generation
	g.syncTimer = g.after(g.rebalanceTimeout(), func() {
		g.syncTimer = nil
		g.expirePendingSync(generation)
	})
}

// currentJoinResult is the JoinGroup answer for the current generation.
func (g *group) currentJoinResult(memberID string) joinResult {
	res := joinResult{
		memberID:     memberID,
		generation:   g.generation,
		protocolType: g.protocolType,
		protocol:     g.protocol,
		leader:       g.leader,
	}
	if memberID == g.leader {
		res.members = g.currentMemberMetadata()
	}
	return res
}

// electJoinedLeader keeps the leader if it rejoined, else picks the oldest
// member that did. It reports false if no member rejoined.
func (g *group) electJoinedLeader() bool {
	if l := g.members[g.leader]; l != nil && l.join != nil {
		return true
	}
	for _, mem := range g.sortedMembers() {
		if mem.join != nil {
			g.leader = mem.id
			return true
		}
	}
	return false
}

// expirePendingSync removes the members that have not sent SyncGroup
// within the rebalance timeout of their generation and rebalances.
func (g *group) expirePendingSync(generation int32) {
	if generation != g.generation || len(g.pendingSync) == 0 {
		return
	}
	if g.state != stateCompletingRebalance && g.state != stateStable {
		return
	}
	for _, mem := range g.sortedMembers() {
		if _, ok := g.pendingSync[mem.id]; ok {
			g.m.log.Info("removing member that did not sync", "group", g.name, "member", mem.id)
			g.removeMember(mem)
		}
	}
	g.pendingSync = nil
	g.prepareRebalance("members did not send SyncGroup in time")
}

func (g *group) removePendingSync(memberID string) {
	delete(g.pendingSync, memberID)
	if len(g.pendingSync) == 0 {
		g.syncTimer.stop()
		g.syncTimer = nil
	}
}

func (g *group) clearPendingSync() {
	g.pendingSync = nil
	g.syncTimer.stop()
	g.syncTimer = nil
}

// resetAssignments drops the assignments of an unfinished round and answers
// the members waiting in SyncGroup with code.
func (g *group) resetAssignments(code int16) {
	for _, mem := range g.sortedMembers() {
		mem.assignment = nil
		if mem.sync != nil {
			mem.sync.complete(syncResult{err: code})
			mem.sync = nil
			g.scheduleHeartbeat(mem)
		}
	}
}

// scheduleHeartbeat restarts the member's session: it is removed unless
// something proves it alive within its session timeout (or, before its
// first JoinGroup response, within newMemberJoinTimeout).
func (g *group) scheduleHeartbeat(mem *member) {
	d := time.Duration(mem.sessionTimeout) * time.Millisecond
	if mem.isNew {
		d = newMemberJoinTimeout
	}
	mem.heartbeat.stop()
	mem.heartbeat = g.after(d, func() { g.expireSession(mem) })
}

func (g *group) expireSession(mem *member) {
	if g.members[mem.id] != mem {
		return
	}
	if !mem.isNew && (mem.join != nil || mem.sync != nil) {
		// A member waiting in a rebalance is alive; the rebalance's own
		// deadlines apply, and its session restarts when it is answered.
		return
	}
	g.m.log.Info("member session expired", "group", g.name, "member", mem.id)
	g.removeMemberAndRebalance(mem, "session timeout")
}

// removeMemberAndRebalance removes a member and lets the group react: a
// settled group rebalances, a rebalancing one may now be complete.
func (g *group) removeMemberAndRebalance(mem *member, reason string) {
	g.removeMember(mem)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		g.maybePrepareRebalance(reason + ": removed member " + mem.id)
	case statePreparingRebalance:
		g.maybeCompleteJoin()
	}
}

// addPending remembers a member id handed out with MEMBER_ID_REQUIRED until
// it is used or its session timeout passes.
func (g *group) addPending(id string, sessionTimeout int32) {
	g.pending[id] = g.after(time.Duration(sessionTimeout)*time.Millisecond, func() {
		delete(g.pending, id)
		g.maybeCompleteJoin()
	})
}
