// Package cluster owns what the nodes of a cluster agree on: the
// controller, a Raft group (id 1) whose log holds every metadata change as
// a command, and the metadata those commands build — nodes, topics,
// partition assignments and their leaders, producer id blocks. Every node
// hosts the controller group and applies its log, so every node has the
// metadata; changes are proposed by any node and forwarded to the leader.
package cluster

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// ControllerGroup is the Raft group id of the controller; partition groups
// are numbered from FirstPartitionGroup.
const (
	ControllerGroup     uint64 = 1
	FirstPartitionGroup uint64 = 2
)

// Errors of metadata commands, as the proposer sees them.
var (
	ErrTopicExists       = errors.New("topic already exists")
	ErrUnknownTopic      = errors.New("unknown topic")
	ErrInvalidReplicas   = errors.New("invalid replication factor")
	ErrInvalidPartitions = errors.New("invalid partition count")
	ErrTimeout           = errors.New("metadata change not applied in time (it may still be)")
	ErrUnknownNode       = errors.New("unknown node")
	ErrClosed            = errors.New("cluster node closed")
)

// MaxPartitions bounds a topic's partition count.
const MaxPartitions = 100_000

// Node is a member of the cluster as registered with the controller.
type Node struct {
	ID        int32  `json:"id"`
	RPCAddr   string `json:"rpc"`
	KafkaHost string `json:"kafka_host"`
	KafkaPort int32  `json:"kafka_port"`
	// OfflineSince is when the controller leader last saw the node go
	// silent (Unix ms); 0 while it is live.
	OfflineSince int64 `json:"offline_since,omitempty"`
	// Draining: decommissioned; its replicas move to other nodes.
	Draining bool `json:"draining,omitempty"`
}

// sameAddresses reports whether n is registered with the addresses of o.
func (n *Node) sameAddresses(o *Node) bool {
	return n.ID == o.ID && n.RPCAddr == o.RPCAddr && n.KafkaHost == o.KafkaHost && n.KafkaPort == o.KafkaPort
}

// Live reports whether the controller considers the node up.
func (n *Node) Live() bool { return n.OfflineSince == 0 }

// Partition is one partition's assignment and its leader as last reported.
type Partition struct {
	Group    uint64  `json:"group"`
	Replicas []int32 `json:"replicas"`
	// Target is the replica set a move in progress goes to (nil when
	// none): the partition's leader adds the new replicas as learners,
	// swaps them in by joint consensus, then reports the new set.
	Target []int32 `json:"target,omitempty"`
	// Initial is the replica set the partition was created with: the
	// membership its Raft log starts from, which a replica added later
	// needs to replay the log's membership changes.
	Initial []int32 `json:"initial"`
	Leader  int32   `json:"leader"` // -1 until a leader reports
	Epoch   int32   `json:"epoch"`  // the leader's Raft term
	ISR     []int32 `json:"isr"`
}

// Topic is a topic as the cluster knows it.
type Topic struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions []Partition       `json:"partitions"`
}

// Metadata is the controller's state after some prefix of its log. A
// published Metadata is never modified: changes make a copy.
type Metadata struct {
	ClusterID      string
	Index          uint64 // the last applied controller entry
	Nodes          map[int32]*Node
	Topics         map[string]*Topic
	NextGroup      uint64
	NextProducerID int64
	// Removed: decommissioned nodes that left; they may not register again.
	Removed map[int32]bool
}

func newMetadata() *Metadata {
	return &Metadata{Nodes: map[int32]*Node{}, Topics: map[string]*Topic{}, NextGroup: FirstPartitionGroup}
}

