package group

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestJoinValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  *kmsg.JoinGroupRequest
		want *kerr.Error
	}{
		{"empty group id", joinReq("", ""), kerr.InvalidGroupID},
		{"session below min", joinReq("g", "", withTimeouts(5*time.Second, time.Minute)), kerr.InvalidSessionTimeout},
		{"session above max", joinReq("g", "", withTimeouts(31*time.Minute, time.Minute)), kerr.InvalidSessionTimeout},
		{"member id for unknown group", joinReq("g", "ghost"), kerr.UnknownMemberID},
		{"no protocol type", joinReq("g", "", withProtocols("", "range")), kerr.InconsistentGroupProtocol},
		{"no protocols", joinReq("g", "", withProtocols("consumer")), kerr.InconsistentGroupProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.join(tc.req).done()
			wantCode(t, "join", r.ErrorCode, tc.want)
			if r.Generation != -1 {
				t.Fatalf("generation %d on error", r.Generation)
			}
			// A failed first join leaves no group behind.
			if s := h.state("g"); s != "Dead" {
				t.Fatalf("group left in state %s", s)
			}
		})
	}
}

func TestMemberIDRequiredHandshake(t *testing.T) {
	h := newHarness(t)
	first := h.join(joinReq("g", "")).done()
	wantCode(t, "first join", first.ErrorCode, kerr.MemberIDRequired)
	if !strings.HasPrefix(first.MemberID, "client-") {
		t.Fatalf("member id %q does not start with the client id", first.MemberID)
	}
	// The pending id shows as no member yet.
	if d := h.describe("g"); d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("after handshake: %s with %d members", d.State, len(d.Members))
	}
	r := h.join(joinReq("g", first.MemberID)).done()
	wantCode(t, "second join", r.ErrorCode, nil)
	if r.MemberID != first.MemberID || r.LeaderID != first.MemberID || r.Generation != 1 {
		t.Fatalf("join response: member %s leader %s generation %d", r.MemberID, r.LeaderID, r.Generation)
	}
	if *r.Protocol != "range" || *r.ProtocolType != "consumer" || len(r.Members) != 1 {
		t.Fatalf("join response: protocol %v/%v members %d", *r.ProtocolType, *r.Protocol, len(r.Members))
	}

	// Before v4 there is no handshake.
	old := h.join(joinReq("g3", "", withVersion(3))).done()
	wantCode(t, "v3 join", old.ErrorCode, nil)
	if old.MemberID == "" || old.Generation != 1 {
		t.Fatalf("v3 join: member %q generation %d", old.MemberID, old.Generation)
	}

	// Static members get their id at once.
	st := h.join(joinReq("gs", "", withInstance("i1"))).done()
	wantCode(t, "static join", st.ErrorCode, nil)
	if !strings.HasPrefix(st.MemberID, "i1-") {
		t.Fatalf("static member id %q", st.MemberID)
	}

	// An unused pending id expires after the session timeout.
	p := h.join(joinReq("g", "")).done()
	wantCode(t, "handshake", p.ErrorCode, kerr.MemberIDRequired)
	h.clk.Advance(10 * time.Second)
	late := h.join(joinReq("g", p.MemberID)).done()
	wantCode(t, "join with expired id", late.ErrorCode, kerr.UnknownMemberID)
}

