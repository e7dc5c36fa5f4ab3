package group

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/clock"
)

var testStart = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// syncClock is a fake clock whose Advance returns only once the callbacks
// of every timer that came due have finished, so tests observe their
// effects without sleeping or polling.
type syncClock struct {
	*clock.Fake
	mu     sync.Mutex
	timers map[*syncTimer]struct{}
}

type syncTimer struct {
	c     *syncClock
	inner clock.Timer
	when  time.Time
	done  chan struct{} // closed when the callback has returned
}

func newSyncClock() *syncClock {
	return &syncClock{Fake: clock.NewFake(testStart), timers: make(map[*syncTimer]struct{})}
}

func (c *syncClock) AfterFunc(d time.Duration, fn func()) clock.Timer {
	t := &syncTimer{c: c, when: c.Now().Add(d), done: make(chan struct{})}
	c.mu.Lock()
	c.timers[t] = struct{}{}
	c.mu.Unlock()
	t.inner = c.Fake.AfterFunc(d, func() {
		fn()
		c.mu.Lock()
		delete(c.timers, t)
		c.mu.Unlock()
		close(t.done)
	})
	return t
}

func (c *syncClock) NewTimer(time.Duration) clock.Timer { panic("group does not use channel timers") }

// Advance moves time and waits for the due callbacks (and for any timers
// they arm that are due already).
func (c *syncClock) Advance(d time.Duration) {
	c.Fake.Advance(d)
	for {
		now := c.Now()
		c.mu.Lock()
		var due []*syncTimer
		for t := range c.timers {
			if !t.when.After(now) {
				due = append(due, t)
			}
		}
		c.mu.Unlock()
		if len(due) == 0 {
			return
		}
		for _, t := range due {
			<-t.done
		}
	}
}

func (t *syncTimer) C() <-chan time.Time { return nil }

func (t *syncTimer) Stop() bool {
	if !t.inner.Stop() {
		return false // fired: Advance waits for the callback
	}
	t.c.mu.Lock()
	delete(t.c.timers, t)
	t.c.mu.Unlock()
	return true
}

func (t *syncTimer) Reset(time.Duration) bool { panic("group does not reset timers") }

// memStore is a Store that keeps the log of durable writes, encoded as the
// broker would, and fails on demand.
type memStore struct {
	mu          sync.Mutex
	ops         []storeOp
	failGroup   error
	failOffsets error
	txnOps      []txnOp
}

type storeOp struct {
	group   string
	isGroup bool
	value   []byte // encoded GroupMetadataValue; nil is a tombstone
	offsets []OffsetRecord
}

var errDisk = errors.New("injected write failure")

func (s *memStore) SaveGroup(group string, v *kmsg.GroupMetadataValue) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failGroup != nil {
		return s.failGroup
	}
	op := storeOp{group: group, isGroup: true}
	if v != nil {
		op.value = v.AppendTo(nil)
	}
	s.ops = append(s.ops, op)
	return nil
}

func (s *memStore) SaveTxnOffsets(group string, producerID int64, producerEpoch int16, offsets []OffsetRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failOffsets != nil {
		return s.failOffsets
	}
	s.txnOps = append(s.txnOps, txnOp{group: group, producerID: producerID, offsets: offsets})
	return nil
}

// txnOp is a persisted TxnOffsetCommit, replayed with LoadTxnOffset.
type txnOp struct {
	group      string
	producerID int64
	offsets    []OffsetRecord
}

func (s *memStore) SaveOffsets(group string, offsets []OffsetRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failOffsets != nil {
		return s.failOffsets
	}
	s.ops = append(s.ops, storeOp{group: group, offsets: slices.Clone(offsets)})
	return nil
}

func (s *memStore) fail(group, offsets error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failGroup, s.failOffsets = group, offsets
}

func (s *memStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ops)
}

