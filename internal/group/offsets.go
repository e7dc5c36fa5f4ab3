package group

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// commitSlot is one partition of a commit request and where its answer
// goes.
type commitSlot struct {
	tp          topicPartition
	offset      int64
	leaderEpoch int32
	metadata    *string
	timestamp   int64 // OffsetCommit v1's commit time; -1 for now
	code        *int16
}

// CommitOffsets handles OffsetCommit v0-v9. known reports whether a
// topic-partition exists; others get UNKNOWN_TOPIC_OR_PARTITION (nil: all
// exist). As in Kafka, an empty group id is valid here, and committing
// offset -1 deletes the partition's offset (it is the log's tombstone).
func (m *Manager) CommitOffsets(req *kmsg.OffsetCommitRequest, known func(topic string, partition int32) bool) *kmsg.OffsetCommitResponse {
	if known == nil {
		known = func(string, int32) bool { return true }
	}
	resp := kmsg.NewPtrOffsetCommitResponse()
	resp.Version = req.Version
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	var slots []commitSlot
	for i, t := range req.Topics {
		for j, p := range t.Partitions {
			code := &resp.Topics[i].Partitions[j].ErrorCode
			if !known(t.Topic, p.Partition) {
				*code = kerr.UnknownTopicOrPartition.Code
				continue
			}
			s := commitSlot{
				tp:          topicPartition{t.Topic, p.Partition},
				offset:      p.Offset,
				leaderEpoch: -1,
				metadata:    p.Metadata,
				timestamp:   -1,
				code:        code,
			}
			if req.Version >= 6 {
				s.leaderEpoch = p.LeaderEpoch
			}
			if req.Version == 1 {
				s.timestamp = p.Timestamp
			}
			slots = append(slots, s)
		}
	}
	if len(slots) == 0 {
		return resp
	}
	setAll := func(code int16) {
		for _, s := range slots {
			*s.code = code
		}
	}

	generation, memberID, instanceID := int32(-1), "", (*string)(nil)
	if req.Version >= 1 {
		generation, memberID = req.Generation, req.MemberID
	}
	if req.Version >= 7 {
		instanceID = req.InstanceID
	}
	retention := int64(-1)
	if req.Version >= 2 && req.Version <= 4 {
		retention = req.RetentionTimeMillis
	}

	// A commit outside group management (generation < 0) may create the
	// group; a member's commit for a group that is gone is stale.
	g, created, err := m.acquire(req.Group, generation < 0)
	if err != nil {
		setAll(kerr.NotCoordinator.Code)
		return resp
	}
	if g == nil {
		setAll(kerr.IllegalGeneration.Code)
		return resp
	}
	defer g.mu.Unlock()
	defer func() {
		if created && g.vacant() {
			m.removeLocked(g)
		}
	}()

	if e := g.validateCommit(generation, memberID, instanceID, false); e != nil {
		setAll(e.Code)
		return resp
	}
	switch g.state {
	case stateCompletingRebalance:
		// The member knows the new generation from its JoinGroup response
		// but has no assignment yet: have it finish the rebalance first.
		setAll(kerr.RebalanceInProgress.Code)
		return resp
	case stateStable, statePreparingRebalance:
		// Commits during PreparingRebalance are allowed: the member learns
		// of the rebalance from its next heartbeat.
		if mem := g.members[memberID]; mem != nil {
			g.scheduleHeartbeat(mem)
		}
	}

	now := m.nowMs()
	var records []OffsetRecord
	var stored []commitSlot
	for _, s := range slots {
		md := ""
		if s.metadata != nil {
			md = *s.metadata
		}
		if len(md) > maxMetadataSize {
			*s.code = kerr.OffsetMetadataTooLarge.Code
			continue
		}
		commitTime := now
		if s.timestamp != -1 {
			commitTime = s.timestamp
		}
		expireTime := int64(-1)
		if retention != -1 {
			expireTime = now + retention
		}
		records = append(records, OffsetRecord{
			Topic: s.tp.topic, Partition: s.tp.partition, Offset: s.offset, LeaderEpoch: s.leaderEpoch,
			Metadata: md, CommitTime: commitTime, ExpireTime: expireTime,
		})
		stored = append(stored, s)
	}
	if len(records) == 0 {
		return resp
	}
	if err := m.store.SaveOffsets(g.name, records); err != nil {
		m.log.Warn("failed to persist offset commit", "group", g.name, "err", err)
		code := storeErrorCode(err, true)
		for _, s := range stored {
			*s.code = code
		}
		return resp
	}
	for _, r := range records {
		g.applyOffset(r)
	}
	return resp
}

