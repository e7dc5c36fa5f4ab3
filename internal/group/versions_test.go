package group

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestEveryVersion runs each API at each supported version and checks the
// response carries that version and survives an encode/decode round trip.
func TestEveryVersion(t *testing.T) {
	h := newHarness(t)
	ids, gen := h.stable("g", 1)
	ctx := context.Background()
	apis := []struct {
		name string
		max  int16
		run  func(v int16) kmsg.Response
	}{
		{"JoinGroup", 9, func(v int16) kmsg.Response {
			return h.m.Join(ctx, joinReq(fmt.Sprintf("j%d", v), "", withVersion(v)))
		}},
		{"SyncGroup", 5, func(v int16) kmsg.Response {
			r := syncReq("g", ids[0], gen, nil)
			r.Version = v
			return h.m.Sync(ctx, r)
		}},
		{"Heartbeat", 4, func(v int16) kmsg.Response {
			r := heartbeatReq("g", ids[0], gen)
			r.Version = v
			return h.m.Heartbeat(r)
		}},
		{"LeaveGroup", 5, func(v int16) kmsg.Response {
			r := kmsg.NewPtrLeaveGroupRequest()
			r.Version, r.Group, r.MemberID = v, "g", "ghost"
			r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "ghost"}}
			return h.m.Leave(r)
		}},
		{"OffsetCommit", 9, func(v int16) kmsg.Response {
			r := commitReq("g", ids[0], gen, 1)
			r.Version = v
			return h.m.CommitOffsets(r, allKnown)
		}},
		{"OffsetFetch", 9, func(v int16) kmsg.Response {
			r := kmsg.NewPtrOffsetFetchRequest()
			r.Version, r.Group = v, "g"
			r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g"}}
			return h.m.FetchOffsets(r)
		}},
		{"OffsetDelete", 0, func(v int16) kmsg.Response {
			r := kmsg.NewPtrOffsetDeleteRequest()
			r.Version, r.Group = v, "g"
			r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "x", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
			return h.m.DeleteOffsets(r)
		}},
		{"DescribeGroups", 5, func(v int16) kmsg.Response {
			r := kmsg.NewPtrDescribeGroupsRequest()
			r.Version, r.Groups, r.IncludeAuthorizedOperations = v, []string{"g", "nope"}, true
			return h.m.Describe(r)
		}},
		{"ListGroups", 5, func(v int16) kmsg.Response {
			r := kmsg.NewPtrListGroupsRequest()
			r.Version = v
			return h.m.List(r)
		}},
		{"DeleteGroups", 2, func(v int16) kmsg.Response {
			r := kmsg.NewPtrDeleteGroupsRequest()
			r.Version, r.Groups = v, []string{"g", "nope"}
			return h.m.Delete(r)
		}},
		{"TxnOffsetCommit", 4, func(v int16) kmsg.Response {
			r := txnReq("txn", 1, 1)
			r.Version = v
			return h.m.CommitTxnOffsets(r, allKnown)
		}},
	}
	for _, api := range apis {
		for v := int16(0); v <= api.max; v++ {
			t.Run(fmt.Sprintf("%s/v%d", api.name, v), func(t *testing.T) {
				resp := api.run(v)
				if resp.GetVersion() != v {
					t.Fatalf("response version %d", resp.GetVersion())
				}
				b := resp.AppendTo(nil)
				decoded := kmsg.ResponseForKey(resp.Key())
				decoded.SetVersion(v)
				if err := decoded.ReadFrom(b); err != nil {
					t.Fatalf("decode: %v", err)
				}
			})
		}
	}
}
