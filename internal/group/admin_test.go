package group

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestDescribe(t *testing.T) {
	h := newHarness(t)
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = 5
	req.Groups = []string{"nope", "g", "solo"}
	req.IncludeAuthorizedOperations = true
	ids, _ := h.stable("g", 2)
	h.m.CommitOffsets(commitReq("solo", "", -1, 1), allKnown)
	resp := h.m.Describe(req)
	if len(resp.Groups) != 3 {
		t.Fatalf("%d groups", len(resp.Groups))
	}
	dead, g, solo := resp.Groups[0], resp.Groups[1], resp.Groups[2]
	if dead.Group != "nope" || dead.State != "Dead" || dead.ErrorCode != 0 || len(dead.Members) != 0 || dead.ProtocolType != "" {
		t.Fatalf("unknown group: %+v", dead)
	}
	if g.State != "Stable" || g.ProtocolType != "consumer" || g.Protocol != "range" || g.AuthorizedOperations != allGroupOperations {
		t.Fatalf("stable group: %+v", g)
	}
	for i, m := range g.Members {
		if m.MemberID != ids[i] || m.ClientID != "client" || m.ClientHost != "/127.0.0.1" ||
			string(m.MemberAssignment) != "a-"+ids[i] || !slices.Equal(m.ProtocolMetadata, subscription("t")) {
			t.Fatalf("member %d: %+v", i, m)
		}
	}
	if solo.State != "Empty" || len(solo.Members) != 0 {
		t.Fatalf("standalone group: %+v", solo)
	}

	// While rebalancing, metadata and assignments are not shown.
	h.join(joinReq("g", ids[0]))
	d := h.describe("g")
	if d.State != "PreparingRebalance" || d.Protocol != "" || len(d.Members) != 2 || d.Members[0].MemberAssignment != nil {
		t.Fatalf("rebalancing group: %+v", d)
	}
	// Without asking, no authorized operations.
	req.Version = 2
	if ops := h.m.Describe(req).Groups[1].AuthorizedOperations; ops != -2147483648 {
		t.Fatalf("authorized operations %d", ops)
	}
}

func TestList(t *testing.T) {
	h := newHarness(t)
	h.stable("stable", 1)
	h.m.CommitOffsets(commitReq("solo", "", -1, 1), allKnown)
	h.stable("rebalancing", 1)
	h.joinNew(joinReq("rebalancing", "")).waiting()
	list := func(version int16, states, types []string) []string {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version = version
		req.StatesFilter = states
		req.TypesFilter = types
		resp := h.m.List(req)
		wantCode(t, "list", resp.ErrorCode, nil)
		var out []string
		for _, g := range resp.Groups {
			out = append(out, g.Group+":"+g.GroupState+":"+g.ProtocolType+":"+g.GroupType)
		}
		return out
	}
	all := []string{"rebalancing:PreparingRebalance:consumer:classic", "solo:Empty::classic", "stable:Stable:consumer:classic"}
	if got := list(5, nil, nil); !slices.Equal(got, all) {
		t.Fatalf("list: %v", got)
	}
	if got := list(4, []string{"stable", "EMPTY"}, nil); !slices.Equal(got, []string{all[1], all[2]}) {
		t.Fatalf("state filter: %v", got)
	}
	// Before v4 the filter does not exist.
	if got := list(3, []string{"Stable"}, nil); len(got) != 3 {
		t.Fatalf("v3 with filter: %v", got)
	}
	if got := list(5, nil, []string{"consumer"}); len(got) != 0 {
		t.Fatalf("type filter consumer: %v", got)
	}
	if got := list(5, nil, []string{"Classic"}); len(got) != 3 {
		t.Fatalf("type filter classic: %v", got)
	}
}

func TestDeleteGroups(t *testing.T) {
	h := newHarness(t)
	h.stable("active", 1)
	h.m.CommitOffsets(commitReq("solo", "", -1, 1, 2), allKnown)
	eids, egen := h.stable("left", 1)
	h.m.CommitOffsets(commitReq("left", eids[0], egen, 3), allKnown)
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "left", eids[0]
	h.m.Leave(leave)

	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Version = 2
	req.Groups = []string{"active", "solo", "nope", "left", "solo"}
	resp := h.m.Delete(req)
	var got []string
	var codes []int16
	for _, g := range resp.Groups {
		got = append(got, g.Group)
		codes = append(codes, g.ErrorCode)
	}
	if !slices.Equal(got, []string{"active", "solo", "nope", "left"}) {
		t.Fatalf("answered %v", got)
	}
	wantCodes(t, "delete", codes, kerr.NonEmptyGroup, nil, kerr.GroupIDNotFound, nil)
	wantState(t, h, "solo", "Dead")
	if got := h.fetch("solo", 2); !slices.Equal(got, []int64{-1, -1}) {
		t.Fatalf("offsets of deleted group: %v", got)
	}
	if v, ok := h.store.lastGroup(t, "left"); !ok || v != nil {
		t.Fatal("deleted group not tombstoned")
	}
	if _, ok := h.store.lastGroup(t, "solo"); ok {
		t.Fatal("group record written for a group that never had one")
	}
	m2 := h.restart()
	if m2.Committed("solo") != nil || m2.Committed("left") != nil || m2.Committed("active") == nil {
		t.Fatal("deletions not durable")
	}
}
