package group

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestFailedCommitChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.m.CommitOffsets(commitReq("g", "", -1, 1, 2), allKnown)
	h.store.fail(nil, errDisk)
	wantCodes(t, "commit", commitCodes(h.m.CommitOffsets(commitReq("g", "", -1, 10, 20), allKnown)),
		kerr.CoordinatorNotAvailable, kerr.CoordinatorNotAvailable)
	if got := h.fetch("g", 2); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("after failed commit: %v", got)
	}
	// A failed first commit leaves no group behind.
	h.m.CommitOffsets(commitReq("new", "", -1, 1), allKnown)
	wantState(t, h, "new", "Dead")
	// Kafka's mapping of log errors applies.
	h.store.fail(nil, fmt.Errorf("append: %w", kerr.NotLeaderForPartition))
	wantCodes(t, "not leader", commitCodes(h.m.CommitOffsets(commitReq("g", "", -1, 10), allKnown)), kerr.NotCoordinator)
	h.store.fail(nil, kerr.MessageTooLarge)
	wantCodes(t, "too large", commitCodes(h.m.CommitOffsets(commitReq("g", "", -1, 10), allKnown)), kerr.InvalidCommitOffsetSize)

	// Deletions and transactions fail the same way.
	h.store.fail(nil, nil)
	h.m.CommitTxnOffsets(txnReq("g", 7, 30), allKnown)
	h.store.fail(errDisk, errDisk)
	if err := h.m.CompleteTxn("g", 7, true); err == nil {
		t.Fatal("CompleteTxn succeeded with a failing store")
	}
	if !h.m.HasPendingTxnOffsets("g", "t", 0) {
		t.Fatal("staged offsets dropped by a failed CompleteTxn")
	}
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Groups = []string{"g"}
	wantCode(t, "delete", h.m.Delete(req).Groups[0].ErrorCode, kerr.CoordinatorNotAvailable)
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	wantCode(t, "offset delete", h.m.DeleteOffsets(od).ErrorCode, kerr.CoordinatorNotAvailable)
	h.clk.Advance(8 * 24 * time.Hour)
	h.m.ExpireOffsets()
	h.m.DropTopic("t")
	if got := h.fetch("g", 2); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("after failed deletions: %v", got)
	}
	h.store.fail(nil, nil)
	if err := h.m.CompleteTxn("g", 7, true); err != nil {
		t.Fatal(err)
	}
	if got := h.fetch("g", 2); !slices.Equal(got, []int64{30, 2}) {
		t.Fatalf("after retried CompleteTxn: %v", got)
	}
}

func TestFailedAssignmentRebalances(t *testing.T) {
	h := newHarness(t)
	ids, gen := h.stable("g", 2)
	a := h.join(joinReq("g", ids[0]))
	h.join(joinReq("g", ids[1])).done()
	a.done()
	before, _ := h.store.lastGroup(t, "g")
	f := h.sync(syncReq("g", ids[1], gen+1, nil))
	h.store.fail(errDisk, nil)
	l := h.sync(syncReq("g", ids[0], gen+1, map[string]string{ids[0]: "x", ids[1]: "y"})).done()
	wantCode(t, "leader sync", l.ErrorCode, kerr.CoordinatorNotAvailable)
	wantCode(t, "follower sync", f.done().ErrorCode, kerr.CoordinatorNotAvailable)
	// The assignment was not installed: the group rebalances, and its
	// durable record is still the previous generation's.
	d := h.describe("g")
	if d.State != "PreparingRebalance" {
		t.Fatalf("state %s", d.State)
	}
	after, _ := h.store.lastGroup(t, "g")
	if !reflect.DeepEqual(before, after) {
		t.Fatal("group record changed by a failed write")
	}
	h.store.fail(nil, nil)
	a = h.join(joinReq("g", ids[0]))
	h.join(joinReq("g", ids[1])).done()
	a.done()
	h.syncAll("g", ids, gen+2)
	wantState(t, h, "g", "Stable")
}

