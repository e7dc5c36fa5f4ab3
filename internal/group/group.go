package group

import (
	"bytes"
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/clock"
)

type state int8

const (
	stateEmpty state = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s state) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	default:
		return "Dead"
	}
}

type protocol struct {
	name     string
	metadata []byte
}

type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	rebalanceTimeout int32 // ms
	sessionTimeout   int32 // ms
	protocolType     string
	protocols        []protocol
	assignment       []byte
	// seq orders members by when they joined: the oldest is preferred as
	// leader, and lists of members come in this order.
	seq uint64
	// isNew is set until the member's first JoinGroup response: until then
	// it cannot heartbeat, so only newMemberJoinTimeout bounds its stay.
	isNew     bool
	join      *joinWaiter // non-nil while its JoinGroup waits
	sync      *syncWaiter // non-nil while its SyncGroup waits
	heartbeat *timer      // session expiry
}

func (mem *member) metadataFor(name string) []byte {
	for _, p := range mem.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

// matches reports whether a rejoin carries exactly the protocols the member
// last sent, in the same order.
func (mem *member) matches(protocols []protocol) bool {
	return slices.EqualFunc(mem.protocols, protocols, func(a, b protocol) bool {
		return a.name == b.name && bytes.Equal(a.metadata, b.metadata)
	})
}

type topicPartition struct {
	topic     string
	partition int32
}

type committedOffset struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitTime  int64
	expireTime  int64
	// seq orders commits: a transactional offset committed by EndTxn only
	// replaces a plain commit made before the TxnOffsetCommit, as Kafka
	// compares the log positions of the two records.
	seq uint64
}

func (o committedOffset) record(tp topicPartition) OffsetRecord {
	return OffsetRecord{
		Topic: tp.topic, Partition: tp.partition, Offset: o.offset, LeaderEpoch: o.leaderEpoch,
		Metadata: o.metadata, CommitTime: o.commitTime, ExpireTime: o.expireTime,
	}
}

type group struct {
	m    *Manager
	name string

	mu sync.Mutex
	// Everything below is guarded by mu.

	removed      bool
	state        state
	stateTime    int64 // unix ms of the last state change; -1 if unknown (old record)
	generation   int32
	protocolType string
	protocol     string // chosen protocol; "" while there is none
	leader       string
	members      map[string]*member
	static       map[string]string // instance id -> member id
	pending      map[string]*timer // member ids handed out with MEMBER_ID_REQUIRED
	pendingSync  map[string]struct{}
	nextSeq      uint64
	// newMemberAdded records a join during a new group's initial delay,
	// which extends the delay (Kafka's InitialDelayedJoin).
	newMemberAdded bool

	joinTimer   *timer // PreparingRebalance deadline
	joinInitial bool   // joinTimer is the initial delay, which no join completes early
	syncTimer   *timer // CompletingRebalance deadline for SyncGroups

	// subscribed is the union of the consumer-protocol subscriptions of the
	// current generation; nil if unknown (not a consumer group, or
	// unparsable metadata).
	subscribed map[string]struct{}

	offsets   map[topicPartition]committedOffset
	txn       map[int64]map[topicPartition]committedOffset // staged by producer id
	commitSeq uint64
}

func newGroup(m *Manager, name string) *group {
	return &group{
		m:         m,
		name:      name,
		state:     stateEmpty,
		stateTime: m.nowMs(),
		members:   make(map[string]*member),
		static:    make(map[string]string),
		pending:   make(map[string]*timer),
		offsets:   make(map[topicPartition]committedOffset),
		txn:       make(map[int64]map[topicPartition]committedOffset),
	}
}

func (g *group) transition(s state) {
	g.state = s
	g.stateTime = g.m.nowMs()
}

// vacant reports a group that holds nothing worth keeping: never rebalanced,
// no members, no offsets.
func (g *group) vacant() bool {
	return g.state == stateEmpty && g.generation == 0 && len(g.members) == 0 &&
		len(g.pending) == 0 && len(g.offsets) == 0 && len(g.txn) == 0
}

// sortedMembers returns the members in join order.
func (g *group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, mem := range g.members {
		ms = append(ms, mem)
	}
	slices.SortFunc(ms, func(a, b *member) int { return cmp.Compare(a.seq, b.seq) })
	return ms
}

func (g *group) numAwaitingJoin() int {
	n := 0
	for _, mem := range g.members {
		if mem.join != nil {
			n++
		}
	}
	return n
}

// allJoined reports whether a rebalance has heard from everyone it waits
// for: every member has rejoined and no handed-out member id is unused.
func (g *group) allJoined() bool {
	return g.numAwaitingJoin() == len(g.members) && len(g.pending) == 0
}