// NodeIDs returns the registered nodes' ids in order.
func (m *Metadata) NodeIDs() []int32 {
	ids := make([]int32, 0, len(m.Nodes))
	for id := range m.Nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TopicNames returns the topic names in order.
func (m *Metadata) TopicNames() []string {
	names := make([]string, 0, len(m.Topics))
	for n := range m.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// clone copies the maps (not the values: a command replaces what it
// changes).
func (m *Metadata) clone() *Metadata {
	c := *m
	c.Nodes = maps.Clone(m.Nodes)
	c.Topics = maps.Clone(m.Topics)
	c.Removed = maps.Clone(m.Removed)
	return &c
}

// Command is one metadata change, as stored in the controller log (JSON
// in the value of a single-record batch).
type Command struct {
	// Req identifies the proposal, so the proposing node can hand the
	// outcome to its caller when it applies the entry.
	Req  string `json:"req"`
	Op   string `json:"op"`
	Node *Node  `json:"node,omitempty"`
	// Topic operations.
	Topic      string            `json:"topic,omitempty"`
	TopicID    string            `json:"topic_id,omitempty"`
	Partitions int32             `json:"partitions,omitempty"`
	Replicas   int16             `json:"replicas,omitempty"`
	Configs    map[string]string `json:"configs,omitempty"`
	// Leaders reports.
	Leaders []LeaderReport `json:"leaders,omitempty"`
	// Replica moves: partition Partition of Topic goes to (reassign) or
	// now has (replicas_done) the replica set Target.
	Partition int32   `json:"partition,omitempty"`
	Target    []int32 `json:"target,omitempty"`
	// Node liveness: the node NodeID went silent at OfflineSince (0: back).
	NodeID       int32 `json:"node_id,omitempty"`
	OfflineSince int64 `json:"offline_since,omitempty"`
	// Producer id blocks and cluster identity.
	Count     int64  `json:"count,omitempty"`
	ClusterID string `json:"cluster_id,omitempty"`
}

// LeaderReport is a partition leader telling the controller it leads.
type LeaderReport struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Epoch     int32   `json:"epoch"`
	ISR       []int32 `json:"isr"`
}

// Command ops.
const (
	opInit             = "init"
	opRegisterNode     = "register_node"
	opCreateTopic      = "create_topic"
	opDeleteTopic      = "delete_topic"
	opCreatePartitions = "create_partitions"
	opSetConfigs       = "set_configs"
	opAllocProducerIDs = "alloc_producer_ids"
	opLeaders          = "leaders"
	opNodeState        = "node_state"
	opReassign         = "reassign"
	opReplicasDone     = "replicas_done"
	opDecommission     = "decommission"
	opRemoveNode       = "remove_node"
)

// Result is a command's outcome.
type Result struct {
	Err   error
	Value int64 // alloc_producer_ids: the first id of the block
}

// apply returns the metadata after cmd (m itself when nothing changed)
// and the command's outcome. It must be deterministic: every node applies
// the same commands to the same state.
func (m *Metadata) apply(cmd *Command) (*Metadata, Result) {
	switch cmd.Op {
	case opInit:
		if m.ClusterID != "" {
			return m, Result{}
		}
		n := m.clone()
		n.ClusterID = cmd.ClusterID
		return n, Result{}
	case opRegisterNode:
		if cmd.Node == nil || cmd.Node.ID <= 0 {
			return m, Result{Err: fmt.Errorf("register node: bad node %+v", cmd.Node)}
		}
		if m.Removed[cmd.Node.ID] {
			return m, Result{Err: fmt.Errorf("%w: node %d was decommissioned and removed", ErrUnknownNode, cmd.Node.ID)}
		}
		node := *cmd.Node
		node.OfflineSince = 0 // registering is a sign of life
		old, ok := m.Nodes[node.ID]
		if ok {
			node.Draining = old.Draining // only a decommission changes it
			if *old == node {
				return m, Result{}
			}
		}
		n := m.clone()
		n.Nodes[node.ID] = &node
		return n, Result{}
	case opNodeState:
		old, ok := m.Nodes[cmd.NodeID]
		if !ok || (old.OfflineSince == 0) == (cmd.OfflineSince == 0) {
			return m, Result{}
		}
		n := m.clone()
		node := *old
		node.OfflineSince = cmd.OfflineSince
		n.Nodes[node.ID] = &node
		return n, Result{}
	case opCreateTopic:
		return m.createTopic(cmd)
	case opDeleteTopic:
		if _, ok := m.Topics[cmd.Topic]; !ok {
			return m, Result{Err: fmt.Errorf("%w: %q", ErrUnknownTopic, cmd.Topic)}
		}
		n := m.clone()
		delete(n.Topics, cmd.Topic)
		return n, Result{}
	case opCreatePartitions:
		return m.createPartitions(cmd)
	case opSetConfigs:
		t, ok := m.Topics[cmd.Topic]
		if !ok {
			return m, Result{Err: fmt.Errorf("%w: %q", ErrUnknownTopic, cmd.Topic)}
		}
		n := m.clone()
		nt := *t
		nt.Configs = maps.Clone(cmd.Configs)
		n.Topics[t.Name] = &nt
		return n, Result{}
	case opAllocProducerIDs:
		if cmd.Count <= 0 || cmd.Count > 1<<20 {
			return m, Result{Err: fmt.Errorf("allocate %d producer ids", cmd.Count)}
		}
		n := m.clone()
		first := n.NextProducerID
		n.NextProducerID += cmd.Count
		return n, Result{Value: first}
	case opLeaders:
		return m.leaders(cmd.Leaders), Result{}
	case opReassign, opReplicasDone:
		return m.move(cmd)
	case opRemoveNode:
		// Only a drained node leaves: one that holds no replica.
		n, ok := m.Nodes[cmd.NodeID]
		if !ok {
			return m, Result{}
		}
		if !n.Draining || m.replicaCount(cmd.NodeID) > 0 {
			return m, Result{Err: fmt.Errorf("%w: node %d still holds replicas or is not decommissioned", ErrInvalidReplicas, cmd.NodeID)}
		}
		nm := m.clone()
		delete(nm.Nodes, cmd.NodeID)
		if nm.Removed == nil {
			nm.Removed = map[int32]bool{}
		}
		nm.Removed[cmd.NodeID] = true
		return nm, Result{}
	case opDecommission:
		old, ok := m.Nodes[cmd.NodeID]
		if !ok {
			return m, Result{Err: fmt.Errorf("%w: node %d", ErrUnknownNode, cmd.NodeID)}
		}
		if old.Draining {
			return m, Result{}
		}
		n := m.clone()
		node := *old
		node.Draining = true
		n.Nodes[node.ID] = &node
		return n, Result{}
	}
	return m, Result{Err: fmt.Errorf("unknown metadata command %q", cmd.Op)}
}

func (m *Metadata) createTopic(cmd *Command) (*Metadata, Result) {
	if _, ok := m.Topics[cmd.Topic]; ok {
		return m, Result{Err: fmt.Errorf("%w: %q", ErrTopicExists, cmd.Topic)}
	}
	if cmd.Partitions <= 0 || cmd.Partitions > MaxPartitions {
		return m, Result{Err: fmt.Errorf("%w: %d", ErrInvalidPartitions, cmd.Partitions)}
	}
	nodes := m.NodeIDs()
	if cmd.Replicas <= 0 || int(cmd.Replicas) > len(nodes) {
		return m, Result{Err: fmt.Errorf("%w: %d replicas requested, %d nodes registered", ErrInvalidReplicas, cmd.Replicas, len(nodes))}
	}
	var id [16]byte
	if b, err := hex.DecodeString(cmd.TopicID); err != nil || len(b) != 16 {
		return m, Result{Err: fmt.Errorf("create topic %q: bad id %q", cmd.Topic, cmd.TopicID)}
	} else {
		copy(id[:], b)
	}
	n := m.clone()
	t := &Topic{Name: cmd.Topic, ID: id, Configs: maps.Clone(cmd.Configs)}
	t.Partitions = n.assign(nodes, int(cmd.Partitions), int(cmd.Replicas))
	n.Topics[t.Name] = t
	return n, Result{}
}

func (m *Metadata) createPartitions(cmd *Command) (*Metadata, Result) {
	t, ok := m.Topics[cmd.Topic]
	if !ok {
		return m, Result{Err: fmt.Errorf("%w: %q", ErrUnknownTopic, cmd.Topic)}
	}
	have := len(t.Partitions)
	if int(cmd.Partitions) <= have || cmd.Partitions > MaxPartitions {
		return m, Result{Err: fmt.Errorf("%w: topic %q has %d partitions, asked for %d", ErrInvalidPartitions, t.Name, have, cmd.Partitions)}
	}
	nodes := m.NodeIDs()
	rf := len(t.Partitions[0].Replicas)
	if rf > len(nodes) {
		return m, Result{Err: fmt.Errorf("%w: %d replicas, %d nodes", ErrInvalidReplicas, rf, len(nodes))}
	}
	n := m.clone()
	nt := *t
	nt.Partitions = append(slices.Clone(t.Partitions), n.assign(nodes, int(cmd.Partitions)-have, rf)...)
	n.Topics[t.Name] = &nt
	return n, Result{}
}

// assign places count partitions of rf replicas on nodes, round robin from
// a start that moves with every partition the cluster creates, so leaders
// (the first replica) spread over the nodes across topics.
func (m *Metadata) assign(nodes []int32, count, rf int) []Partition {
	out := make([]Partition, 0, count)
	for p := range count {
		start := int(m.NextGroup) + p
		reps := make([]int32, rf)
		for k := range rf {
			reps[k] = nodes[(start+k)%len(nodes)]
		}
		out = append(out, Partition{Group: m.NextGroup + uint64(p), Replicas: reps, Initial: slices.Clone(reps), Leader: -1, Epoch: -1, ISR: slices.Clone(reps)})
	}
	m.NextGroup += uint64(count)
	return out
}

// move starts a replica move (reassign) or completes it (replicas_done:
// the partition's Raft membership now equals the target).
func (m *Metadata) move(cmd *Command) (*Metadata, Result) {
	t, ok := m.Topics[cmd.Topic]
	if !ok || cmd.Partition < 0 || int(cmd.Partition) >= len(t.Partitions) {
		return m, Result{Err: fmt.Errorf("%w: %s-%d", ErrUnknownTopic, cmd.Topic, cmd.Partition)}
	}
	cur := t.Partitions[cmd.Partition]
	if len(cmd.Target) == 0 || len(cmd.Target) != len(cur.Replicas) {
		return m, Result{Err: fmt.Errorf("%w: move %s-%d to %v", ErrInvalidReplicas, cmd.Topic, cmd.Partition, cmd.Target)}
	}
	seen := map[int32]bool{}
	for _, id := range cmd.Target {
		if _, ok := m.Nodes[id]; !ok || seen[id] {
			return m, Result{Err: fmt.Errorf("%w: move %s-%d to %v", ErrInvalidReplicas, cmd.Topic, cmd.Partition, cmd.Target)}
		}
		seen[id] = true
	}
	np := cur
	if cmd.Op == opReassign {
		if cur.Target != nil || slices.Equal(sortedCopy(cur.Replicas), sortedCopy(cmd.Target)) {
			return m, Result{} // a move is under way, or nothing to do
		}
		np.Target = slices.Clone(cmd.Target)
	} else {
		if cur.Target == nil || !slices.Equal(sortedCopy(cur.Target), sortedCopy(cmd.Target)) {
			return m, Result{}
		}
		np.Replicas, np.Target = slices.Clone(cur.Target), nil
		np.ISR = slices.Clone(np.Replicas)
	}
	n := m.clone()
	nt := *t
	nt.Partitions = slices.Clone(t.Partitions)
	nt.Partitions[cmd.Partition] = np
	n.Topics[t.Name] = &nt
	return n, Result{}
}

// replicaCount is how many partitions hold or are moving to a replica on
// node id.
func (m *Metadata) replicaCount(id int32) int {
	n := 0
	for _, t := range m.Topics {
		for _, p := range t.Partitions {
			if slices.Contains(p.Replicas, id) || slices.Contains(p.Target, id) {
				n++
			}
		}
	}
	return n
}

func sortedCopy(ids []int32) []int32 {
	s := slices.Clone(ids)
	slices.Sort(s)
	return s
}

// leaders applies leader reports; a report older than what is known is
// ignored.
func (m *Metadata) leaders(reports []LeaderReport) *Metadata {
	n := m
	for _, r := range reports {
		t, ok := n.Topics[r.Topic]
		if !ok || r.Partition < 0 || int(r.Partition) >= len(t.Partitions) {
			continue
		}
		cur := t.Partitions[r.Partition]
		if r.Epoch < cur.Epoch || (r.Epoch == cur.Epoch && cur.Leader == r.Leader && slices.Equal(cur.ISR, r.ISR)) {
			continue
		}
		if n == m {
			n = m.clone()
		}
		nt := *n.Topics[r.Topic]
		nt.Partitions = slices.Clone(nt.Partitions)
		p := &nt.Partitions[r.Partition]
		p.Leader, p.Epoch, p.ISR = r.Leader, r.Epoch, slices.Clone(r.ISR)
		n.Topics[r.Topic] = &nt
	}
	return n
}

func encodeCommand(cmd *Command) ([]byte, error) { return json.Marshal(cmd) }

func decodeCommand(b []byte) (*Command, error) {
	var cmd Command
	if err := json.Unmarshal(b, &cmd); err != nil {
		return nil, fmt.Errorf("decode metadata command: %w", err)
	}
	return &cmd, nil
}