func TestFailedStaticReplacementIsUndone(t *testing.T) {
	h := newHarness(t)
	s := h.join(joinReq("g", "", withInstance("s"))).done()
	h.sync(syncReq("g", s.MemberID, 1, map[string]string{s.MemberID: "x"})).done()
	h.store.fail(errDisk, nil)
	r := h.join(joinReq("g", "", withInstance("s"))).done()
	wantCode(t, "rejoin", r.ErrorCode, kerr.CoordinatorNotAvailable)
	if got := memberIDs(h.describe("g")); !slices.Equal(got, []string{s.MemberID}) {
		t.Fatalf("members %v", got)
	}
	hb := heartbeatReq("g", s.MemberID, 1)
	hb.InstanceID = kmsg.StringPtr("s")
	wantCode(t, "old id still valid", h.m.Heartbeat(hb).ErrorCode, nil)
}

// TestReplay checks that a Manager rebuilt from the log answers Describe
// and OffsetFetch as the one that wrote it did.
func TestReplay(t *testing.T) {
	h := newHarness(t)
	// A stable consumer group with a static member and commits.
	s := h.join(joinReq("g", "", withInstance("s"), withTopics("t", "u"))).done()
	h.sync(syncReq("g", s.MemberID, 1, map[string]string{s.MemberID: "x"})).done()
	d := h.joinNew(joinReq("g", "", withTopics("t")))
	h.join(joinReq("g", s.MemberID, withInstance("s"), withTopics("t", "u"))).done()
	dr := d.done()
	h.syncAll("g", []string{s.MemberID, dr.MemberID}, 2)
	c := commitReq("g", dr.MemberID, 2, 5, 6)
	c.Topics[0].Partitions[1].LeaderEpoch = 3
	h.m.CommitOffsets(c, allKnown)
	h.m.CommitOffsets(commitReq("g", dr.MemberID, 2, 7), allKnown) // overwrites partition 0
	// A group that emptied, a standalone one, and a deleted one.
	eids, egen := h.stable("emptied", 1)
	h.m.CommitOffsets(commitReq("emptied", eids[0], egen, 1), allKnown)
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "emptied", eids[0]
	h.m.Leave(leave)
	h.m.CommitOffsets(commitReq("solo", "", -1, 9), allKnown)
	h.m.CommitOffsets(commitReq("gone", "", -1, 9), allKnown)
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"gone"}
	h.m.Delete(del)

	names := []string{"g", "emptied", "solo", "gone"}
	snapshot := func(m *Manager) (any, any) {
		dreq := kmsg.NewPtrDescribeGroupsRequest()
		dreq.Version = 5
		dreq.Groups = names
		freq := kmsg.NewPtrOffsetFetchRequest()
		freq.Version = 8
		for _, n := range names {
			freq.Groups = append(freq.Groups, kmsg.OffsetFetchRequestGroup{Group: n})
		}
		return m.Describe(dreq), m.FetchOffsets(freq)
	}
	wantDescribe, wantFetch := snapshot(h.m)
	m2 := h.restart()
	gotDescribe, gotFetch := snapshot(m2)
	if !reflect.DeepEqual(gotDescribe, wantDescribe) {
		t.Fatalf("describe after replay:\n%+v\nwant\n%+v", gotDescribe, wantDescribe)
	}
	if !reflect.DeepEqual(gotFetch, wantFetch) {
		t.Fatalf("fetch after replay:\n%+v\nwant\n%+v", gotFetch, wantFetch)
	}

	// The restored group works: the static member restarts without a
	// rebalance, its old id stays fenced, and the new id heartbeats with
	// the restored generation.
	h.m.Close()
	h.m = m2
	r := h.join(joinReq("g", "", withInstance("s"), withTopics("t", "u"))).done()
	wantCode(t, "static rejoin", r.ErrorCode, nil)
	hb := heartbeatReq("g", s.MemberID, 2)
	hb.InstanceID = kmsg.StringPtr("s")
	wantCode(t, "old id", h.m.Heartbeat(hb).ErrorCode, kerr.FencedInstanceID)
	// Restored members that never come back are evicted by session (their
	// sessions start at load).
	h.clk.Advance(5 * time.Second)
	hb = heartbeatReq("g", r.MemberID, 2)
	hb.InstanceID = kmsg.StringPtr("s")
	wantCode(t, "new id", h.m.Heartbeat(hb).ErrorCode, nil)
	h.clk.Advance(5 * time.Second)
	if got := memberIDs(h.describe("g")); !slices.Equal(got, []string{r.MemberID}) {
		t.Fatalf("members after sessions expired: %v", got)
	}
}
