package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinRequest is a JoinGroup with its version differences settled.
type joinRequest struct {
	version          int16
	memberID         string
	instanceID       *string
	client           clientInfo
	rebalanceTimeout int32
	sessionTimeout   int32
	protocolType     string
	protocols        []protocol
}

func newJoinRequest(req *kmsg.JoinGroupRequest, c clientInfo) joinRequest {
	jr := joinRequest{
		version:          req.Version,
		memberID:         req.MemberID,
		client:           c,
		rebalanceTimeout: req.RebalanceTimeoutMillis,
		sessionTimeout:   req.SessionTimeoutMillis,
		protocolType:     req.ProtocolType,
	}
	if req.Version < 1 {
		// v0 has no rebalance timeout; Kafka uses the session timeout.
		jr.rebalanceTimeout = req.SessionTimeoutMillis
	}
	if req.Version >= 5 && req.InstanceID != nil {
		id := *req.InstanceID
		jr.instanceID = &id
	}
	for _, p := range req.Protocols {
		// The request's bytes may alias a reused read buffer.
		jr.protocols = append(jr.protocols, protocol{name: p.Name, metadata: cloneBytes(p.Metadata)})
	}
	return jr
}

// Join handles JoinGroup v0-v9. It may wait until the rebalance round ends;
// it returns NOT_COORDINATOR when ctx ends or the Manager closes first.
// Use WithClient on ctx to pass the connection's client id and host.
func (m *Manager) Join(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp, wait := m.join(req, clientFrom(ctx))
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
	case r := <-wait: // answered at the same moment: prefer the answer
		return r
	default:
	}
	return joinError(req.MemberID, kerr.NotCoordinator.Code).response(req.Version)
}

// join answers at once (resp) or returns the channel its answer will come
// on (wait).
func (m *Manager) join(req *kmsg.JoinGroupRequest, c clientInfo) (resp *kmsg.JoinGroupResponse, wait <-chan *kmsg.JoinGroupResponse) {
	fail := func(memberID string, e *kerr.Error) (*kmsg.JoinGroupResponse, <-chan *kmsg.JoinGroupResponse) {
		return joinError(memberID, e.Code).response(req.Version), nil
	}
	if req.Group == "" {
		return fail(req.MemberID, kerr.InvalidGroupID)
	}
	st := int64(req.SessionTimeoutMillis)
	if st < m.cfg.MinSessionTimeout.Milliseconds() || st > m.cfg.MaxSessionTimeout.Milliseconds() {
		return fail(req.MemberID, kerr.InvalidSessionTimeout)
	}
	jr := newJoinRequest(req, c)
	unknown := jr.memberID == ""
	g, created, err := m.acquire(req.Group, unknown)
	if err != nil {
		return fail(req.MemberID, kerr.NotCoordinator)
	}
	if g == nil {
		return fail(req.MemberID, kerr.UnknownMemberID)
	}
	defer g.mu.Unlock()

	w := newJoinWaiter(req.Version)
	var res *joinResult
	switch {
	case !g.acceptJoiningMember(jr.memberID):
		if mem := g.members[jr.memberID]; mem != nil {
			g.removeMember(mem)
		}
		r := joinError("", kerr.GroupMaxSizeReached.Code)
		res = &r
	case unknown:
		res = g.joinNewMember(jr, w)
	default:
		res = g.joinCurrentMember(jr, w)
	}
	g.maybeCompleteJoin()
	if created && g.vacant() {
		m.removeLocked(g)
	}
	if res != nil {
		return res.response(req.Version), nil
	}
	select {
	case r := <-w.ch:
		return r, nil
	default:
		return nil, w.ch
	}
}

// acceptJoiningMember applies group.max.size. A rebalancing group counts
// the members that have rejoined, so that a group left over the limit (the
// limit was lowered) sheds the members that rejoin last.
func (g *group) acceptJoiningMember(memberID string) bool {
	limit := g.m.cfg.MaxSize
	if limit <= 0 {
		return true
	}
	mem := g.members[memberID]
	switch g.state {
	case statePreparingRebalance:
		return (mem != nil && mem.join != nil) || g.numAwaitingJoin() < limit
	case stateCompletingRebalance, stateStable:
		return mem != nil || len(g.members) < limit
	}
	return true
}

// joinNewMember handles a JoinGroup without a member id. It returns the
// answer, or nil if w was parked.
func (g *group) joinNewMember(jr joinRequest, w *joinWaiter) *joinResult {
	if !g.supportsProtocols(jr.protocolType, jr.protocols) {
		r := joinError("", kerr.InconsistentGroupProtocol.Code)
		return &r
	}
	if jr.instanceID != nil {
		id := newMemberID(*jr.instanceID)
		if oldID, ok := g.static[*jr.instanceID]; ok {
			return g.rejoinStaticMember(oldID, id, jr, w)
		}
		g.addMemberAndRebalance(id, jr, w)
		return nil
	}
	id := newMemberID(jr.client.id)
	if jr.version >= 4 {
		// KIP-394: hand out the id and let the member come back with it,
		// so that clients that time out and retry do not pile up members.
		g.addPending(id, jr.sessionTimeout)
		r := joinError(id, kerr.MemberIDRequired.Code)
		return &r
	}
	g.addMemberAndRebalance(id, jr, w)
	return nil
}

