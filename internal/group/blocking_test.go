package group

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The public Join and Sync block; these tests run them on goroutines and
// wait for their answers (never for time).

func TestBlockingJoinAndSync(t *testing.T) {
	h := newHarness(t)
	ctx := WithClient(context.Background(), "app", "/10.0.0.1")
	first := h.m.Join(ctx, joinReq("g", ""))
	wantCode(t, "handshake", first.ErrorCode, kerr.MemberIDRequired)
	a := h.m.Join(ctx, joinReq("g", first.MemberID))
	wantCode(t, "join", a.ErrorCode, nil)
	if d := h.describe("g"); d.Members[0].ClientID != "app" || d.Members[0].ClientHost != "/10.0.0.1" {
		t.Fatalf("client of member: %+v", d.Members[0])
	}
	s := h.m.Sync(ctx, syncReq("g", a.MemberID, 1, map[string]string{a.MemberID: "x"}))
	wantCode(t, "sync", s.ErrorCode, nil)

	// b's join waits for a to rejoin.
	second := h.m.Join(ctx, joinReq("g", ""))
	done := make(chan *kmsg.JoinGroupResponse)
	go func() { done <- h.m.Join(ctx, joinReq("g", second.MemberID)) }()
	ar := h.m.Join(ctx, joinReq("g", a.MemberID))
	br := <-done
	if ar.Generation != 2 || br.Generation != 2 || br.LeaderID != a.MemberID {
		t.Fatalf("generations %d %d leader %s", ar.Generation, br.Generation, br.LeaderID)
	}
	// b's sync waits for the leader's.
	synced := make(chan *kmsg.SyncGroupResponse)
	go func() { synced <- h.m.Sync(ctx, syncReq("g", br.MemberID, 2, nil)) }()
	h.m.Sync(ctx, syncReq("g", a.MemberID, 2, map[string]string{a.MemberID: "x", br.MemberID: "y"}))
	if r := <-synced; string(r.MemberAssignment) != "y" || *r.Protocol != "range" {
		t.Fatalf("follower sync: %+v", r)
	}
}

func TestJoinReturnsWhenContextEnds(t *testing.T) {
	h := newHarness(t)
	ids, _ := h.stable("g", 1)
	ctx, cancel := context.WithCancel(context.Background())
	second := h.m.Join(ctx, joinReq("g", ""))
	done := make(chan *kmsg.JoinGroupResponse)
	go func() { done <- h.m.Join(ctx, joinReq("g", second.MemberID)) }()
	cancel()
	wantCode(t, "cancelled join", (<-done).ErrorCode, kerr.NotCoordinator)
	// The member stays in the round (Kafka cannot see the disconnect
	// either); it is answered when the round completes.
	r := h.join(joinReq("g", ids[0])).done()
	if len(r.Members) != 2 {
		t.Fatalf("round completed with %d members", len(r.Members))
	}
}

func TestCloseReleasesWaiters(t *testing.T) {
	h := newHarness(t)
	ids, gen := h.stable("g", 2)
	ctx := context.Background()
	a := h.join(joinReq("g", ids[0]))
	h.join(joinReq("g", ids[1])).done()
	a.done()
	follower := make(chan *kmsg.SyncGroupResponse)
	go func() { follower <- h.m.Sync(ctx, syncReq("g", ids[1], gen+1, nil)) }()
	// A first member makes a group; a second one's join waits for it.
	h.m.Join(ctx, joinReq("other", "", withVersion(3)))
	joiner := make(chan *kmsg.JoinGroupResponse)
	go func() { joiner <- h.m.Join(ctx, joinReq("other", "", withVersion(3))) }()
	h.m.Close()
	wantCode(t, "waiting sync", (<-follower).ErrorCode, kerr.NotCoordinator)
	wantCode(t, "waiting join", (<-joiner).ErrorCode, kerr.NotCoordinator)
	// Everything after Close answers NOT_COORDINATOR.
	wantCode(t, "heartbeat", h.heartbeat("g", ids[0], gen+1), kerr.NotCoordinator)
	wantCodes(t, "commit", commitCodes(h.m.CommitOffsets(commitReq("g", "", -1, 1), allKnown)), kerr.NotCoordinator)
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 5
	req.Group = "g"
	wantCode(t, "fetch", h.m.FetchOffsets(req).ErrorCode, kerr.NotCoordinator)
	list := kmsg.NewPtrListGroupsRequest()
	wantCode(t, "list", h.m.List(list).ErrorCode, kerr.CoordinatorNotAvailable)
	h.m.Close() // idempotent
}