func TestThreeMembersJoinAndSync(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = 3 * time.Second })
	// Three members join during the initial delay and get one generation.
	var calls []*call[*kmsg.JoinGroupResponse]
	for range 3 {
		c := h.joinNew(joinReq("g", ""))
		c.waiting()
		calls = append(calls, c)
	}
	wantState(t, h, "g", "PreparingRebalance")
	// Members joined during the delay, so at 3s it is extended by another
	// delay (bounded by the rebalance timeout).
	h.clk.Advance(3 * time.Second)
	for _, c := range calls {
		c.waiting()
	}
	h.clk.Advance(3 * time.Second)
	var resps []*kmsg.JoinGroupResponse
	for _, c := range calls {
		resps = append(resps, c.done())
	}
	leader := resps[0].MemberID
	var ids []string
	for i, r := range resps {
		wantCode(t, "join", r.ErrorCode, nil)
		if r.Generation != 1 || r.LeaderID != leader {
			t.Fatalf("member %d: generation %d leader %s", i, r.Generation, r.LeaderID)
		}
		if (i == 0) != (len(r.Members) == 3) {
			t.Fatalf("member %d got %d members' metadata", i, len(r.Members))
		}
		ids = append(ids, r.MemberID)
	}
	if got := memberIDs(h.describe("g")); !slices.Equal(got, ids) {
		t.Fatalf("described members %v, want %v", got, ids)
	}
	wantState(t, h, "g", "CompletingRebalance")
	h.syncAll("g", ids, 1)
	d := h.describe("g")
	if d.State != "Stable" || d.Protocol != "range" {
		t.Fatalf("after sync: %s protocol %q", d.State, d.Protocol)
	}
	for _, m := range d.Members {
		if string(m.MemberAssignment) != "a-"+m.MemberID || len(m.ProtocolMetadata) == 0 {
			t.Fatalf("member %s: assignment %q metadata %d bytes", m.MemberID, m.MemberAssignment, len(m.ProtocolMetadata))
		}
	}
	v, ok := h.store.lastGroup(t, "g")
	if !ok || v.Generation != 1 || len(v.Members) != 3 || *v.Leader != leader || string(v.Members[1].Assignment) != "a-"+ids[1] {
		t.Fatalf("persisted group %+v", v)
	}
	// A follower rejoining with the same metadata gets the current
	// generation back without a rebalance; the leader rejoining rebalances.
	r := h.join(joinReq("g", ids[1])).done()
	if r.Generation != 1 || len(r.Members) != 0 {
		t.Fatalf("follower rejoin: generation %d", r.Generation)
	}
	wantState(t, h, "g", "Stable")
	h.join(joinReq("g", ids[0])).waiting()
	wantState(t, h, "g", "PreparingRebalance")
}

func TestInitialDelayBoundedByRebalanceTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = 3 * time.Second })
	a := h.joinNew(joinReq("g", "", withTimeouts(10*time.Second, 7*time.Second)))
	// Members keep arriving every 3s; the round still ends by the
	// rebalance timeout (7s): 3s, then 3s more, then the last 1s.
	var others []*call[*kmsg.JoinGroupResponse]
	for range 3 {
		h.clk.Advance(2 * time.Second)
		others = append(others, h.joinNew(joinReq("g", "", withTimeouts(10*time.Second, 7*time.Second))))
		h.clk.Advance(time.Second)
	}
	// t=9s: the round ended at 7s with the members that had joined.
	r := a.done()
	if r.Generation != 1 || len(r.Members) != 3 {
		t.Fatalf("generation %d with %d members", r.Generation, len(r.Members))
	}
	others[0].done()
	others[1].done()
	// The third arrived after the round ended: it triggers the next one.
	others[2].waiting()
	wantState(t, h, "g", "PreparingRebalance")
}

func TestMemberLeaves(t *testing.T) {
	h := newHarness(t)
	ids, gen := h.stable("g", 3)
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 0
	leave.Group = "g"
	leave.MemberID = ids[0] // the leader leaves
	wantCode(t, "leave", h.m.Leave(leave).ErrorCode, nil)
	wantState(t, h, "g", "PreparingRebalance")
	wantCode(t, "heartbeat", h.heartbeat("g", ids[1], gen), kerr.RebalanceInProgress)
	wantCode(t, "heartbeat of the leaver", h.heartbeat("g", ids[0], gen), kerr.UnknownMemberID)
	b := h.join(joinReq("g", ids[1]))
	b.waiting()
	c := h.join(joinReq("g", ids[2])).done()
	br := b.done()
	if br.Generation != gen+1 || br.LeaderID != ids[1] || c.LeaderID != ids[1] || len(br.Members) != 2 {
		t.Fatalf("after leave: generation %d leader %s, %d members", br.Generation, br.LeaderID, len(br.Members))
	}
	h.syncAll("g", ids[1:], gen+1)
	wantState(t, h, "g", "Stable")

	// The last members leaving empties the group, which is persisted.
	leave.Version = 3
	leave.MemberID = ""
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[1]}, {MemberID: ids[2]}, {MemberID: "ghost"}}
	resp := h.m.Leave(leave)
	wantCode(t, "leave", resp.ErrorCode, nil)
	wantCodes(t, "members", []int16{resp.Members[0].ErrorCode, resp.Members[1].ErrorCode, resp.Members[2].ErrorCode},
		nil, nil, kerr.UnknownMemberID)
	wantState(t, h, "g", "Empty")
	v, _ := h.store.lastGroup(t, "g")
	if v == nil || v.Generation != gen+2 || len(v.Members) != 0 || v.Protocol != nil {
		t.Fatalf("persisted empty group %+v", v)
	}
}