// rebalanceTimeout is the largest rebalance timeout of the members.
func (g *group) rebalanceTimeout() time.Duration {
	var ms int32
	for _, mem := range g.members {
		ms = max(ms, mem.rebalanceTimeout)
	}
	return time.Duration(ms) * time.Millisecond
}

// candidateProtocols returns the protocols every member supports; nil for
// no members.
func (g *group) candidateProtocols() map[string]bool {
	var common map[string]bool
	for _, mem := range g.members {
		mine := make(map[string]bool, len(mem.protocols))
		for _, p := range mem.protocols {
			if common == nil || common[p.name] {
				mine[p.name] = true
			}
		}
		common = mine
	}
	return common
}

// supportsProtocols reports whether a member with this protocol type and
// these protocols may join: an Empty group takes any non-empty protocol
// list; otherwise the type must match and one protocol must be supported by
// every member.
func (g *group) supportsProtocols(protocolType string, protocols []protocol) bool {
	if g.state == stateEmpty {
		return protocolType != "" && len(protocols) > 0
	}
	if protocolType != g.protocolType {
		return false
	}
	if len(g.members) == 0 {
		return len(protocols) > 0
	}
	common := g.candidateProtocols()
	for _, p := range protocols {
		if common[p.name] {
			return true
		}
	}
	return false
}

