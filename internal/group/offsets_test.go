package group

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestFetchWithoutCommits(t *testing.T) {
	h := newHarness(t)
	// An unknown group: every asked partition is -1 without error.
	for _, version := range []int16{1, 5, 7} {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = version
		req.Group = "nobody"
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1}}}
		resp := h.m.FetchOffsets(req)
		wantCode(t, "top-level", resp.ErrorCode, nil)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("v%d: %+v", version, resp.Topics)
		}
		for _, p := range resp.Topics[0].Partitions {
			wantCode(t, "partition", p.ErrorCode, nil)
			if p.Offset != -1 || p.LeaderEpoch != -1 || p.Metadata == nil || *p.Metadata != "" {
				t.Fatalf("v%d partition %+v", version, p)
			}
		}
	}
	// A known group, a partition it never committed.
	h.m.CommitOffsets(commitReq("g", "", -1, 4), allKnown)
	if got := h.fetch("g", 3); !slices.Equal(got, []int64{4, -1, -1}) {
		t.Fatalf("fetched %v", got)
	}
	// A nil topic list is every committed partition; for an unknown group,
	// nothing.
	all := kmsg.NewPtrOffsetFetchRequest()
	all.Version = 7
	all.Group = "g"
	resp := h.m.FetchOffsets(all)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].Offset != 4 {
		t.Fatalf("all offsets: %+v", resp.Topics)
	}
	all.Group = "nobody"
	if resp := h.m.FetchOffsets(all); len(resp.Topics) != 0 || resp.ErrorCode != 0 {
		t.Fatalf("all offsets of unknown group: %+v", resp)
	}
}

func TestFetchBatchesGroups(t *testing.T) {
	h := newHarness(t)
	c := commitReq("a", "", -1, 1, 2)
	c.Topics = append(c.Topics, kmsg.OffsetCommitRequestTopic{Topic: "u", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 3, Offset: 30, LeaderEpoch: 7}}})
	h.m.CommitOffsets(c, allKnown)
	h.m.CommitOffsets(commitReq("b", "", -1, 9), allKnown)
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	req.Groups = []kmsg.OffsetFetchRequestGroup{
		{Group: "a"}, // all topics
		{Group: "b", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0, 5}}}},
		{Group: "c", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}},
	}
	resp := h.m.FetchOffsets(req)
	type row struct {
		group, topic string
		partition    int32
		offset       int64
		epoch        int32
	}
	var got []row
	for _, g := range resp.Groups {
		wantCode(t, g.Group, g.ErrorCode, nil)
		for _, tp := range g.Topics {
			for _, p := range tp.Partitions {
				got = append(got, row{g.Group, tp.Topic, p.Partition, p.Offset, p.LeaderEpoch})
			}
		}
	}
	want := []row{
		{"a", "t", 0, 1, -1}, {"a", "t", 1, 2, -1}, {"a", "u", 3, 30, 7},
		{"b", "t", 0, 9, -1}, {"b", "t", 5, -1, -1},
		{"c", "t", 0, -1, -1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("fetched\n%v\nwant\n%v", got, want)
	}
}

func txnReq(group string, producerID int64, offsets ...int64) *kmsg.TxnOffsetCommitRequest {
	r := kmsg.NewPtrTxnOffsetCommitRequest()
	r.Version = 3
	r.TransactionalID = "tx"
	r.Group = group
	r.ProducerID = producerID
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic = "t"
	for i, o := range offsets {
		p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		p.Partition = int32(i)
		p.Offset = o
		t.Partitions = append(t.Partitions, p)
	}
	r.Topics = append(r.Topics, t)
	return r
}

func txnCodes(resp *kmsg.TxnOffsetCommitResponse) []int16 {
	var codes []int16
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			codes = append(codes, p.ErrorCode)
		}
	}
	return codes
}