func TestSessionTimeoutEvicts(t *testing.T) {
	h := newHarness(t)
	ids, gen := h.stable("g", 2)
	// Only the follower heartbeats.
	for range 2 {
		h.clk.Advance(4 * time.Second)
		wantCode(t, "heartbeat", h.heartbeat("g", ids[1], gen), nil)
	}
	h.clk.Advance(4 * time.Second)
	// The leader's 10s session ran out at 10s.
	if got := memberIDs(h.describe("g")); !slices.Equal(got, ids[1:]) {
		t.Fatalf("members %v after the leader's session expired", got)
	}
	wantState(t, h, "g", "PreparingRebalance")
	wantCode(t, "heartbeat", h.heartbeat("g", ids[1], gen), kerr.RebalanceInProgress)
	r := h.join(joinReq("g", ids[1])).done()
	if r.Generation != gen+1 || r.LeaderID != ids[1] {
		t.Fatalf("rejoin: generation %d leader %s", r.Generation, r.LeaderID)
	}
}

func TestRebalanceTimeoutRemovesMissingMember(t *testing.T) {
	h := newHarness(t)
	opt := withTimeouts(30*time.Second, 10*time.Second)
	ids, gen := h.stable("g", 2, opt)
	// The follower rejoins with a new subscription; the leader keeps
	// heartbeating but never rejoins.
	b := h.join(joinReq("g", ids[1], opt, withTopics("t", "u")))
	b.waiting()
	for range 2 {
		h.clk.Advance(4 * time.Second)
		wantCode(t, "leader heartbeat", h.heartbeat("g", ids[0], gen), kerr.RebalanceInProgress)
	}
	b.waiting()
	h.clk.Advance(2 * time.Second) // 10s: the rebalance timeout
	r := b.done()
	if r.Generation != gen+1 || r.LeaderID != ids[1] || len(r.Members) != 1 {
		t.Fatalf("after timeout: generation %d leader %s members %d", r.Generation, r.LeaderID, len(r.Members))
	}
	wantCode(t, "removed leader heartbeat", h.heartbeat("g", ids[0], gen), kerr.UnknownMemberID)
}

func TestMissingSyncRemovesMember(t *testing.T) {
	h := newHarness(t)
	opt := withTimeouts(30*time.Second, 10*time.Second)
	ids, gen := h.stable("g", 2, opt)
	a := h.join(joinReq("g", ids[0], opt))
	h.join(joinReq("g", ids[1], opt)).done()
	a.done()
	// Only the leader syncs; the follower keeps heartbeating but never
	// syncs, so it is removed after the rebalance timeout.
	h.sync(syncReq("g", ids[0], gen+1, map[string]string{ids[0]: "x", ids[1]: "y"})).done()
	h.clk.Advance(5 * time.Second)
	wantCode(t, "heartbeat", h.heartbeat("g", ids[1], gen+1), nil)
	h.clk.Advance(5 * time.Second)
	if got := memberIDs(h.describe("g")); !slices.Equal(got, ids[:1]) {
		t.Fatalf("members %v", got)
	}
	wantState(t, h, "g", "PreparingRebalance")
}