// joinCurrentMember handles a JoinGroup with a member id.
func (g *group) joinCurrentMember(jr joinRequest, w *joinWaiter) *joinResult {
	id := jr.memberID
	if !g.supportsProtocols(jr.protocolType, jr.protocols) {
		r := joinError(id, kerr.InconsistentGroupProtocol.Code)
		return &r
	}
	if _, pending := g.pending[id]; pending && g.members[id] == nil {
		if jr.instanceID != nil {
			// Pending ids are only handed to dynamic members.
			r := joinError(id, kerr.UnknownMemberID.Code)
			return &r
		}
		g.addMemberAndRebalance(id, jr, w)
		return nil
	}
	if e := g.validateMember(id, jr.instanceID); e != nil {
		r := joinError(id, e.Code)
		return &r
	}
	mem := g.members[id]
	switch g.state {
	case statePreparingRebalance:
		g.updateMemberAndRebalance(mem, jr, w, "member rejoined")
		return nil
	case stateCompletingRebalance:
		if mem.matches(jr.protocols) {
			// Probably lost its JoinGroup response: answer it again.
			r := g.currentJoinResult(id)
			return &r
		}
		g.updateMemberAndRebalance(mem, jr, w, "member rejoined with new metadata")
		return nil
	case stateStable:
		if id == g.leader {
			// The leader rejoins to rebalance for changes the members'
			// metadata does not show (a topic's new partitions).
			g.updateMemberAndRebalance(mem, jr, w, "leader rejoined")
			return nil
		}
		if !mem.matches(jr.protocols) {
			g.updateMemberAndRebalance(mem, jr, w, "member rejoined with new metadata")
			return nil
		}
		r := g.currentJoinResult(id)
		return &r
	}
	r := joinError(id, kerr.UnknownMemberID.Code)
	return &r
}

func (g *group) addMemberAndRebalance(id string, jr joinRequest, w *joinWaiter) {
	mem := &member{
		id:               id,
		instanceID:       jr.instanceID,
		clientID:         jr.client.id,
		clientHost:       jr.client.host,
		rebalanceTimeout: jr.rebalanceTimeout,
		sessionTimeout:   jr.sessionTimeout,
		protocolType:     jr.protocolType,
		protocols:        jr.protocols,
		isNew:            true,
	}
	if g.state == statePreparingRebalance && g.generation == 0 {
		g.newMemberAdded = true
	}
	g.addMember(mem, w)
	g.scheduleHeartbeat(mem)
	g.maybePrepareRebalance("new member " + id + " joined")
}

func (g *group) updateMemberAndRebalance(mem *member, jr joinRequest, w *joinWaiter, reason string) {
	g.updateMember(mem, jr.protocols, jr.rebalanceTimeout, jr.sessionTimeout, w)
	g.maybePrepareRebalance(reason + ": " + mem.id)
}

// rejoinStaticMember handles a static member that rejoins without its
// member id, typically after a restart: it takes over the old member's
// place under a new id, and the old id is fenced. A Stable group whose
// protocol choice does not change keeps its assignment: the member gets the
// current generation back without a rebalance.
func (g *group) rejoinStaticMember(oldID, newID string, jr joinRequest, w *joinWaiter) *joinResult {
	instanceID := *jr.instanceID
	oldLeader := g.leader
	mem := g.members[oldID]
	oldProtocols, oldRebalance, oldSession := mem.protocols, mem.rebalanceTimeout, mem.sessionTimeout
	g.replaceStaticMember(instanceID, oldID, newID)
	g.updateMember(mem, jr.protocols, jr.rebalanceTimeout, jr.sessionTimeout, w)
	g.scheduleHeartbeat(mem)

	switch g.state {
	case stateStable:
		if g.selectProtocol() != g.protocol {
			g.maybePrepareRebalance("static member " + newID + " rejoined with other protocols")
			return nil
		}
		if err := g.m.store.SaveGroup(g.name, g.value(nil)); err != nil {
			g.m.log.Warn("failed to persist static member replacement", "group", g.name, "err", err)
			g.updateMember(mem, oldProtocols, oldRebalance, oldSession, nil)
			g.replaceStaticMember(instanceID, newID, oldID)
			g.scheduleHeartbeat(mem)
			r := joinResult{
				generation:   g.generation,
				protocolType: g.protocolType,
				protocol:     g.protocol,
				leader:       oldLeader,
				err:          storeErrorCode(err, false),
			}
			return &r
		}
		mem.join = nil
		r := joinResult{
			memberID:     newID,
			generation:   g.generation,
			protocolType: g.protocolType,
			protocol:     g.protocol,
		}
		if jr.version >= 9 {
			// KIP-814: a static leader learns it leads, and gets the
			// members' metadata to watch, but must not reassign.
			r.leader = g.leader
			if g.leader == newID {
				r.skip = true
				r.members = g.currentMemberMetadata()
			}
		} else {
			// Older clients would run the assignor if told they lead, and
			// a Stable group would ignore the result: name the old leader
			// id, which matches nobody's new id.
			r.leader = oldLeader
		}
		return &r
	case stateCompletingRebalance:
		// The leader may be assigning to the old id already.
		g.prepareRebalance("static member " + newID + " rejoined during CompletingRebalance")
	}
	return nil
}