func TestTxnOffsets(t *testing.T) {
	h := newHarness(t)
	wantCodes(t, "stage", txnCodes(h.m.CommitTxnOffsets(txnReq("g", 1, 10, 20), allKnown)), nil, nil)
	if got := h.fetch("g", 2); !slices.Equal(got, []int64{-1, -1}) {
		t.Fatalf("staged offsets visible: %v", got)
	}
	if !h.m.HasPendingTxnOffsets("g", "t", 0) || h.m.HasPendingTxnOffsets("g", "t", 2) {
		t.Fatal("pending txn offsets not reported")
	}
	// RequireStable: partitions with staged offsets are unstable.
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group = "g"
	req.RequireStable = true
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 2}}}
	resp := h.m.FetchOffsets(req)
	wantCodes(t, "require stable", []int16{resp.Topics[0].Partitions[0].ErrorCode, resp.Topics[0].Partitions[1].ErrorCode},
		kerr.UnstableOffsetCommit, nil)
	req.RequireStable = false
	resp = h.m.FetchOffsets(req)
	wantCode(t, "not requiring stable", resp.Topics[0].Partitions[0].ErrorCode, nil)

	// A plain commit made after staging wins over the transaction's.
	h.m.CommitOffsets(commitReq("g", "", -1, 11), allKnown)
	if err := h.m.CompleteTxn("g", 1, true); err != nil {
		t.Fatal(err)
	}
	if got := h.fetch("g", 2); !slices.Equal(got, []int64{11, 20}) {
		t.Fatalf("after commit: %v", got)
	}
	if h.m.HasPendingTxnOffsets("g", "t", 1) {
		t.Fatal("still pending after commit")
	}

	// An aborted transaction's offsets are dropped.
	h.m.CommitTxnOffsets(txnReq("g", 2, 50, 60), allKnown)
	if err := h.m.CompleteTxn("g", 2, false); err != nil {
		t.Fatal(err)
	}
	if got := h.fetch("g", 2); !slices.Equal(got, []int64{11, 20}) {
		t.Fatalf("after abort: %v", got)
	}
	// Completing an unknown producer or group is a no-op.
	if err := h.m.CompleteTxn("g", 99, true); err != nil {
		t.Fatal(err)
	}
	if err := h.m.CompleteTxn("nope", 1, true); err != nil {
		t.Fatal(err)
	}

	// Validation: unknown topics, generations of an active group.
	known := func(topic string, p int32) bool { return p == 0 }
	wantCodes(t, "unknown partition", txnCodes(h.m.CommitTxnOffsets(txnReq("g", 3, 1, 2), known)), nil, kerr.UnknownTopicOrPartition)
	h2 := newHarness(t)
	ids, gen := h2.stable("active", 1)
	stale := txnReq("active", 4, 1)
	stale.Generation, stale.MemberID = gen-1, ids[0]
	wantCodes(t, "stale generation", txnCodes(h2.m.CommitTxnOffsets(stale, allKnown)), kerr.IllegalGeneration)
	anon := txnReq("active", 4, 1) // no member information: allowed (old producers)
	anon.Version = 2
	wantCodes(t, "without member", txnCodes(h2.m.CommitTxnOffsets(anon, allKnown)), nil)
}

func TestExpireOffsets(t *testing.T) {
	const retention = 7 * 24 * time.Hour
	h := newHarness(t)
	// Standalone offsets expire by commit time.
	h.m.CommitOffsets(commitReq("solo", "", -1, 1), allKnown)
	// A consumer group that becomes Empty a day after committing.
	opt := withTimeouts(30*time.Minute, time.Minute)
	ids, gen := h.stable("empty", 1, opt)
	h.m.CommitOffsets(commitReq("empty", ids[0], gen, 7), allKnown)
	// An old client's commit with an explicit retention of one hour.
	v2 := commitReq("short", "", -1, 8)
	v2.Version = 2
	v2.RetentionTimeMillis = time.Hour.Milliseconds()
	h.m.CommitOffsets(v2, allKnown)

	// The member heartbeats for a day, then leaves.
	for range 3 * 24 {
		h.clk.Advance(20 * time.Minute)
		wantCode(t, "heartbeat", h.heartbeat("empty", ids[0], gen), nil)
		if h.clk.Now().Sub(testStart) == time.Hour {
			h.m.ExpireOffsets()
			if got := h.m.Committed("short"); got != nil {
				t.Fatalf("offset with explicit retention not expired: %v", got)
			}
			if h.m.Committed("empty") == nil || h.m.Committed("solo") == nil {
				t.Fatal("offsets expired early")
			}
		}
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "empty", ids[0]
	h.m.Leave(leave)
	wantState(t, h, "empty", "Empty")

	// Just before the retention runs out for the commits of day 0.
	h.clk.Advance(retention - 24*time.Hour - time.Second)
	h.m.ExpireOffsets()
	if h.m.Committed("solo") == nil {
		t.Fatal("standalone offset expired early")
	}
	h.clk.Advance(time.Second)
	h.m.ExpireOffsets()
	if got := h.m.Committed("solo"); got != nil {
		t.Fatalf("standalone offset not expired: %v", got)
	}
	wantState(t, h, "solo", "Dead")
	// The Empty group's retention counts from when it became Empty.
	if got := h.m.Committed("empty"); got["t"][0] != 7 {
		t.Fatalf("empty group's offsets expired before retention after becoming empty: %v", got)
	}
	h.clk.Advance(24*time.Hour - time.Second)
	h.m.ExpireOffsets()
	if h.m.Committed("empty") == nil {
		t.Fatal("empty group's offsets expired early")
	}
	h.clk.Advance(time.Second)
	h.m.ExpireOffsets()
	if got := h.m.Committed("empty"); got != nil {
		t.Fatalf("empty group's offsets not expired: %v", got)
	}
	wantState(t, h, "empty", "Dead")
	if v, ok := h.store.lastGroup(t, "empty"); !ok || v != nil {
		t.Fatal("expired group not tombstoned")
	}
	// Nothing comes back after a restart.
	m2 := h.restart()
	for _, g := range []string{"solo", "empty", "short"} {
		if m2.Committed(g) != nil {
			t.Fatalf("%s came back", g)
		}
	}
}

func TestExpireOffsetsOfUnsubscribedTopics(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.OffsetsRetention = time.Minute })
	opt := withTimeouts(30*time.Minute, time.Minute)
	ids, gen := h.stable("g", 1, opt)
	c := commitReq("g", ids[0], gen, 5)
	c.Topics = append(c.Topics, kmsg.OffsetCommitRequestTopic{Topic: "u", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 6, LeaderEpoch: -1}}})
	h.m.CommitOffsets(c, allKnown)
	h.clk.Advance(time.Minute)
	h.m.ExpireOffsets()
	got := h.m.Committed("g")
	if !maps.Equal(got["t"], map[int32]int64{0: 5}) || got["u"] != nil {
		t.Fatalf("committed %v: want t kept (subscribed), u expired", got)
	}
	wantState(t, h, "g", "Stable")
}