func TestHeartbeatInEachState(t *testing.T) {
	h := newHarness(t)
	wantCode(t, "unknown group", h.heartbeat("g", "m", 0), kerr.UnknownMemberID)
	wantCode(t, "empty group id", h.heartbeat("", "m", 0), kerr.InvalidGroupID)

	ids, gen := h.stable("g", 2)
	wantCode(t, "Stable", h.heartbeat("g", ids[1], gen), nil)
	wantCode(t, "stale generation", h.heartbeat("g", ids[1], gen-1), kerr.IllegalGeneration)
	wantCode(t, "unknown member", h.heartbeat("g", "ghost", gen), kerr.UnknownMemberID)

	a := h.join(joinReq("g", ids[0]))
	wantState(t, h, "g", "PreparingRebalance")
	wantCode(t, "PreparingRebalance", h.heartbeat("g", ids[1], gen), kerr.RebalanceInProgress)

	h.join(joinReq("g", ids[1])).done()
	a.done()
	wantState(t, h, "g", "CompletingRebalance")
	wantCode(t, "CompletingRebalance", h.heartbeat("g", ids[1], gen+1), nil)
	wantCode(t, "old generation", h.heartbeat("g", ids[1], gen), kerr.IllegalGeneration)

	// A Sync for the wrong generation or a stale protocol is refused.
	wantCode(t, "sync stale generation", h.sync(syncReq("g", ids[1], gen, nil)).done().ErrorCode, kerr.IllegalGeneration)
	bad := syncReq("g", ids[1], gen+1, nil)
	bad.Protocol = kmsg.StringPtr("roundrobin")
	wantCode(t, "sync other protocol", h.sync(bad).done().ErrorCode, kerr.InconsistentGroupProtocol)

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 3
	leave.Group = "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[0]}, {MemberID: ids[1]}}
	h.m.Leave(leave)
	wantState(t, h, "g", "Empty")
	wantCode(t, "Empty", h.heartbeat("g", ids[1], gen+1), kerr.UnknownMemberID)
}

func TestRebalanceAnswersWaitingSyncs(t *testing.T) {
	h := newHarness(t)
	ids, gen := h.stable("g", 2)
	a := h.join(joinReq("g", ids[0]))
	h.join(joinReq("g", ids[1])).done()
	a.done()
	// The follower waits for the leader's assignment; a third member
	// joining sends it back to rejoin.
	f := h.sync(syncReq("g", ids[1], gen+1, nil))
	f.waiting()
	c := h.joinNew(joinReq("g", ""))
	c.waiting()
	wantCode(t, "follower sync", f.done().ErrorCode, kerr.RebalanceInProgress)
	wantCode(t, "leader sync after", h.sync(syncReq("g", ids[0], gen+1, nil)).done().ErrorCode, kerr.RebalanceInProgress)
}

func TestStaticMemberRestartWithoutRebalance(t *testing.T) {
	for _, version := range []int16{5, 8, 9} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			h := newHarness(t)
			a := h.join(joinReq("g", "", withInstance("a"), withVersion(version))).done()
			wantCode(t, "join a", a.ErrorCode, nil)
			h.sync(syncReq("g", a.MemberID, 1, map[string]string{a.MemberID: "pa"})).done()
			b := h.join(joinReq("g", "", withInstance("b"), withVersion(version)))
			h.join(joinReq("g", a.MemberID, withInstance("a"), withVersion(version))).done()
			br := b.done()
			h.syncAll("g", []string{a.MemberID, br.MemberID}, 2)
			stores := h.store.count()

			// b restarts: it joins with its instance id and no member id.
			b2 := h.join(joinReq("g", "", withInstance("b"), withVersion(version))).done()
			wantCode(t, "rejoin b", b2.ErrorCode, nil)
			if b2.MemberID == br.MemberID || b2.Generation != 2 || b2.SkipAssignment {
				t.Fatalf("rejoin b: member %s generation %d skip %v", b2.MemberID, b2.Generation, b2.SkipAssignment)
			}
			wantState(t, h, "g", "Stable")
			if h.store.count() != stores+1 {
				t.Fatal("replacement was not persisted")
			}
			s := h.sync(syncReq("g", b2.MemberID, 2, nil)).done()
			if string(s.MemberAssignment) != "a-"+br.MemberID {
				t.Fatalf("b kept assignment %q", s.MemberAssignment)
			}
			// The old id is fenced everywhere.
			hb := heartbeatReq("g", br.MemberID, 2)
			hb.InstanceID = kmsg.StringPtr("b")
			wantCode(t, "old id heartbeat", h.m.Heartbeat(hb).ErrorCode, kerr.FencedInstanceID)
			old := joinReq("g", br.MemberID, withInstance("b"), withVersion(version))
			wantCode(t, "old id join", h.join(old).done().ErrorCode, kerr.FencedInstanceID)
			c := commitReq("g", br.MemberID, 2, 5)
			c.InstanceID = kmsg.StringPtr("b")
			wantCodes(t, "old id commit", commitCodes(h.m.CommitOffsets(c, allKnown)), kerr.FencedInstanceID)

			// The leader restarting: from v9 it is told it leads but must
			// skip the assignment; before, it is told the old leader id.
			a2 := h.join(joinReq("g", "", withInstance("a"), withVersion(version))).done()
			wantCode(t, "rejoin a", a2.ErrorCode, nil)
			wantState(t, h, "g", "Stable")
			if version >= 9 {
				if a2.LeaderID != a2.MemberID || !a2.SkipAssignment || len(a2.Members) != 2 {
					t.Fatalf("v9 leader rejoin: leader %s skip %v members %d", a2.LeaderID, a2.SkipAssignment, len(a2.Members))
				}
			} else if a2.LeaderID != a.MemberID || len(a2.Members) != 0 {
				t.Fatalf("leader rejoin: leader %s, want old id %s", a2.LeaderID, a.MemberID)
			}
			d := h.describe("g")
			if got := memberIDs(d); !slices.Equal(got, []string{a2.MemberID, b2.MemberID}) || *d.Members[1].InstanceID != "b" {
				t.Fatalf("members %v", got)
			}
		})
	}
}