// applyOffset installs a durable record, as replay would.
func (g *group) applyOffset(r OffsetRecord) {
	tp := topicPartition{r.Topic, r.Partition}
	if r.Offset == -1 {
		delete(g.offsets, tp)
		return
	}
	g.commitSeq++
	g.offsets[tp] = committedOffset{
		offset: r.Offset, leaderEpoch: r.LeaderEpoch, metadata: r.Metadata,
		commitTime: r.CommitTime, expireTime: r.ExpireTime, seq: g.commitSeq,
	}
}

// validateCommit checks who may commit: anyone to an Empty group without a
// generation (simple consumers, admin tools), otherwise only a current
// member with the current generation. Transactional commits without member
// information (TxnOffsetCommit before v3) are allowed in any state.
func (g *group) validateCommit(generation int32, memberID string, instanceID *string, transactional bool) *kerr.Error {
	if generation < 0 && g.state == stateEmpty {
		return nil
	}
	if generation >= 0 || memberID != "" || instanceID != nil {
		if e := g.validateMember(memberID, instanceID); e != nil {
			return e
		}
		if generation != g.generation {
			return kerr.IllegalGeneration
		}
		return nil
	}
	if !transactional && g.state != stateEmpty {
		return kerr.UnknownMemberID
	}
	return nil
}

// fetchTopic is one topic of an OffsetFetch.
type fetchTopic struct {
	topic      string
	partitions []int32
}

type fetchedPartition struct {
	partition   int32
	offset      int64
	leaderEpoch int32
	metadata    string
	err         int16
}

type fetchedTopic struct {
	topic      string
	partitions []fetchedPartition
}

