package cluster

import (
	"testing"
)

// FuzzApplyCommand feeds arbitrary controller log records (any node may
// propose one over the network) to the metadata: no input may panic, and
// a refused command leaves the metadata as it was.
func FuzzApplyCommand(f *testing.F) {
	for _, c := range []*Command{
		{Op: opRegisterNode, Node: &Node{ID: 4, RPCAddr: "a:1"}},
		{Op: opCreateTopic, Topic: "t", TopicID: "00112233445566778899aabbccddeeff", Partitions: 3, Replicas: 2},
		{Op: opCreatePartitions, Topic: "t", Partitions: 5},
		{Op: opReassign, Topic: "t", Partition: 1, Target: []int32{1, 3}},
		{Op: opReplicasDone, Topic: "t", Partition: 1, Target: []int32{1, 3}},
		{Op: opLeaders, Leaders: []LeaderReport{{Topic: "t", Partition: 0, Leader: 2, Epoch: 3, ISR: []int32{2}}}},
		{Op: opDecommission, NodeID: 2},
		{Op: opNodeState, NodeID: 3, OfflineSince: 99},
		{Op: opAllocProducerIDs, Count: 1000},
		{Op: opDeleteTopic, Topic: "t"},
		{Op: opCreatePartitions, Topic: "t", Partitions: 2_000_000_000},
	} {
		b, _ := encodeCommand(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := newMetadata()
		for id := int32(1); id <= 3; id++ {
			m, _ = m.apply(&Command{Op: opRegisterNode, Node: &Node{ID: id}})
		}
		m, _ = m.apply(&Command{Op: opCreateTopic, Topic: "t", TopicID: "00112233445566778899aabbccddeeff", Partitions: 2, Replicas: 2})
		cmd, err := decodeCommand(b)
		if err != nil {
			return
		}
		next, res := m.apply(cmd)
		if res.Err != nil && next != m {
			t.Fatalf("refused command %+v changed the metadata", cmd)
		}
		for _, tp := range next.Topics {
			for _, p := range tp.Partitions {
				if len(p.Replicas) == 0 {
					t.Fatalf("partition without replicas after %+v", cmd)
				}
			}
		}
	})
}