func TestStaticMemberWaitingCallIsFenced(t *testing.T) {
	h := newHarness(t)
	ids, gen := h.stable("g", 1)
	s := h.join(joinReq("g", "", withInstance("s")))
	h.join(joinReq("g", ids[0])).done()
	sr := s.done()
	wantCode(t, "static join", sr.ErrorCode, nil)
	// The static member waits in SyncGroup when its replacement arrives:
	// the group is CompletingRebalance, so it rebalances, and the waiting
	// call is fenced.
	w := h.sync(syncReq("g", sr.MemberID, gen+1, nil))
	w.waiting()
	n := h.join(joinReq("g", "", withInstance("s")))
	n.waiting()
	wantCode(t, "fenced sync", w.done().ErrorCode, kerr.FencedInstanceID)
	wantState(t, h, "g", "PreparingRebalance")
	h.join(joinReq("g", ids[0])).done()
	if r := n.done(); r.Generation != gen+2 {
		t.Fatalf("replacement joined generation %d", r.Generation)
	}
}

func TestAbsentStaticMemberKeepsItsPlace(t *testing.T) {
	h := newHarness(t)
	opt := withTimeouts(60*time.Second, 10*time.Second)
	s := h.join(joinReq("g", "", withInstance("s"), opt)).done()
	h.sync(syncReq("g", s.MemberID, 1, map[string]string{s.MemberID: "x"})).done()
	d := h.joinNew(joinReq("g", "", opt))
	d.waiting()
	// The static member does not rejoin; after the rebalance timeout the
	// round completes without removing it.
	h.clk.Advance(10 * time.Second)
	dr := d.done()
	if dr.LeaderID != dr.MemberID || len(dr.Members) != 2 {
		t.Fatalf("leader %s with %d members", dr.LeaderID, len(dr.Members))
	}
}