// FetchOffsets handles OffsetFetch v0-v9 (v8+ asks for several groups). A
// partition without a commit, in a group or not, is offset -1 with no error.
// A nil topic list (v2+) asks for every committed partition.
func (m *Manager) FetchOffsets(req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := kmsg.NewPtrOffsetFetchResponse()
	resp.Version = req.Version
	requireStable := req.Version >= 7 && req.RequireStable
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			var topics []fetchTopic
			if rg.Topics != nil {
				topics = make([]fetchTopic, 0, len(rg.Topics))
				for _, t := range rg.Topics {
					topics = append(topics, fetchTopic{t.Topic, t.Partitions})
				}
			}
			fetched, code := m.fetchGroup(rg.Group, topics, requireStable)
			sg := kmsg.NewOffsetFetchResponseGroup()
			sg.Group = rg.Group
			sg.ErrorCode = code
			for _, ft := range fetched {
				st := kmsg.NewOffsetFetchResponseGroupTopic()
				st.Topic = ft.topic
				for _, fp := range ft.partitions {
					sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					sp.Partition = fp.partition
					sp.Offset = fp.offset
					sp.LeaderEpoch = fp.leaderEpoch
					sp.Metadata = kmsg.StringPtr(fp.metadata)
					sp.ErrorCode = fp.err
					st.Partitions = append(st.Partitions, sp)
				}
				sg.Topics = append(sg.Topics, st)
			}
			resp.Groups = append(resp.Groups, sg)
		}
		return resp
	}

	var topics []fetchTopic
	if req.Topics != nil || req.Version < 2 {
		topics = make([]fetchTopic, 0, len(req.Topics))
		for _, t := range req.Topics {
			topics = append(topics, fetchTopic{t.Topic, t.Partitions})
		}
	}
	fetched, code := m.fetchGroup(req.Group, topics, requireStable)
	if code != 0 && req.Version < 2 {
		// No top-level error before v2: each partition carries it.
		fetched = fetched[:0]
		for _, t := range topics {
			ft := fetchedTopic{topic: t.topic}
			for _, p := range t.partitions {
				ft.partitions = append(ft.partitions, fetchedPartition{partition: p, offset: -1, leaderEpoch: -1, err: code})
			}
			fetched = append(fetched, ft)
		}
	}
	if req.Version >= 2 {
		resp.ErrorCode = code
	}
	for _, ft := range fetched {
		st := kmsg.NewOffsetFetchResponseTopic()
		st.Topic = ft.topic
		for _, fp := range ft.partitions {
			sp := kmsg.NewOffsetFetchResponseTopicPartition()
			sp.Partition = fp.partition
			sp.Offset = fp.offset
			sp.LeaderEpoch = fp.leaderEpoch
			sp.Metadata = kmsg.StringPtr(fp.metadata)
			sp.ErrorCode = fp.err
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// fetchGroup answers one group of an OffsetFetch; topics nil means all.
func (m *Manager) fetchGroup(name string, topics []fetchTopic, requireStable bool) ([]fetchedTopic, int16) {
	g, _, err := m.acquire(name, false)
	if err != nil {
		return nil, kerr.NotCoordinator.Code
	}
	if g == nil {
		out := make([]fetchedTopic, 0, len(topics))
		for _, t := range topics {
			ft := fetchedTopic{topic: t.topic}
			for _, p := range t.partitions {
				ft.partitions = append(ft.partitions, fetchedPartition{partition: p, offset: -1, leaderEpoch: -1})
			}
			out = append(out, ft)
		}
		return out, 0
	}
	defer g.mu.Unlock()
	if topics == nil {
		byTopic := make(map[string][]int32)
		for tp := range g.offsets {
			byTopic[tp.topic] = append(byTopic[tp.topic], tp.partition)
		}
		for topic, parts := range byTopic {
			slices.Sort(parts)
			topics = append(topics, fetchTopic{topic, parts})
		}
		slices.SortFunc(topics, func(a, b fetchTopic) int { return cmp.Compare(a.topic, b.topic) })
	}
	out := make([]fetchedTopic, 0, len(topics))
	for _, t := range topics {
		ft := fetchedTopic{topic: t.topic}
		for _, p := range t.partitions {
			tp := topicPartition{t.topic, p}
			fp := fetchedPartition{partition: p, offset: -1, leaderEpoch: -1}
			if requireStable && g.hasPendingTxn(tp) {
				fp.err = kerr.UnstableOffsetCommit.Code
			} else if o, ok := g.offsets[tp]; ok {
				fp.offset, fp.leaderEpoch, fp.metadata = o.offset, o.leaderEpoch, o.metadata
			}
			ft.partitions = append(ft.partitions, fp)
		}
		out = append(out, ft)
	}
	return out, 0
}

// DeleteOffsets handles OffsetDelete v0. An Empty group's offsets can all be
// deleted; an active consumer group's only for topics it does not
// subscribe to (GROUP_SUBSCRIBED_TO_TOPIC); other active groups' not at all
// (NON_EMPTY_GROUP). Partitions of unknown topics are the caller's to
// answer.
func (m *Manager) DeleteOffsets(req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := kmsg.NewPtrOffsetDeleteResponse()
	resp.Version = req.Version
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	g, _, err := m.acquire(req.Group, false)
	if err != nil {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	if g == nil {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	}
	defer g.mu.Unlock()
	if g.state != stateEmpty && g.protocolType != consumerProtocolType {
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return resp
	}
	var eligible []topicPartition
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			if g.state != stateEmpty && g.isSubscribed(t.Topic) {
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			} else {
				eligible = append(eligible, topicPartition{t.Topic, p.Partition})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if err := g.removeOffsets(eligible); err != nil {
		resp.ErrorCode = storeErrorCode(err, false)
		resp.Topics = nil
		return resp
	}
	g.dropIfDone()
	return resp
}

// removeOffsets deletes committed offsets durably (and staged transactional
// ones of the same partitions). On error nothing changes.
func (g *group) removeOffsets(tps []topicPartition) error {
	var tombstones []OffsetRecord
	for _, tp := range tps {
		if _, ok := g.offsets[tp]; ok {
			tombstones = append(tombstones, OffsetRecord{Topic: tp.topic, Partition: tp.partition, Offset: -1, LeaderEpoch: -1, ExpireTime: -1})
		}
	}
	if len(tombstones) > 0 {
		if err := g.m.store.SaveOffsets(g.name, tombstones); err != nil {
			return fmt.Errorf("delete %d offsets of group %q: %w", len(tombstones), g.name, err)
		}
	}
	for _, tp := range tps {
		delete(g.offsets, tp)
		for pid, staged := range g.txn {
			delete(staged, tp)
			if len(staged) == 0 {
				delete(g.txn, pid)
			}
		}
	}
	return nil
}

// dropIfDone removes an Empty group that has no offsets left, as Kafka does
// after deleting or expiring offsets.
func (g *group) dropIfDone() {
	if g.state != stateEmpty || len(g.offsets) > 0 || len(g.txn) > 0 {
		return
	}
	if err := g.delete(); err != nil {
		g.m.log.Warn("failed to delete group", "group", g.name, "err", err)
	}
}

// delete removes the group and its offsets durably. On error the group
// stays; offsets already tombstoned are gone from memory too.
func (g *group) delete() error {
	var all []topicPartition
	for tp := range g.offsets {
		all = append(all, tp)
	}
	if err := g.removeOffsets(all); err != nil {
		return err
	}
	// A group that never had a generation was never written.
	if g.generation > 0 {
		if err := g.m.store.SaveGroup(g.name, nil); err != nil {
			return fmt.Errorf("delete group %q: %w", g.name, err)
		}
	}
	g.txn = make(map[int64]map[topicPartition]committedOffset)
	g.m.log.Info("group deleted", "group", g.name)
	g.m.removeLocked(g)
	return nil
}

// CommitTxnOffsets handles TxnOffsetCommit v0-v4: the offsets are
// persisted as the producer's transactional records and staged until
// CompleteTxn commits or aborts its transaction. known is as for
// CommitOffsets.
func (m *Manager) CommitTxnOffsets(req *kmsg.TxnOffsetCommitRequest, known func(string, int32) bool) *kmsg.TxnOffsetCommitResponse {
	if known == nil {
		known = func(string, int32) bool { return true }
	}
	resp := kmsg.NewPtrTxnOffsetCommitResponse()
	resp.Version = req.Version
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	var slots []commitSlot
	for i, t := range req.Topics {
		for j, p := range t.Partitions {
			code := &resp.Topics[i].Partitions[j].ErrorCode
			if !known(t.Topic, p.Partition) {
				*code = kerr.UnknownTopicOrPartition.Code
				continue
			}
			if req.Group == "" {
				*code = kerr.InvalidGroupID.Code
				continue
			}
			s := commitSlot{tp: topicPartition{t.Topic, p.Partition}, offset: p.Offset, leaderEpoch: -1, metadata: p.Metadata, code: code}
			if req.Version >= 2 {
				s.leaderEpoch = p.LeaderEpoch
			}
			slots = append(slots, s)
		}
	}
	if len(slots) == 0 {
		return resp
	}
	setAll := func(code int16) {
		for _, s := range slots {
			*s.code = code
		}
	}
	generation, memberID, instanceID := int32(-1), "", (*string)(nil)
	if req.Version >= 3 {
		generation, memberID, instanceID = req.Generation, req.MemberID, req.InstanceID
	}
	g, created, err := m.acquire(req.Group, true)
	if err != nil {
		setAll(kerr.NotCoordinator.Code)
		return resp
	}
	defer g.mu.Unlock()
	if e := g.validateCommit(generation, memberID, instanceID, true); e != nil {
		setAll(e.Code)
		if created && g.vacant() {
			m.removeLocked(g)
		}
		return resp
	}
	now := m.nowMs()
	var accepted []commitSlot
	var records []OffsetRecord
	for _, s := range slots {
		md := ""
		if s.metadata != nil {
			md = *s.metadata
		}
		if len(md) > maxMetadataSize {
			*s.code = kerr.OffsetMetadataTooLarge.Code
			continue
		}
		accepted = append(accepted, s)
		records = append(records, OffsetRecord{Topic: s.tp.topic, Partition: s.tp.partition, Offset: s.offset,
			LeaderEpoch: s.leaderEpoch, Metadata: md, CommitTime: now, ExpireTime: -1})
	}
	if len(records) > 0 {
		if err := m.store.SaveTxnOffsets(g.name, req.ProducerID, req.ProducerEpoch, records); err != nil {
			m.log.Warn("persist transactional offsets", "group", g.name, "producer_id", req.ProducerID, "err", err)
			for _, s := range accepted {
				*s.code = kerr.CoordinatorNotAvailable.Code
			}
			records = nil
		}
	}
	for _, r := range records {
		g.stageTxnOffset(req.ProducerID, r)
	}
	if created && g.vacant() {
		m.removeLocked(g)
	}
	return resp
}

// stageTxnOffset holds an offset of producerID's open transaction.
func (g *group) stageTxnOffset(producerID int64, r OffsetRecord) {
	staged := g.txn[producerID]
	if staged == nil {
		staged = make(map[topicPartition]committedOffset)
		g.txn[producerID] = staged
	}
	g.commitSeq++
	staged[topicPartition{r.Topic, r.Partition}] = committedOffset{
		offset: r.Offset, leaderEpoch: r.LeaderEpoch, metadata: r.Metadata,
		commitTime: r.CommitTime, expireTime: r.ExpireTime, seq: g.commitSeq,
	}
}

// CompleteTxn ends a producer's transaction for a group: on commit its
// staged offsets are persisted as plain commits and become committed
// (unless a plain commit made after them replaced them meanwhile); on abort
// they are dropped. On error nothing changes and the caller retries.
func (m *Manager) CompleteTxn(group string, producerID int64, commit bool) error {
	g, _, err := m.acquire(group, false)
	if err != nil {
		return err
	}
	if g == nil {
		return nil
	}
	defer g.mu.Unlock()
	staged, ok := g.txn[producerID]
	if !ok {
		return nil
	}
	if !commit {
		delete(g.txn, producerID)
		if g.vacant() {
			m.removeLocked(g)
		}
		return nil
	}
	var records []OffsetRecord
	for tp, o := range staged {
		if cur, ok := g.offsets[tp]; ok && cur.seq > o.seq {
			continue
		}
		records = append(records, o.record(tp))
	}
	slices.SortFunc(records, func(a, b OffsetRecord) int {
		return compareTP(topicPartition{a.Topic, a.Partition}, topicPartition{b.Topic, b.Partition})
	})
	if len(records) > 0 {
		if err := m.store.SaveOffsets(g.name, records); err != nil {
			return fmt.Errorf("commit transactional offsets of producer %d in group %q: %w", producerID, group, err)
		}
	}
	for _, r := range records {
		g.applyOffset(r)
	}
	delete(g.txn, producerID)
	return nil
}

func compareTP(a, b topicPartition) int {
	if c := cmp.Compare(a.topic, b.topic); c != 0 {
		return c
	}
	return cmp.Compare(a.partition, b.partition)
}

// PendingTxnGroups lists the groups holding offsets staged by producerID's
// open transaction. The transaction coordinator settles them all when the
// transaction ends, including groups it only learned of before a restart
// (its own record of a transaction keeps partitions, not groups).
func (m *Manager) PendingTxnGroups(producerID int64) []string {
	var out []string
	for _, g := range m.snapshot() {
		g.mu.Lock()
		if _, ok := g.txn[producerID]; ok && !g.removed {
			out = append(out, g.name)
		}
		g.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

// HasPendingTxnOffsets reports whether a transaction has staged an offset
// for the partition (OffsetFetch with RequireStable answers
// UNSTABLE_OFFSET_COMMIT for it).
func (m *Manager) HasPendingTxnOffsets(group string, topic string, partition int32) bool {
	g, _, err := m.acquire(group, false)
	if err != nil || g == nil {
		return false
	}
	defer g.mu.Unlock()
	return g.hasPendingTxn(topicPartition{topic, partition})
}

func (g *group) hasPendingTxn(tp topicPartition) bool {
	for _, staged := range g.txn {
		if _, ok := staged[tp]; ok {
			return true
		}
	}
	return false
}

// ExpireOffsets deletes offsets past retention, by Kafka 2.1's rules
// (KIP-211): an Empty group's offsets expire OffsetsRetention after the
// group became Empty; offsets committed outside group management expire
// OffsetsRetention after their commit; an active consumer group's offsets
// of topics it no longer subscribes to expire OffsetsRetention after their
// commit; an explicit expiry time (OffsetCommit v2-v4) wins where it is
// set. Empty groups left without offsets are deleted. Failed writes are
// logged and retried on the next call.
func (m *Manager) ExpireOffsets() {
	now := m.nowMs()
	for _, g := range m.snapshot() {
		g.mu.Lock()
		if !g.removed {
			g.expireOffsets(now)
		}
		g.mu.Unlock()
	}
}

func (g *group) expireOffsets(now int64) {
	retention := g.m.cfg.OffsetsRetention.Milliseconds()
	var base func(o committedOffset) int64
	var subscribed map[string]struct{}
	switch {
	case g.protocolType != "" && g.state == stateEmpty:
		base = func(o committedOffset) int64 {
			if g.stateTime >= 0 {
				return g.stateTime
			}
			return o.commitTime
		}
	case g.protocolType == consumerProtocolType && g.subscribed != nil:
		base = func(o committedOffset) int64 { return o.commitTime }
		subscribed = g.subscribed
	case g.protocolType == "":
		base = func(o committedOffset) int64 { return o.commitTime }
	default:
		return
	}
	var expired []topicPartition
	for tp, o := range g.offsets {
		if _, ok := subscribed[tp.topic]; ok {
			continue
		}
		if o.expireTime != -1 {
			if now >= o.expireTime {
				expired = append(expired, tp)
			}
		} else if now-base(o) >= retention {
			expired = append(expired, tp)
		}
	}
	slices.SortFunc(expired, compareTP)
	if len(expired) > 0 {
		if err := g.removeOffsets(expired); err != nil {
			g.m.log.Warn("failed to expire offsets", "group", g.name, "err", err)
			return
		}
		g.m.log.Info("expired offsets", "group", g.name, "count", len(expired))
	}
	g.dropIfDone()
}

// DropTopic forgets the offsets of a deleted topic in every group, durably.
// A failed write is logged and leaves that group's offsets in place.
func (m *Manager) DropTopic(topic string) {
	for _, g := range m.snapshot() {
		g.mu.Lock()
		if !g.removed {
			set := make(map[topicPartition]struct{})
			for tp := range g.offsets {
				if tp.topic == topic {
					set[tp] = struct{}{}
				}
			}
			for _, staged := range g.txn {
				for tp := range staged {
					if tp.topic == topic {
						set[tp] = struct{}{}
					}
				}
			}
			if len(set) > 0 {
				tps := make([]topicPartition, 0, len(set))
				for tp := range set {
					tps = append(tps, tp)
				}
				slices.SortFunc(tps, compareTP)
				if err := g.removeOffsets(tps); err != nil {
					m.log.Warn("failed to delete offsets of deleted topic", "group", g.name, "topic", topic, "err", err)
				} else {
					g.dropIfDone()
				}
			}
		}
		g.mu.Unlock()
	}
}

// Committed returns a group's committed offsets by topic and partition, or
// nil for an unknown group.
func (m *Manager) Committed(group string) map[string]map[int32]int64 {
	g, _, err := m.acquire(group, false)
	if err != nil || g == nil {
		return nil
	}
	defer g.mu.Unlock()
	out := make(map[string]map[int32]int64)
	for tp, o := range g.offsets {
		if out[tp.topic] == nil {
			out[tp.topic] = make(map[int32]int64)
		}
		out[tp.topic][tp.partition] = o.offset
	}
	return out
}