// last returns the latest durable group record of a group; found is false
// if there is none, v is nil for a tombstone.
func (s *memStore) lastGroup(t *testing.T, group string) (v *kmsg.GroupMetadataValue, found bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.ops) - 1; i >= 0; i-- {
		op := s.ops[i]
		if op.group != group || !op.isGroup {
			continue
		}
		if op.value == nil {
			return nil, true
		}
		v = new(kmsg.GroupMetadataValue)
		if err := v.ReadFrom(op.value); err != nil {
			t.Fatalf("decode group record: %v", err)
		}
		return v, true
	}
	return nil, false
}

// replay feeds the log to a new Manager, as the broker does at start-up.
func (s *memStore) replay(t *testing.T, m *Manager) {
	t.Helper()
	s.mu.Lock()
	ops := slices.Clone(s.ops)
	s.mu.Unlock()
	for _, op := range ops {
		if !op.isGroup {
			for _, r := range op.offsets {
				m.LoadOffset(op.group, r)
			}
			continue
		}
		var v *kmsg.GroupMetadataValue
		if op.value != nil {
			v = new(kmsg.GroupMetadataValue)
			if err := v.ReadFrom(op.value); err != nil {
				t.Fatalf("decode group record: %v", err)
			}
		}
		m.LoadGroup(op.group, v)
	}
}

var testConfig = Config{
	MinSessionTimeout:     6 * time.Second,
	MaxSessionTimeout:     30 * time.Minute,
	InitialRebalanceDelay: 0,
	OffsetsRetention:      7 * 24 * time.Hour,
}

type harness struct {
	t     *testing.T
	clk   *syncClock
	store *memStore
	m     *Manager
}

func newHarness(t *testing.T, mods ...func(*Config)) *harness {
	t.Helper()
	cfg := testConfig
	for _, mod := range mods {
		mod(&cfg)
	}
	h := &harness{t: t, clk: newSyncClock(), store: &memStore{}}
	h.m = NewManager(cfg, h.store, h.clk, nil)
	t.Cleanup(h.m.Close)
	return h
}

// restart builds a second Manager from the store's log, as after a broker
// restart, on the same clock.
func (h *harness) restart() *Manager {
	h.t.Helper()
	m := NewManager(h.m.cfg, h.store, h.clk, nil)
	h.store.replay(h.t, m)
	h.t.Cleanup(m.Close)
	return m
}

// call is a JoinGroup or SyncGroup in progress.
type call[T any] struct {
	t    *testing.T
	what string
	resp T
	ch   <-chan T
}

// done returns the answer, failing the test if the call is still waiting.
// Answers are given synchronously by the operation (or timer) that
// completes a round, so no waiting is needed.
func (c *call[T]) done() T {
	c.t.Helper()
	if c.ch == nil {
		return c.resp
	}
	select {
	case r := <-c.ch:
		c.resp, c.ch = r, nil
		return r
	default:
		c.t.Fatalf("%s is still waiting", c.what)
		panic("unreachable")
	}
}

// waiting fails the test unless the call is still waiting.
func (c *call[T]) waiting() {
	c.t.Helper()
	if c.ch == nil {
		c.t.Fatalf("%s was answered at once: %+v", c.what, c.resp)
	}
	select {
	case r := <-c.ch:
		c.t.Fatalf("%s was answered: %+v", c.what, r)
	default:
	}
}

func (h *harness) join(req *kmsg.JoinGroupRequest) *call[*kmsg.JoinGroupResponse] {
	resp, ch := h.m.join(req, clientInfo{id: "client", host: "/127.0.0.1"})
	return &call[*kmsg.JoinGroupResponse]{t: h.t, what: fmt.Sprintf("join of %q", req.MemberID), resp: resp, ch: ch}
}

func (h *harness) sync(req *kmsg.SyncGroupRequest) *call[*kmsg.SyncGroupResponse] {
	resp, ch := h.m.sync(req)
	return &call[*kmsg.SyncGroupResponse]{t: h.t, what: fmt.Sprintf("sync of %q", req.MemberID), resp: resp, ch: ch}
}