func TestProtocolSelection(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = time.Second })
	a := h.joinNew(joinReq("g", "", withProtocols("consumer", "sticky", "range")))
	b := h.joinNew(joinReq("g", "", withProtocols("consumer", "range", "sticky")))
	c := h.joinNew(joinReq("g", "", withProtocols("consumer", "range")))
	// No protocol in common with everyone, or another protocol type.
	wantCode(t, "no common protocol", h.join(joinReq("g", "", withProtocols("consumer", "roundrobin"))).done().ErrorCode, kerr.InconsistentGroupProtocol)
	wantCode(t, "other protocol type", h.join(joinReq("g", "", withProtocols("connect", "range"))).done().ErrorCode, kerr.InconsistentGroupProtocol)
	// Advance in steps: a timer re-armed by a callback counts from the
	// fake clock's new time.
	h.clk.Advance(time.Second)
	h.clk.Advance(time.Second)
	for _, call := range []*call[*kmsg.JoinGroupResponse]{a, b, c} {
		if r := call.done(); *r.Protocol != "range" {
			t.Fatalf("protocol %s, want range (the only common one)", *r.Protocol)
		}
	}
	// A member rejoining with a protocol others lack is inconsistent.
	ar := a.done()
	wantCode(t, "rejoin without common protocol", h.join(joinReq("g", ar.MemberID, withProtocols("consumer", "sticky"))).done().ErrorCode, kerr.InconsistentGroupProtocol)

	// Votes: two members prefer sticky, one range; all support both.
	h2 := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = time.Second })
	x := h2.joinNew(joinReq("v", "", withProtocols("consumer", "range", "sticky")))
	h2.joinNew(joinReq("v", "", withProtocols("consumer", "sticky", "range")))
	h2.joinNew(joinReq("v", "", withProtocols("consumer", "sticky", "range")))
	h2.clk.Advance(time.Second)
	h2.clk.Advance(time.Second)
	if r := x.done(); *r.Protocol != "sticky" {
		t.Fatalf("protocol %s, want sticky (two votes)", *r.Protocol)
	}
}

func TestGroupMaxSize(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSize = 2 })
	ids, _ := h.stable("g", 2)
	r := h.join(joinReq("g", "")).done()
	wantCode(t, "third member", r.ErrorCode, kerr.GroupMaxSizeReached)
	if r.MemberID != "" {
		t.Fatalf("member id %q with GROUP_MAX_SIZE_REACHED", r.MemberID)
	}
	// Existing members still rejoin.
	h.join(joinReq("g", ids[0])).waiting()
}

func TestLeaveByInstanceIDAndPending(t *testing.T) {
	h := newHarness(t)
	s := h.join(joinReq("g", "", withInstance("s"))).done()
	h.sync(syncReq("g", s.MemberID, 1, nil)).done()
	p := h.join(joinReq("g", "")).done() // pending id
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 5
	leave.Group = "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{
		{MemberID: "wrong", InstanceID: kmsg.StringPtr("s")},
		{InstanceID: kmsg.StringPtr("nobody")},
		{MemberID: p.MemberID},
		{InstanceID: kmsg.StringPtr("s"), Reason: kmsg.StringPtr("shutdown")},
	}
	resp := h.m.Leave(leave)
	var codes []int16
	for _, m := range resp.Members {
		codes = append(codes, m.ErrorCode)
	}
	wantCodes(t, "leave", codes, kerr.FencedInstanceID, kerr.UnknownMemberID, nil, nil)
	wantState(t, h, "g", "Empty")

	unknown := kmsg.NewPtrLeaveGroupRequest()
	unknown.Version = 1
	unknown.Group = "nope"
	unknown.MemberID = "m"
	wantCode(t, "leave unknown group", h.m.Leave(unknown).ErrorCode, kerr.UnknownMemberID)
}

func TestCommitsRequireCurrentGeneration(t *testing.T) {
	h := newHarness(t)
	ids, gen := h.stable("g", 2)
	for _, tc := range []struct {
		name   string
		member string
		gen    int32
		want   *kerr.Error
	}{
		{"member", ids[1], gen, nil},
		{"stale generation", ids[1], gen - 1, kerr.IllegalGeneration},
		{"unknown member", "ghost", gen, kerr.UnknownMemberID},
		{"standalone to an active group", "", -1, kerr.UnknownMemberID},
	} {
		wantCodes(t, tc.name, commitCodes(h.m.CommitOffsets(commitReq("g", tc.member, tc.gen, 10), allKnown)), tc.want)
	}
	// Commits are allowed while the group prepares to rebalance, refused
	// while it completes one.
	a := h.join(joinReq("g", ids[0]))
	wantCodes(t, "PreparingRebalance", commitCodes(h.m.CommitOffsets(commitReq("g", ids[1], gen, 11), allKnown)), nil)
	h.join(joinReq("g", ids[1])).done()
	a.done()
	wantCodes(t, "CompletingRebalance", commitCodes(h.m.CommitOffsets(commitReq("g", ids[1], gen+1, 12), allKnown)), kerr.RebalanceInProgress)
	if got := h.fetch("g", 1); got[0] != 11 {
		t.Fatalf("committed %v", got)
	}
	// A member's commit for a group that does not exist is stale.
	wantCodes(t, "unknown group", commitCodes(h.m.CommitOffsets(commitReq("nope", "m", 3, 1), allKnown)), kerr.IllegalGeneration)
}