func TestDropTopic(t *testing.T) {
	h := newHarness(t)
	c := commitReq("a", "", -1, 1, 2)
	c.Topics = append(c.Topics, kmsg.OffsetCommitRequestTopic{Topic: "u", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 3, LeaderEpoch: -1}}})
	h.m.CommitOffsets(c, allKnown)
	h.m.CommitOffsets(commitReq("b", "", -1, 4), allKnown)
	h.m.CommitTxnOffsets(txnReq("c", 1, 5), allKnown)
	h.m.DropTopic("t")
	if got := h.m.Committed("a"); len(got) != 1 || got["u"][0] != 3 {
		t.Fatalf("a after drop: %v", got)
	}
	// b had only offsets of t: the Empty group goes away.
	wantState(t, h, "b", "Dead")
	if h.m.HasPendingTxnOffsets("c", "t", 0) {
		t.Fatal("staged offset of dropped topic kept")
	}
	// The deletion is durable.
	m2 := h.restart()
	if got := m2.Committed("a"); len(got) != 1 || got["t"] != nil {
		t.Fatalf("after restart: %v", got)
	}
	if m2.Committed("b") != nil {
		t.Fatal("b came back after restart")
	}
}

func TestDeleteOffsets(t *testing.T) {
	h := newHarness(t)
	del := func(group string, topics ...string) *kmsg.OffsetDeleteResponse {
		req := kmsg.NewPtrOffsetDeleteRequest()
		req.Group = group
		for _, topic := range topics {
			req.Topics = append(req.Topics, kmsg.OffsetDeleteRequestTopic{Topic: topic, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}})
		}
		return h.m.DeleteOffsets(req)
	}
	wantCode(t, "empty group id", del("", "t").ErrorCode, kerr.InvalidGroupID)
	wantCode(t, "unknown group", del("nope", "t").ErrorCode, kerr.GroupIDNotFound)

	// An active consumer group subscribed to t but holding offsets of u.
	ids, gen := h.stable("g", 1)
	c := commitReq("g", ids[0], gen, 5)
	c.Topics = append(c.Topics, kmsg.OffsetCommitRequestTopic{Topic: "u", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 6, LeaderEpoch: -1}}})
	h.m.CommitOffsets(c, allKnown)
	resp := del("g", "t", "u")
	wantCode(t, "top-level", resp.ErrorCode, nil)
	wantCodes(t, "partitions", []int16{resp.Topics[0].Partitions[0].ErrorCode, resp.Topics[1].Partitions[0].ErrorCode},
		kerr.GroupSubscribedToTopic, nil)
	if got := h.m.Committed("g"); got["u"] != nil || got["t"][0] != 5 {
		t.Fatalf("after delete: %v", got)
	}

	// A non-consumer active group refuses.
	h2 := newHarness(t)
	h2.stable("c", 1, withProtocols("connect", "default"))
	req := kmsg.NewPtrOffsetDeleteRequest()
	req.Group = "c"
	wantCode(t, "connect group", h2.m.DeleteOffsets(req).ErrorCode, kerr.NonEmptyGroup)

	// An Empty group's last offset deleted: the group goes.
	h.m.CommitOffsets(commitReq("solo", "", -1, 1), allKnown)
	wantCode(t, "solo", del("solo", "t").ErrorCode, nil)
	wantState(t, h, "solo", "Dead")
}

