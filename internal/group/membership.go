package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Sync handles SyncGroup v0-v5. A follower's call waits for the leader's;
// it returns NOT_COORDINATOR when ctx ends or the Manager closes first.
func (m *Manager) Sync(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp, wait := m.sync(req)
	if wait == nil {
		return resp
	}
	select {
	case r := <-wait:
		return r
	case <-ctx.Done():
	case <-m.closing:
	}
	select {
	case r := <-wait:
		return r
	default:
	}
	return syncResult{err: kerr.NotCoordinator.Code}.response(req.Version)
}

func (m *Manager) sync(req *kmsg.SyncGroupRequest) (resp *kmsg.SyncGroupResponse, wait <-chan *kmsg.SyncGroupResponse) {
	fail := func(e *kerr.Error) (*kmsg.SyncGroupResponse, <-chan *kmsg.SyncGroupResponse) {
		return syncResult{err: e.Code}.response(req.Version), nil
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID)
	}
	g, _, err := m.acquire(req.Group, false)
	if err != nil {
		return fail(kerr.NotCoordinator)
	}
	if g == nil {
		return fail(kerr.UnknownMemberID)
	}
	defer g.mu.Unlock()

	var instanceID *string
	if req.Version >= 3 {
		instanceID = req.InstanceID
	}
	if e := g.validateMember(req.MemberID, instanceID); e != nil {
		return fail(e)
	}
	if req.Generation != g.generation {
		return fail(kerr.IllegalGeneration)
	}
	if req.Version >= 5 {
		if (req.ProtocolType != nil && *req.ProtocolType != g.protocolType) ||
			(req.Protocol != nil && *req.Protocol != g.protocol) {
			return fail(kerr.InconsistentGroupProtocol)
		}
	}
	mem := g.members[req.MemberID]
	switch g.state {
	case statePreparingRebalance:
		return fail(kerr.RebalanceInProgress)
	case stateStable:
		// A member that lost its SyncGroup response asks again.
		g.removePendingSync(mem.id)
		g.scheduleHeartbeat(mem)
		return syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: mem.assignment}.response(req.Version), nil
	case stateCompletingRebalance:
	default:
		return fail(kerr.UnknownMemberID)
	}

	w := newSyncWaiter(req.Version)
	if mem.sync != nil {
		mem.sync.complete(syncResult{err: kerr.RebalanceInProgress.Code})
	}
	mem.sync = w
	g.removePendingSync(mem.id)
	if mem.id == g.leader {
		g.installAssignment(req.GroupAssignment)
	}
	select {
	case r := <-w.ch:
		return r, nil
	default:
		return nil, w.ch
	}
}

// installAssignment persists the leader's assignment and, once it is
// durable, answers every waiting member and makes the group Stable. If the
// write fails, everyone waiting gets the error and the group rebalances.
func (g *group) installAssignment(assignments []kmsg.SyncGroupRequestGroupAssignment) {
	assignment := make(map[string][]byte, len(g.members))
	for id := range g.members {
		assignment[id] = []byte{} // members the leader left out get an empty assignment
	}
	for _, a := range assignments {
		if _, ok := g.members[a.MemberID]; ok {
			assignment[a.MemberID] = cloneBytes(a.MemberAssignment)
		}
	}
	if err := g.m.store.SaveGroup(g.name, g.value(assignment)); err != nil {
		g.m.log.Warn("failed to persist group assignment", "group", g.name, "generation", g.generation, "err", err)
		g.resetAssignments(storeErrorCode(err, false))
		g.maybePrepareRebalance("assignment could not be persisted")
		return
	}
	for _, mem := range g.sortedMembers() {
		mem.assignment = assignment[mem.id]
		if mem.sync != nil {
			mem.sync.complete(syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: mem.assignment})
			mem.sync = nil
			g.scheduleHeartbeat(mem)
		}
	}
	g.transition(stateStable)
	g.m.log.Info("group is stable", "group", g.name, "generation", g.generation, "members", len(g.members))
}

// Heartbeat handles Heartbeat v0-v4.
func (m *Manager) Heartbeat(req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := kmsg.NewPtrHeartbeatResponse()
	resp.Version = req.Version
	resp.ErrorCode = m.heartbeat(req)
	return resp
}

func (m *Manager) heartbeat(req *kmsg.HeartbeatRequest) int16 {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code
	}
	g, _, err := m.acquire(req.Group, false)
	if err != nil {
		return kerr.NotCoordinator.Code
	}
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	defer g.mu.Unlock()
	var instanceID *string
	if req.Version >= 3 {
		instanceID = req.InstanceID
	}
	if e := g.validateMember(req.MemberID, instanceID); e != nil {
		return e.Code
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	mem := g.members[req.MemberID]
	switch g.state {
	case stateCompletingRebalance, stateStable:
		// Members may heartbeat between their JoinGroup response and their
		// SyncGroup.
		g.scheduleHeartbeat(mem)
		return 0
	case statePreparingRebalance:
		g.scheduleHeartbeat(mem)
		return kerr.RebalanceInProgress.Code
	}
	return kerr.UnknownMemberID.Code
}

// Leave handles LeaveGroup v0-v5. From v3 a request names several members,
// each by member id, or by instance id alone (an admin removing a static
// member), and each gets its own error.
func (m *Manager) Leave(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := kmsg.NewPtrLeaveGroupResponse()
	resp.Version = req.Version
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	top, codes := m.leave(req.Group, leaving)
	if req.Version < 3 {
		resp.ErrorCode = top
		if top == 0 && len(codes) == 1 {
			resp.ErrorCode = codes[0]
		}
		return resp
	}
	resp.ErrorCode = top
	if top != 0 {
		return resp
	}
	for i, l := range leaving {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID = l.MemberID
		rm.InstanceID = l.InstanceID
		rm.ErrorCode = codes[i]
		resp.Members = append(resp.Members, rm)
	}
	return resp
}

func (m *Manager) leave(name string, leaving []kmsg.LeaveGroupRequestMember) (top int16, codes []int16) {
	if name == "" {
		return kerr.InvalidGroupID.Code, nil
	}
	g, _, err := m.acquire(name, false)
	if err != nil {
		return kerr.NotCoordinator.Code, nil
	}
	codes = make([]int16, len(leaving))
	if g == nil {
		for i := range codes {
			codes[i] = kerr.UnknownMemberID.Code
		}
		return 0, codes
	}
	defer g.mu.Unlock()
	for i, l := range leaving {
		codes[i] = g.leaveOne(l)
	}
	return 0, codes
}

func (g *group) leaveOne(l kmsg.LeaveGroupRequestMember) int16 {
	reason := "member left"
	if l.Reason != nil {
		reason += " (" + *l.Reason + ")"
	}
	if l.MemberID == "" {
		if l.InstanceID == nil {
			return kerr.UnknownMemberID.Code
		}
		id, ok := g.static[*l.InstanceID]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		g.removeMemberAndRebalance(g.members[id], reason)
		return 0
	}
	if t, ok := g.pending[l.MemberID]; ok && g.members[l.MemberID] == nil {
		t.stop()
		delete(g.pending, l.MemberID)
		g.maybeCompleteJoin()
		return 0
	}
	if e := g.validateMember(l.MemberID, l.InstanceID); e != nil {
		return e.Code
	}
	g.removeMemberAndRebalance(g.members[l.MemberID], reason)
	return 0
}