// joinNew does the KIP-394 handshake: the first JoinGroup gets
// MEMBER_ID_REQUIRED and an id, the second joins with it.
func (h *harness) joinNew(req *kmsg.JoinGroupRequest) *call[*kmsg.JoinGroupResponse] {
	h.t.Helper()
	first := h.join(req).done()
	wantCode(h.t, "first join", first.ErrorCode, kerr.MemberIDRequired)
	if first.MemberID == "" {
		h.t.Fatal("MEMBER_ID_REQUIRED without a member id")
	}
	again := *req
	again.MemberID = first.MemberID
	return h.join(&again)
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	wantCode := int16(0)
	wantName := "NONE"
	if want != nil {
		wantCode, wantName = want.Code, want.Message
	}
	if got != wantCode {
		gotName := "NONE"
		if e := kerr.ErrorForCode(got); e != nil {
			gotName = e.Error()
		}
		t.Fatalf("%s: error %d (%s), want %d (%s)", what, got, gotName, wantCode, wantName)
	}
}

// subscription is consumer-protocol member metadata for topics.
func subscription(topics ...string) []byte {
	md := kmsg.NewConsumerMemberMetadata()
	md.Version = 0
	md.Topics = topics
	return md.AppendTo(nil)
}

type joinOpt func(*kmsg.JoinGroupRequest)

func withInstance(id string) joinOpt {
	return func(r *kmsg.JoinGroupRequest) { r.InstanceID = kmsg.StringPtr(id) }
}

func withVersion(v int16) joinOpt { return func(r *kmsg.JoinGroupRequest) { r.Version = v } }

func withTimeouts(session, rebalance time.Duration) joinOpt {
	return func(r *kmsg.JoinGroupRequest) {
		r.SessionTimeoutMillis = int32(session.Milliseconds())
		r.RebalanceTimeoutMillis = int32(rebalance.Milliseconds())
	}
}

func withTopics(topics ...string) joinOpt {
	return func(r *kmsg.JoinGroupRequest) {
		r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: subscription(topics...)}}
	}
}

func withProtocols(protocolType string, names ...string) joinOpt {
	return func(r *kmsg.JoinGroupRequest) {
		r.ProtocolType = protocolType
		r.Protocols = nil
		for _, n := range names {
			r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: n, Metadata: subscription("t")})
		}
	}
}

// joinReq is a JoinGroup v9 of a consumer subscribed to topic "t", with a
// 10s session and 30s rebalance timeout.
func joinReq(group, memberID string, opts ...joinOpt) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = 9
	r.Group = group
	r.MemberID = memberID
	r.SessionTimeoutMillis = 10_000
	r.RebalanceTimeoutMillis = 30_000
	r.ProtocolType = "consumer"
	r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: subscription("t")}}
	for _, o := range opts {
		o(r)
	}
	return r
}

func syncReq(group, memberID string, generation int32, assignments map[string]string) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = 5
	r.Group = group
	r.MemberID = memberID
	r.Generation = generation
	ids := make([]string, 0, len(assignments))
	for id := range assignments {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: []byte(assignments[id])})
	}
	return r
}

func heartbeatReq(group, memberID string, generation int32) *kmsg.HeartbeatRequest {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version = 4
	r.Group = group
	r.MemberID = memberID
	r.Generation = generation
	return r
}

func (h *harness) heartbeat(group, memberID string, generation int32) int16 {
	return h.m.Heartbeat(heartbeatReq(group, memberID, generation)).ErrorCode
}

// stable forms a Stable group of n dynamic members, one rebalance per
// member, each assigned "a-<member id>". It needs InitialRebalanceDelay 0.
// It returns the member ids in join order (the first leads) and the
// generation.
func (h *harness) stable(group string, n int, opts ...joinOpt) ([]string, int32) {
	h.t.Helper()
	var ids []string
	var generation int32
	for i := range n {
		calls := []*call[*kmsg.JoinGroupResponse]{h.joinNew(joinReq(group, "", opts...))}
		for _, id := range ids {
			calls = append(calls, h.join(joinReq(group, id, opts...)))
		}
		ids = ids[:0]
		var leader string
		for _, c := range calls {
			r := c.done()
			wantCode(h.t, fmt.Sprintf("join in round %d", i), r.ErrorCode, nil)
			ids = append(ids, r.MemberID)
			leader, generation = r.LeaderID, r.Generation
		}
		// the new member joined first in the round; keep join order
		ids = append(ids[1:], ids[0])
		if leader != ids[0] {
			h.t.Fatalf("leader %s, want the oldest member %s", leader, ids[0])
		}
		h.syncAll(group, ids, generation)
	}
	return ids, generation
}