func TestCommitOffsetVersions(t *testing.T) {
	h := newHarness(t)
	// v1: a commit time of the client's choosing.
	v1 := commitReq("g", "", -1, 1)
	v1.Version = 1
	v1.Topics[0].Partitions[0].Timestamp = 1234
	v1.Topics[0].Partitions[0].LeaderEpoch = 9 // not in v1: ignored
	h.m.CommitOffsets(v1, allKnown)
	op := h.store.ops[len(h.store.ops)-1]
	want := OffsetRecord{Topic: "t", Partition: 0, Offset: 1, LeaderEpoch: -1, Metadata: "md", CommitTime: 1234, ExpireTime: -1}
	if op.offsets[0] != want {
		t.Fatalf("v1 record %+v, want %+v", op.offsets[0], want)
	}
	// v6+: the leader epoch is kept; a nil metadata is stored as "".
	v6 := commitReq("g", "", -1, 2)
	v6.Version = 6
	v6.Topics[0].Partitions[0].LeaderEpoch = 9
	v6.Topics[0].Partitions[0].Metadata = nil
	h.m.CommitOffsets(v6, allKnown)
	op = h.store.ops[len(h.store.ops)-1]
	want = OffsetRecord{Topic: "t", Partition: 0, Offset: 2, LeaderEpoch: 9, CommitTime: testStart.UnixMilli(), ExpireTime: -1}
	if op.offsets[0] != want {
		t.Fatalf("v6 record %+v, want %+v", op.offsets[0], want)
	}
}

// Staged transactional offsets are persisted when staged, and a replay of
// them plus the transaction's marker gives the same committed offsets.
func TestTxnOffsetsReplay(t *testing.T) {
	h := newHarness(t)
	wantCodes(t, "stage", txnCodes(h.m.CommitTxnOffsets(txnReq("g", 7, 10, 20), allKnown)), nil, nil)
	h.store.mu.Lock()
	ops := append([]txnOp(nil), h.store.txnOps...)
	h.store.mu.Unlock()
	if len(ops) != 1 || ops[0].producerID != 7 || len(ops[0].offsets) != 2 {
		t.Fatalf("persisted %+v", ops)
	}
	for _, commit := range []bool{true, false} {
		m := NewManager(h.m.cfg, &memStore{}, h.clk, nil)
		for _, op := range ops {
			for _, r := range op.offsets {
				m.LoadTxnOffset(op.group, op.producerID, r)
			}
		}
		if !m.HasPendingTxnOffsets("g", "t", 0) {
			t.Fatal("replayed offsets not staged")
		}
		m.LoadTxnEnd(7, commit)
		got := m.Committed("g")
		if commit && (got["t"][0] != 10 || got["t"][1] != 20) {
			t.Fatalf("after commit marker: %v", got)
		}
		if !commit && len(got) != 0 {
			t.Fatalf("after abort marker: %v", got)
		}
		if m.HasPendingTxnOffsets("g", "t", 0) {
			t.Fatal("still pending after the marker")
		}
		m.Close()
	}
	// A failed write stages nothing.
	h.store.mu.Lock()
	h.store.failOffsets = errDisk
	h.store.mu.Unlock()
	codes := txnCodes(h.m.CommitTxnOffsets(txnReq("g2", 8, 5), allKnown))
	if codes[0] != kerr.CoordinatorNotAvailable.Code || h.m.HasPendingTxnOffsets("g2", "t", 0) {
		t.Fatalf("failed persist: codes %v", codes)
	}
}

func TestPendingTxnGroups(t *testing.T) {
	h := newHarness(t)
	h.m.CommitTxnOffsets(txnReq("b", 3, 1), allKnown)
	h.m.CommitTxnOffsets(txnReq("a", 3, 1), allKnown)
	h.m.CommitTxnOffsets(txnReq("c", 4, 1), allKnown)
	if got := h.m.PendingTxnGroups(3); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("pending groups of producer 3: %v", got)
	}
	if err := h.m.CompleteTxn("a", 3, false); err != nil {
		t.Fatal(err)
	}
	if got := h.m.PendingTxnGroups(3); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after settling a: %v", got)
	}
	if got := h.m.PendingTxnGroups(9); len(got) != 0 {
		t.Fatalf("unknown producer: %v", got)
	}
}