func TestStandaloneCommitsAndValidation(t *testing.T) {
	h := newHarness(t)
	known := func(topic string, p int32) bool { return topic == "t" && p < 2 }
	req := commitReq("solo", "", -1, 5, 6, 7)
	big := strings.Repeat("x", maxMetadataSize+1)
	req.Topics[0].Partitions[1].Metadata = &big
	wantCodes(t, "commit", commitCodes(h.m.CommitOffsets(req, known)), nil, kerr.OffsetMetadataTooLarge, kerr.UnknownTopicOrPartition)
	if got := h.fetch("solo", 3); !slices.Equal(got, []int64{5, -1, -1}) {
		t.Fatalf("committed %v", got)
	}
	if d := h.describe("solo"); d.State != "Empty" || d.ProtocolType != "" {
		t.Fatalf("standalone group: %s %q", d.State, d.ProtocolType)
	}
	// Commits only to unknown topics do not create a group.
	h.m.CommitOffsets(commitReq("ghost", "", -1, 1, 2, 3), func(string, int32) bool { return false })
	wantState(t, h, "ghost", "Dead")
	// v0 has no generation: always standalone.
	v0 := commitReq("solo", "", 0, 8)
	v0.Version = 0
	wantCodes(t, "v0 commit", commitCodes(h.m.CommitOffsets(v0, allKnown)), nil)
	if got := h.fetch("solo", 1); got[0] != 8 {
		t.Fatalf("committed %v", got)
	}
}

func TestRejoinDuringCompletingRebalance(t *testing.T) {
	h := newHarness(t)
	ids, gen := h.stable("g", 2)
	a := h.join(joinReq("g", ids[0]))
	h.join(joinReq("g", ids[1])).done()
	a.done()
	// Members that lost their JoinGroup response ask again with the same
	// metadata: they get the same answer, the leader with the members.
	lr := h.join(joinReq("g", ids[0])).done()
	fr := h.join(joinReq("g", ids[1])).done()
	if lr.Generation != gen+1 || len(lr.Members) != 2 || fr.Generation != gen+1 || len(fr.Members) != 0 {
		t.Fatalf("repeated joins: %d/%d members, generations %d/%d", len(lr.Members), len(fr.Members), lr.Generation, fr.Generation)
	}
	wantState(t, h, "g", "CompletingRebalance")
	// New metadata starts another round.
	h.join(joinReq("g", ids[1], withTopics("t", "u"))).waiting()
	wantState(t, h, "g", "PreparingRebalance")
}

func TestWaitingMemberOutlivesSession(t *testing.T) {
	h := newHarness(t)
	opt := withTimeouts(10*time.Second, time.Minute)
	ids, gen := h.stable("g", 2, opt)
	a := h.join(joinReq("g", ids[0], opt))
	// The leader waits in JoinGroup past its session timeout; the follower
	// heartbeats and rejoins late.
	for range 4 {
		h.clk.Advance(5 * time.Second)
		wantCode(t, "heartbeat", h.heartbeat("g", ids[1], gen), kerr.RebalanceInProgress)
	}
	a.waiting()
	h.join(joinReq("g", ids[1], opt)).done()
	if r := a.done(); r.Generation != gen+1 || len(r.Members) != 2 {
		t.Fatalf("generation %d with %d members", r.Generation, len(r.Members))
	}
	// Once answered, its session runs again.
	h.clk.Advance(10 * time.Second)
	if got := memberIDs(h.describe("g")); len(got) != 0 {
		t.Fatalf("members %v still there without heartbeats", got)
	}
}