// syncAll syncs followers first, then the leader (ids[0]), assigning each
// member "a-<id>", and checks everyone got their assignment.
func (h *harness) syncAll(group string, ids []string, generation int32) {
	h.t.Helper()
	assign := make(map[string]string)
	for _, id := range ids {
		assign[id] = "a-" + id
	}
	var calls []*call[*kmsg.SyncGroupResponse]
	for _, id := range ids[1:] {
		c := h.sync(syncReq(group, id, generation, nil))
		c.waiting()
		calls = append(calls, c)
	}
	lr := h.sync(syncReq(group, ids[0], generation, assign)).done()
	wantCode(h.t, "leader sync", lr.ErrorCode, nil)
	if string(lr.MemberAssignment) != assign[ids[0]] {
		h.t.Fatalf("leader assignment %q", lr.MemberAssignment)
	}
	for i, c := range calls {
		r := c.done()
		wantCode(h.t, "follower sync", r.ErrorCode, nil)
		if string(r.MemberAssignment) != assign[ids[i+1]] {
			h.t.Fatalf("follower %s assignment %q", ids[i+1], r.MemberAssignment)
		}
	}
}

func (h *harness) describe(group string) kmsg.DescribeGroupsResponseGroup {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = 5
	req.Groups = []string{group}
	return h.m.Describe(req).Groups[0]
}

func (h *harness) state(group string) string { return h.describe(group).State }

func wantState(t *testing.T, h *harness, group, want string) {
	t.Helper()
	if got := h.state(group); got != want {
		t.Fatalf("group %s is %s, want %s", group, got, want)
	}
}

func memberIDs(d kmsg.DescribeGroupsResponseGroup) []string {
	var ids []string
	for _, m := range d.Members {
		ids = append(ids, m.MemberID)
	}
	return ids
}

func allKnown(string, int32) bool { return true }

// commit is an OffsetCommit v9 of one partition of topic t per offset
// (partition i gets offsets[i]).
func commitReq(group, memberID string, generation int32, offsets ...int64) *kmsg.OffsetCommitRequest {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 9
	r.Group = group
	r.MemberID = memberID
	r.Generation = generation
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = "t"
	for i, o := range offsets {
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition = int32(i)
		p.Offset = o
		p.Metadata = kmsg.StringPtr("md")
		t.Partitions = append(t.Partitions, p)
	}
	r.Topics = append(r.Topics, t)
	return r
}

// commitCodes returns the per-partition error codes of a commit response in
// request order.
func commitCodes(resp *kmsg.OffsetCommitResponse) []int16 {
	var codes []int16
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			codes = append(codes, p.ErrorCode)
		}
	}
	return codes
}

func wantCodes(t *testing.T, what string, got []int16, want ...*kerr.Error) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d codes %v, want %d", what, len(got), got, len(want))
	}
	for i := range got {
		wantCode(t, fmt.Sprintf("%s[%d]", what, i), got[i], want[i])
	}
}

// fetch returns a group's committed offsets of topic t, partitions 0..n-1,
// via OffsetFetch v9, as offset or -1.
func (h *harness) fetch(group string, n int) []int64 {
	h.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 9
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic = "t"
	for i := range n {
		rt.Partitions = append(rt.Partitions, int32(i))
	}
	rg.Topics = append(rg.Topics, rt)
	req.Groups = append(req.Groups, rg)
	resp := h.m.FetchOffsets(req)
	g := resp.Groups[0]
	wantCode(h.t, "fetch", g.ErrorCode, nil)
	var out []int64
	for _, p := range g.Topics[0].Partitions {
		wantCode(h.t, "fetch partition", p.ErrorCode, nil)
		out = append(out, p.Offset)
	}
	return out
}