// selectProtocol lets every member vote for its most preferred protocol
// among those all members support and returns the most voted one. Ties go
// to the protocol first voted for, in member join order, so the choice is
// deterministic.
func (g *group) selectProtocol() string {
	common := g.candidateProtocols()
	var order []string
	votes := make(map[string]int)
	for _, mem := range g.sortedMembers() {
		for _, p := range mem.protocols {
			if common[p.name] {
				if votes[p.name] == 0 {
					order = append(order, p.name)
				}
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, name := range order {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// addMember puts a member in the group, waiting in JoinGroup if w is set.
func (g *group) addMember(mem *member, w *joinWaiter) {
	if len(g.members) == 0 {
		g.protocolType = mem.protocolType
	}
	if g.leader == "" {
		g.leader = mem.id
	}
	mem.seq = g.nextSeq
	g.nextSeq++
	mem.join = w
	g.members[mem.id] = mem
	if mem.instanceID != nil {
		g.static[*mem.instanceID] = mem.id
	}
	if t, ok := g.pending[mem.id]; ok {
		t.stop()
		delete(g.pending, mem.id)
	}
}

// removeMember takes a member out of the group, answering any call it has
// waiting with UNKNOWN_MEMBER_ID. It does not start a rebalance.
func (g *group) removeMember(mem *member) {
	g.failWaiters(mem, kerr.UnknownMemberID.Code)
	mem.heartbeat.stop()
	delete(g.members, mem.id)
	if mem.instanceID != nil && g.static[*mem.instanceID] == mem.id {
		delete(g.static, *mem.instanceID)
	}
	delete(g.pendingSync, mem.id)
	if g.leader == mem.id {
		g.leader = ""
		if ms := g.sortedMembers(); len(ms) > 0 {
			g.leader = ms[0].id
		}
	}
}

// failWaiters answers the member's waiting JoinGroup and SyncGroup with an
// error.
func (g *group) failWaiters(mem *member, code int16) {
	if mem.join != nil {
		memberID := ""
		if code == kerr.FencedInstanceID.Code || code == kerr.NotCoordinator.Code {
			memberID = mem.id
		}
		mem.join.complete(joinError(memberID, code))
		mem.join = nil
	}
	if mem.sync != nil {
		mem.sync.complete(syncResult{err: code})
		mem.sync = nil
	}
}

// updateMember records a rejoin's protocols and timeouts and its waiting
// call. A call of the same member that was still waiting is answered
// REBALANCE_IN_PROGRESS so that it does not hang.
func (g *group) updateMember(mem *member, protocols []protocol, rebalanceTimeout, sessionTimeout int32, w *joinWaiter) {
	mem.protocols = protocols
	mem.rebalanceTimeout = rebalanceTimeout
	mem.sessionTimeout = sessionTimeout
	if mem.join != nil && w != nil && mem.join != w {
		mem.join.complete(joinError(mem.id, kerr.RebalanceInProgress.Code))
	}
	mem.join = w
}

// replaceStaticMember gives a static member a new member id. Calls waiting
// under the old id are fenced.
func (g *group) replaceStaticMember(instanceID, oldID, newID string) *member {
	mem := g.members[oldID]
	g.failWaiters(mem, kerr.FencedInstanceID.Code)
	delete(g.members, oldID)
	mem.id = newID
	g.members[newID] = mem
	if g.leader == oldID {
		g.leader = newID
	}
	if _, ok := g.pendingSync[oldID]; ok {
		delete(g.pendingSync, oldID)
		g.pendingSync[newID] = struct{}{}
	}
	g.static[instanceID] = newID
	return mem
}

// validateMember checks that memberID is in the group and, for a static
// member, that it is the instance's current member id.
func (g *group) validateMember(memberID string, instanceID *string) *kerr.Error {
	if instanceID != nil {
		current, ok := g.static[*instanceID]
		if !ok {
			return kerr.UnknownMemberID
		}
		if current != memberID {
			return kerr.FencedInstanceID
		}
	}
	if _, ok := g.members[memberID]; !ok {
		return kerr.UnknownMemberID
	}
	return nil
}

// currentMemberMetadata is what the leader's JoinGroup response lists.
func (g *group) currentMemberMetadata() []kmsg.JoinGroupResponseMember {
	ms := g.sortedMembers()
	out := make([]kmsg.JoinGroupResponseMember, 0, len(ms))
	for _, mem := range ms {
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID = mem.id
		rm.InstanceID = mem.instanceID
		rm.ProtocolMetadata = mem.metadataFor(g.protocol)
		out = append(out, rm)
	}
	return out
}

// computeSubscribed returns the topics a consumer group's members subscribe
// to, or nil if that is unknown.
func (g *group) computeSubscribed() map[string]struct{} {
	if g.protocolType != consumerProtocolType {
		return nil
	}
	topics := make(map[string]struct{})
	if len(g.members) == 0 {
		return topics
	}
	if g.protocol == "" {
		return nil
	}
	for _, mem := range g.members {
		ts, ok := subscriptionTopics(mem.metadataFor(g.protocol))
		if !ok {
			return nil
		}
		for _, t := range ts {
			topics[t] = struct{}{}
		}
	}
	return topics
}

// isSubscribed reports whether the group consumes topic; true when unknown.
func (g *group) isSubscribed(topic string) bool {
	if g.subscribed == nil {
		return true
	}
	_, ok := g.subscribed[topic]
	return ok
}

// subscriptionTopics reads the topics of a consumer-protocol subscription.
// Every version starts with version 0's fields (version, topics), so only
// that prefix is read, as Kafka does.
func subscriptionTopics(metadata []byte) ([]string, bool) {
	r := kbin.Reader{Src: metadata}
	r.Int16()
	n := r.ArrayLen()
	if n < 0 {
		return nil, false
	}
	topics := make([]string, 0, n)
	for range n {
		topics = append(topics, r.String())
	}
	return topics, r.Ok()
}

// value is the group's persisted form. assignment, if not nil, replaces the
// members' current assignments (the leader's SyncGroup before it is
// durable).
func (g *group) value(assignment map[string][]byte) *kmsg.GroupMetadataValue {
	v := new(kmsg.GroupMetadataValue)
	v.Default()
	v.Version = 3
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		v.Protocol = kmsg.StringPtr(g.protocol)
	}
	if g.leader != "" {
		v.Leader = kmsg.StringPtr(g.leader)
	}
	v.CurrentStateTimestamp = g.stateTime
	for _, mem := range g.sortedMembers() {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = mem.id
		vm.InstanceID = mem.instanceID
		vm.ClientID = mem.clientID
		vm.ClientHost = mem.clientHost
		vm.RebalanceTimeoutMillis = mem.rebalanceTimeout
		vm.SessionTimeoutMillis = mem.sessionTimeout
		vm.Subscription = mem.metadataFor(g.protocol)
		vm.Assignment = mem.assignment
		if assignment != nil {
			vm.Assignment = assignment[mem.id]
		}
		v.Members = append(v.Members, vm)
	}
	return v
}

// timer is a clock timer whose callback runs under the group's lock and
// only if the timer was neither stopped nor fired meanwhile.
type timer struct {
	t    clock.Timer
	dead bool // guarded by the group's mu
}

// after arms fn to run after d with g.mu held.
func (g *group) after(d time.Duration, fn func()) *timer {
	tm := &timer{}
	tm.t = g.m.clk.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if tm.dead || g.removed || g.m.closed.Load() {
			return
		}
		tm.dead = true
		fn()
	})
	return tm
}

func (tm *timer) stop() {
	if tm == nil || tm.dead {
		return
	}
	tm.dead = true
	tm.t.Stop()
}

// stopTimers stops every timer the group has armed.
func (g *group) stopTimers() {
	g.joinTimer.stop()
	g.joinTimer = nil
	g.syncTimer.stop()
	g.syncTimer = nil
	for _, t := range g.pending {
		t.stop()
	}
	for _, mem := range g.members {
		mem.heartbeat.stop()
	}
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}
