package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/weir-dev/weir/internal/cluster"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/replication"
	"github.com/weir-dev/weir/internal/storage"
)

// In cluster mode (Config.Cluster set) the controller's metadata is the
// source of truth for topics: every node knows every topic and partition,
// and hosts the Raft group of each partition it is a replica of. Only a
// partition's leader, once its term's first entry is committed, serves
// produce and fetch; the others answer NOT_LEADER_OR_FOLLOWER and clients
// find the leader through Metadata.

// ErrNotLeader is returned for a partition this node does not lead.
var ErrNotLeader = errors.New("not the leader of this partition")

// ErrTimedOut is returned when the controller did not apply a change in
// time; it may still apply it.
var ErrTimedOut = errors.New("request timed out")

// adminTimeout bounds a metadata change through the controller.
const adminTimeout = 30 * time.Second

func (b *Broker) clustered() bool { return b.cfg.Cluster != nil }

// Cluster is the controller in cluster mode, nil on a single node.
func (b *Broker) Cluster() *cluster.Controller { return b.cfg.Cluster }

// controllerErr maps a controller error onto the broker's.
func controllerErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrTopicExists):
		return fmt.Errorf("%w: %v", ErrTopicExists, err)
	case errors.Is(err, cluster.ErrUnknownTopic):
		return fmt.Errorf("%w: %v", ErrUnknownTopicOrPartition, err)
	case errors.Is(err, cluster.ErrInvalidReplicas):
		return fmt.Errorf("%w: %v", ErrInvalidReplication, err)
	case errors.Is(err, cluster.ErrInvalidPartitions):
		return fmt.Errorf("%w: %v", ErrInvalidPartitions, err)
	case errors.Is(err, cluster.ErrTimeout):
		return fmt.Errorf("%w: %v", ErrTimedOut, err)
	case errors.Is(err, cluster.ErrClosed):
		return ErrBrokerShuttingDown
	}
	return err
}

func adminContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), adminTimeout)
}

// defaultReplicas is the replication factor of a topic created without
// one: the configured default, at most the number of nodes.
func (b *Broker) defaultReplicas() int16 {
	rf := b.cfg.DefaultReplicationFactor
	if b.clustered() {
		rf = max(1, min(rf, int16(len(b.cfg.Cluster.Metadata().Nodes))))
	}
	return rf
}

// DefaultReplicationFactor is the replication factor of a topic created
// without one.
func (b *Broker) DefaultReplicationFactor() int16 { return b.defaultReplicas() }

// reconcileLoop applies every metadata change to the local topics.
func (b *Broker) reconcileLoop() {
	defer b.wg.Done()
	for {
		ch := b.cfg.Cluster.Changed()
		b.adminMu.Lock()
		b.reconcileLocked()
		b.adminMu.Unlock()
		select {
		case <-ch:
		case <-b.stop:
			return
		}
	}
}

// reconcileLocked makes the local topics match the controller's metadata:
// new topics and partitions appear (and their groups are hosted here when
// this node is a replica), deleted ones go with their data, config
// changes apply.
func (b *Broker) reconcileLocked() {
	m := b.cfg.Cluster.Metadata()
	self := b.cfg.NodeID
	for _, name := range m.TopicNames() {
		ti := m.Topics[name]
		t, ok := b.Topic(name)
		if ok && t.ID != ti.ID {
			b.dropTopicLocked(t) // deleted and re-created meanwhile
			ok = false
		}
		if !ok {
			t = b.newTopic(name, ti.ID, maps.Clone(ti.Configs))
			b.mu.Lock()
			b.topics[name] = t
			b.byID[t.ID] = t
			b.mu.Unlock()
			b.logger.Info("topic from the controller", "topic", name, "partitions", len(ti.Partitions))
		} else if !maps.Equal(t.Configs(), ti.Configs) {
			b.applyConfigs(t, maps.Clone(ti.Configs))
		}
		for i := range ti.Partitions {
			info := ti.Partitions[i]
			want := slices.Contains(info.Replicas, self) || slices.Contains(info.Target, self)
			if p, ok := t.Partition(int32(i)); ok {
				p.info.Store(&info)
				if want != (p.log != nil) {
					b.rehostLocked(t, p, &info, want)
				}
				continue
			}
			p, err := b.newClusterPartition(t, int32(i), &info, want)
			if err != nil {
				b.logger.Error("host partition", "partition", fmt.Sprintf("%s-%d", name, i), "err", err)
				break
			}
			t.mu.Lock()
			t.partitions = append(t.partitions, p)
			t.mu.Unlock()
		}
	}
	for _, t := range b.Topics() {
		if _, ok := m.Topics[t.Name]; !ok {
			b.dropTopicLocked(t)
		}
	}
}

// newClusterPartition creates partition index of t; a local replica opens
// its log and hosts the partition's Raft group.
func (b *Broker) newClusterPartition(t *Topic, index int32, info *cluster.Partition, local bool) (*Partition, error) {
	p := b.newPartition(t, index)
	p.info.Store(info)
	if !local {
		return p, nil
	}
	p.replicated = true
	// The high watermark follows the Raft commit, not the log's own
	// write-out and fsync: no hooks.
	if err := p.openLog(nil, nil); err != nil {
		return nil, err
	}
	log := p.log
	// The membership the partition's log starts from (used only when the
	// replica has no Raft state yet). A replica added by a move replays
	// the log's membership changes from there; it leaves itself out, so
	// that it never counts itself a voter before the log says so.
	var voters []uint64
	initial := info.Initial
	if initial == nil {
		initial = info.Replicas
	}
	moved := !slices.Contains(info.Replicas, b.cfg.NodeID)
	for _, r := range initial {
		if !moved || r != b.cfg.NodeID {
			voters = append(voters, uint64(r))
		}
	}
	g, err := b.cfg.Cluster.Engine().AddGroup(replication.GroupConfig{
		ID: info.Group, Log: log, Voters: voters,
		Campaign:     info.Replicas[0] == b.cfg.NodeID && log.LastIndex() == 0,
		StateMachine: &partitionSM{p: p},
	})
	if err != nil {
		log.Close()
		return nil, err
	}
	p.rg = g
	return p, nil
}

// rehostLocked starts or stops hosting a partition whose replica set now
// includes or excludes this node: the Partition is replaced, so readers
// holding the old one see it closed.
func (b *Broker) rehostLocked(t *Topic, old *Partition, info *cluster.Partition, host bool) {
	np, err := b.newClusterPartition(t, old.index, info, host)
	if err != nil {
		b.logger.Error("host partition", "partition", old.name(), "err", err)
		return
	}
	t.mu.Lock()
	t.partitions[old.index] = np
	t.mu.Unlock()
	if host {
		b.logger.Info("hosting a new replica", "partition", old.name())
		return
	}
	// Moved away: the move's membership change is committed (the
	// controller heard so from the leader), so this copy is no longer
	// needed.
	if old.rg != nil {
		old.rg.Remove()
	}
	switch t.Name {
	case OffsetsTopic:
		b.coordinatorStatus(old, replication.Status{}) // unloads its coordinator
	case TransactionTopic:
		b.txnCoordinatorStatus(old, replication.Status{})
	}
	old.markDeleted()
	old.log.Close()
	os.RemoveAll(old.log.Dir())
	old.notify()
	b.logger.Info("replica moved away; data removed", "partition", old.name())
}

// dropTopicLocked forgets a topic the controller deleted and removes its
// local data.
func (b *Broker) dropTopicLocked(t *Topic) {
	b.mu.Lock()
	if b.topics[t.Name] == t {
		delete(b.topics, t.Name)
	}
	delete(b.byID, t.ID)
	b.mu.Unlock()
	for _, p := range t.Partitions() {
		if p.rg != nil {
			p.rg.Remove()
		}
		if p.log != nil {
			p.markDeleted()
			p.log.Close()
			os.RemoveAll(p.log.Dir())
		}
		p.notify()
	}
	for _, m := range b.GroupCoordinators() {
		m.DropTopic(t.Name)
	}
	b.logger.Info("deleted topic", "topic", t.Name)
}

// applyConfigs installs configs on a topic and its local logs.
func (b *Broker) applyConfigs(t *Topic, configs map[string]string) {
	s := configLookup{topic: configs, broker: b.cfg.TopicDefaults}.resolve()
	t.mu.Lock()
	t.configs = configs
	t.settings.Store(&s)
	for _, p := range t.partitions {
		if p.log != nil {
			p.log.SetConfig(s.log)
		}
	}
	t.mu.Unlock()
}

// partitionSM follows a partition's Raft group.
type partitionSM struct {
	replication.NopStateMachine
	p *Partition
}

func (s *partitionSM) Appended(_ uint64, batch []byte) { s.p.applyAppended(batch) }

// Truncated and Restored rebuild the producer state at once: until then
// it describes batches the log no longer has, and this replica keeps
// following new batches (and may snapshot the result or become leader)
// on top of it. Chaos run 3437325820 lost an abort that way: a deposed
// leader had noted its own copy of a transaction's first batch at offset
// 3943, the cut removed it, and the new leader's copy at 3940 did not
// move the transaction's start, so read_committed showed the record.
func (s *partitionSM) Truncated(uint64) { s.p.reloadProducers() }

func (s *partitionSM) Restored(uint64) { s.p.reloadProducers() }

func (s *partitionSM) Committed(uint64, int64) { s.p.notify() }

func (s *partitionSM) StatusChanged(st replication.Status) {
	p := s.p
	old := p.status.Swap(&st)
	if st.IsLeader && st.Ready && (old == nil || !old.Ready || old.Term != st.Term) {
		p.leaderSince.Store(p.b.clock.Now().UnixNano())
	}
	if old == nil || old.IsLeader != st.IsLeader || old.Term != st.Term {
		p.markStale()
	}
	if st.IsLeader && st.Ready && (old == nil || !old.Ready || old.Term != st.Term || !slices.Equal(old.InSync, st.InSync)) {
		isr := make([]int32, len(st.InSync))
		for i, id := range st.InSync {
			isr[i] = int32(id)
		}
		slices.Sort(isr)
		p.b.cfg.Cluster.ReportLeader(cluster.LeaderReport{Topic: p.topic.Name, Partition: p.index, Leader: p.b.cfg.NodeID, Epoch: int32(st.Term), ISR: isr})
	}
	switch p.topic.Name {
	case OffsetsTopic:
		p.b.coordinatorStatus(p, st)
	case TransactionTopic:
		p.b.txnCoordinatorStatus(p, st)
	}
	p.notify()
}

// markStale makes the next leader produce rebuild the producer state from
// the log: entries were cut, or proposals made as leader may never land.
func (p *Partition) markStale() {
	p.mu.Lock()
	p.stale = true
	p.mu.Unlock()
}

// applyAppended follows a batch into the producer state, on every
// replica. The leader recorded its own batches when proposing them; here
// they learn their offsets.
func (p *Partition) applyAppended(batch []byte) {
	h, err := record.ParseHeader(batch)
	if err != nil {
		return
	}
	if !h.Idempotent() {
		p.applied.Store(h.LastOffset() + 1)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.applied.Store(h.LastOffset() + 1)
	if h.Control() {
		if h.Transactional() {
			commit, err := controlCommits(batch, p.b.decomp)
			if err == nil {
				p.endTxnLocked(h.ProducerID, h.ProducerEpoch, commit, h.BaseOffset)
			}
		}
		return
	}
	st := p.producers[h.ProducerID]
	if st != nil && st.epoch == h.ProducerEpoch {
		last := h.LastSequence()
		for i := range st.batches {
			if b := &st.batches[i]; b.firstSeq == h.BaseSequence && b.lastSeq == last {
				b.baseOffset, b.lastOffset, b.prop = h.BaseOffset, h.LastOffset(), nil
				if h.Transactional() && st.txnFirst < 0 {
					p.noteTxnLocked(st, &h)
				}
				p.stateGen++
				return
			}
		}
	}
	if st == nil {
		st = newProducerState(h.ProducerEpoch)
		p.producers[h.ProducerID] = st
	}
	st.record(&h, max(h.MaxTimestamp, p.b.clock.Now().UnixMilli()))
	p.noteTxnLocked(st, &h)
	p.stateGen++
}

// reloadProducers rebuilds the producer state from the log after the log
// lost batches. It holds snapMu so that no snapshot taken before the cut
// is written after the rebuild has discarded it.
func (p *Partition) reloadProducers() {
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.rebuildProducersLocked(); err != nil {
		p.b.logger.Error("rebuild producer state", "partition", p.name(), "err", err)
		p.stale = true
	}
}

// rebuildProducersLocked reloads the producer state from the local log.
func (p *Partition) rebuildProducersLocked() error {
	p.producers = make(map[int64]*producerState)
	p.ongoing = make(map[int64]int64)
	p.aborted = nil
	if err := p.loadProducerState(); err != nil {
		return fmt.Errorf("%w: rebuild producer state of %s: %v", ErrStorage, p.name(), err)
	}
	p.stale = false
	p.stateGen++
	return nil
}

// Serving reports whether this node serves the partition's clients: on a
// single node always; in a cluster only as the leader of a term whose
// first entry is committed.
func (p *Partition) Serving() error {
	if !p.b.clustered() {
		return nil
	}
	if p.rg == nil {
		return fmt.Errorf("%w: %s is not hosted on node %d", ErrNotLeader, p.name(), p.b.cfg.NodeID)
	}
	st := p.rg.Status()
	if st.Failed != nil {
		return fmt.Errorf("%w: %s: %v", ErrStorage, p.name(), st.Failed)
	}
	if !st.IsLeader || !st.Ready {
		return fmt.Errorf("%w: %s is led by node %d", ErrNotLeader, p.name(), st.Leader)
	}
	if !p.rg.LeaseHeld(p.b.clock.Now()) {
		// Possibly deposed without knowing it yet (cut off, or paused):
		// what it has may be stale.
		return fmt.Errorf("%w: %s: no recent word from a majority of its replicas", ErrNotLeader, p.name())
	}
	return nil
}

// Hosted reports whether this node holds a replica of the partition.
func (p *Partition) Hosted() bool { return p.log != nil }

// LeaderInfo is who leads the partition as far as this node knows: its
// own group's view when it is a replica, else the controller's.
func (p *Partition) LeaderInfo() (leader, epoch int32, replicas, isr []int32) {
	if !p.b.clustered() {
		n := p.b.cfg.NodeID
		return n, 0, []int32{n}, []int32{n}
	}
	return leaderInfo(p.info.Load(), p.rg)
}

// leaderInfo is who leads a partition the controller describes as info:
// the controller's word, unless g, this node's replica of the partition
// (nil when it holds none), knows of a leader at least as recent.
func leaderInfo(info *cluster.Partition, g *replication.Group) (leader, epoch int32, replicas, isr []int32) {
	leader, epoch, replicas, isr = info.Leader, info.Epoch, info.Replicas, info.ISR
	if g != nil {
		st := g.Status()
		if st.Leader != 0 && int32(st.Term) >= epoch {
			leader, epoch = int32(st.Leader), int32(st.Term)
			if st.IsLeader && len(st.InSync) > 0 {
				isr = make([]int32, len(st.InSync))
				for i, id := range st.InSync {
					isr[i] = int32(id)
				}
				slices.Sort(isr)
			}
		}
	}
	return leader, epoch, replicas, isr
}

// TopicLayout is a topic as Metadata describes it to clients.
type TopicLayout struct {
	Name       string
	ID         [16]byte
	Internal   bool
	Partitions []PartitionLayout
}

// PartitionLayout is who holds a partition and who leads it.
type PartitionLayout struct {
	Index         int32
	Leader, Epoch int32
	Replicas, ISR []int32
}

// Layout describes a topic or view as this node's own list has it.
func (t *Topic) Layout() TopicLayout {
	l := TopicLayout{Name: t.Name, ID: t.ID, Internal: t.Internal()}
	for _, p := range t.Partitions() {
		pl := PartitionLayout{Index: p.Index()}
		pl.Leader, pl.Epoch, pl.Replicas, pl.ISR = p.LeaderInfo()
		l.Partitions = append(l.Partitions, pl)
	}
	return l
}

// TopicDirectory answers the topic lookups of one Metadata request. In a
// cluster it answers from one read of the controller's applied metadata,
// not from this node's topic list: that list catches up only when the
// reconcile loop gets to it, which can be well after a create or delete
// was acknowledged (it may be busy opening many partitions), and a client
// must see an acknowledged change at once. Views are this node's own in
// both modes.
type TopicDirectory struct {
	b *Broker
	m *cluster.Metadata // nil on a single node
}

// TopicDirectory returns a directory for one request.
func (b *Broker) TopicDirectory() TopicDirectory {
	d := TopicDirectory{b: b}
	if b.clustered() {
		d.m = b.cfg.Cluster.Metadata()
	}
	return d
}

// Topics describes every topic, views aside, sorted by name.
func (d TopicDirectory) Topics() []TopicLayout {
	var out []TopicLayout
	if d.m == nil {
		for _, t := range d.b.Topics() {
			out = append(out, t.Layout())
		}
		return out
	}
	for _, name := range d.m.TopicNames() {
		out = append(out, d.clusterLayout(d.m.Topics[name]))
	}
	return out
}

// Topic describes the topic or view called name.
func (d TopicDirectory) Topic(name string) (TopicLayout, bool) {
	if d.m != nil {
		if ti, ok := d.m.Topics[name]; ok {
			return d.clusterLayout(ti), true
		}
	}
	t, ok := d.b.Topic(name)
	return d.local(t, ok)
}

// TopicByID describes the topic or view with the given id.
func (d TopicDirectory) TopicByID(id [16]byte) (TopicLayout, bool) {
	if d.m != nil {
		for _, ti := range d.m.Topics {
			if ti.ID == id {
				return d.clusterLayout(ti), true
			}
		}
	}
	t, ok := d.b.TopicByID(id)
	return d.local(t, ok)
}

// local describes a topic found in this node's list: in a cluster only a
// view, as the controller's metadata is the word on topics.
func (d TopicDirectory) local(t *Topic, ok bool) (TopicLayout, bool) {
	if !ok || (d.m != nil && !t.IsView()) {
		return TopicLayout{}, false
	}
	return t.Layout(), true
}

// clusterLayout describes a topic of the controller's metadata: its
// partitions and replicas as the controller has them, with the leader and
// ISR that this node's own replica knows where it has one.
func (d TopicDirectory) clusterLayout(ti *cluster.Topic) TopicLayout {
	l := TopicLayout{Name: ti.Name, ID: ti.ID, Internal: internalName(ti.Name)}
	local, ok := d.b.Topic(ti.Name)
	if ok && local.ID != ti.ID {
		ok = false // the local one is an older topic of that name
	}
	for i := range ti.Partitions {
		var g *replication.Group
		if ok {
			if p, found := local.Partition(int32(i)); found {
				g = p.rg
			}
		}
		pl := PartitionLayout{Index: int32(i)}
		pl.Leader, pl.Epoch, pl.Replicas, pl.ISR = leaderInfo(&ti.Partitions[i], g)
		l.Partitions = append(l.Partitions, pl)
	}
	return l
}

// propose is Produce's cluster path: the sequence checks, then the batch
// goes to Raft; its offsets are known once it is in the local log.
func (p *Partition) propose(batch []byte, h *record.Header, appendTime, now int64) (ProduceResult, error) {
	res := ProduceResult{LogAppendTime: -1, BaseOffset: -1}
	if appendTime != 0 {
		record.SetLogAppendTime(batch, appendTime)
		res.LogAppendTime = appendTime
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.Serving(); err != nil {
		return res, err
	}
	if p.stale {
		if err := p.rebuildProducersLocked(); err != nil {
			return res, err
		}
	}
	var st *producerState
	if h.Idempotent() {
		st = p.producers[h.ProducerID]
		verdict, err := st.check(h)
		if err != nil {
			return res, err
		}
		if d := verdict.duplicate; d != nil {
			return p.duplicateLocked(res, d), nil
		}
	}
	// The batch lives in the request's buffer, which the connection reuses
	// once the handler returns; Raft appends it later, so it gets its own
	// copy.
	prop := p.rg.Propose(bytes.Clone(batch))
	if st == nil && h.Idempotent() {
		st = newProducerState(h.ProducerEpoch)
		p.producers[h.ProducerID] = st
	}
	if st != nil {
		h.BaseOffset = -1
		st.record(h, now)
		st.batches[len(st.batches)-1].lastOffset = -1
		st.batches[len(st.batches)-1].prop = prop
		p.stateGen++
	}
	res.Local = p.proposalCompletion(prop, false)
	res.Committed = p.proposalCompletion(prop, true)
	res.LogStartOffset = p.log.LogStartOffset()
	return res, nil
}

// duplicateLocked answers a retry of a batch already proposed.
func (p *Partition) duplicateLocked(res ProduceResult, d *batchMeta) ProduceResult {
	res.LogStartOffset = p.log.LogStartOffset()
	if d.prop != nil {
		res.Local = p.proposalCompletion(d.prop, false)
		res.Committed = p.proposalCompletion(d.prop, true)
		return res
	}
	res.BaseOffset = d.baseOffset
	res.Local = doneCompletion(d.baseOffset)
	res.Committed = p.commitCompletion(d.baseOffset, d.lastOffset)
	return res
}

// Completion is the outcome of a write that finishes later.
type Completion struct {
	done   <-chan struct{}
	result func() (int64, error)
}

// Done is closed when the write's outcome is known.
func (c *Completion) Done() <-chan struct{} { return c.done }

// Result is the write's base offset, or why it failed (after Done).
func (c *Completion) Result() (int64, error) { return c.result() }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func doneCompletion(base int64) *Completion {
	return &Completion{done: closedChan, result: func() (int64, error) { return base, nil }}
}

func durableCompletion(w *storage.DurableWait, base int64) *Completion {
	return &Completion{done: w.Done(), result: func() (int64, error) {
		if err := w.Err(); err != nil {
			return -1, fmt.Errorf("%w: %v", ErrStorage, err)
		}
		return base, nil
	}}
}

// proposalCompletion follows a proposal. One that failed leaves the
// producer state suspect (it recorded the batch as sent), so the state is
// rebuilt from the log before the next produce.
func (p *Partition) proposalCompletion(prop *replication.Proposal, committed bool) *Completion {
	done := prop.Local()
	if committed {
		done = prop.Done()
	}
	return &Completion{done: done, result: func() (int64, error) {
		err := prop.LocalErr()
		if committed {
			err = prop.Err()
		}
		if err != nil {
			p.markStale()
			return -1, replicationErr(err)
		}
		base, _ := prop.Offsets()
		return base, nil
	}}
}

// commitCompletion completes once offsets through last are committed
// (a retried batch that is in the log but maybe not yet committed).
func (p *Partition) commitCompletion(base, last int64) *Completion {
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		for {
			ch := p.Changed()
			if p.log.HighWatermark() > last {
				return
			}
			if err = p.Serving(); err != nil {
				return
			}
			select {
			case <-ch:
			case <-p.b.stop:
				err = ErrBrokerShuttingDown
				return
			}
		}
	}()
	return &Completion{done: done, result: func() (int64, error) {
		if err != nil {
			return -1, err
		}
		return base, nil
	}}
}

func replicationErr(err error) error {
	switch {
	case errors.Is(err, replication.ErrNotLeader), errors.Is(err, replication.ErrDropped), errors.Is(err, replication.ErrGroupClosed):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return fmt.Errorf("%w: %v", ErrStorage, err)
}

// appendReplicated writes a batch of the broker's own records through
// Raft and waits until it is committed (coordinator state, markers).
func (p *Partition) appendReplicated(batch []byte) (storage.AppendResult, error) {
	if err := p.Serving(); err != nil {
		return storage.AppendResult{}, err
	}
	prop := p.rg.Propose(batch)
	<-prop.Done()
	if err := prop.Err(); err != nil {
		return storage.AppendResult{}, replicationErr(err)
	}
	base, last := prop.Offsets()
	idx, _ := prop.Index()
	return storage.AppendResult{BaseOffset: base, LastOffset: last, Index: idx}, nil
}

// stripInternal replaces Raft's own entries (a new leader's empty entry,
// membership changes) in fetched batches with a control batch holding one
// LEADER_CHANGE control record, as KRaft writes into its logs: clients skip
// control batches they do not use, their position moves past the offset,
// and a reader that keeps control records sees that the partition goes on
// to there. The replacement is never larger than the entry, so the rewrite
// is done in place.
func stripInternal(b []byte) []byte {
	out := b[:0]
	for rest := b; len(rest) >= record.HeaderSize; {
		size := record.PeekSize(rest)
		if size < record.HeaderSize || size > len(rest) {
			break
		}
		if !record.PeekInternal(rest[:size]) {
			out = append(out, rest[:size]...)
		} else if h, err := record.ParseHeader(rest[:size]); err == nil {
			if marker := leaderChangeMarker(&h); len(marker) <= size {
				out = append(out, marker...)
			} else {
				h.Attributes, h.ProducerID, h.ProducerEpoch, h.BaseSequence = 0, -1, -1, -1
				out = record.AppendEmpty(out, &h)
			}
		}
		rest = rest[size:]
	}
	return out
}

// leaderChangeMarker is the control batch that stands for an internal
// entry with header h.
func leaderChangeMarker(h *record.Header) []byte {
	key := kmsg.NewControlRecordKey()
	key.Type = kmsg.ControlRecordKeyTypeLeaderChange
	b, err := record.Build(record.BatchOptions{BaseOffset: h.BaseOffset, LeaderEpoch: h.LeaderEpoch, FirstTimestamp: h.FirstTimestamp,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Control: true}, []record.Record{{Key: key.AppendTo(nil)}})
	if err != nil {
		return nil
	}
	return b
}

// ClusterID is the cluster's id: the controller's in a cluster.
func (b *Broker) clusterID() string {
	if b.clustered() {
		return b.cfg.Cluster.Metadata().ClusterID
	}
	return b.meta.ClusterID
}

// controlCommits reads whether a transaction marker batch commits.
func controlCommits(batch []byte, d *record.Decompressor) (commit bool, err error) {
	err = record.ForEachRecord(batch, d, func(_ *record.Header, r *record.Record) error {
		var key kmsg.ControlRecordKey
		if err := key.ReadFrom(r.Key); err != nil {
			return fmt.Errorf("%w: control record key: %v", ErrCorruptMessage, err)
		}
		commit = key.Type == kmsg.ControlRecordKeyTypeCommit
		return nil
	})
	return commit, err
}

// createClusterTopic has the controller create a topic, then waits until
// this node has it.
func (b *Broker) createClusterTopic(spec TopicSpec, validateOnly bool) (*Topic, error) {
	// Whether the name is taken is for the controller to decide as it
	// applies the create: this node's topic list may not show yet a create
	// or delete it has acknowledged. Names that metrics would confuse are
	// checked against its metadata too.
	m := b.cfg.Cluster.Metadata()
	b.mu.RLock()
	err := b.checkNameLocked(spec.Name, maps.Keys(m.Topics))
	b.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	if n := len(m.Nodes); int(spec.ReplicationFactor) > n {
		return nil, fmt.Errorf("%w: replication factor %d is larger than the %d available brokers", ErrInvalidReplication, spec.ReplicationFactor, n)
	}
	if validateOnly {
		return nil, nil
	}
	id, err := newUUID()
	if err != nil {
		return nil, err
	}
	if err := b.clusterChange(func(ctx context.Context) error {
		return b.cfg.Cluster.CreateTopic(ctx, spec.Name, id, spec.Partitions, spec.ReplicationFactor, spec.Configs)
	}); err != nil {
		return nil, err
	}
	t, ok := b.Topic(spec.Name)
	if !ok {
		return nil, fmt.Errorf("%w: topic %q deleted while being created", ErrUnknownTopicOrPartition, spec.Name)
	}
	b.logger.Info("created topic", "topic", spec.Name, "partitions", spec.Partitions, "replicas", spec.ReplicationFactor)
	return t, nil
}

// clusterChange runs a controller change and applies the resulting
// metadata locally before returning, so this node's next answer shows it.
func (b *Broker) clusterChange(change func(ctx context.Context) error) error {
	ctx, cancel := adminContext()
	defer cancel()
	if err := change(ctx); err != nil {
		return controllerErr(err)
	}
	b.adminMu.Lock()
	b.reconcileLocked()
	b.adminMu.Unlock()
	return nil
}

// moveInterval is how often partition leaders look at replica moves and
// preferred leaders.
const moveInterval = 500 * time.Millisecond

// moveLoop runs, on every node, the leader's side of replica moves and
// leader rebalancing for the partitions it leads.
func (b *Broker) moveLoop() {
	defer b.wg.Done()
	t := b.clock.NewTimer(moveInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C():
		}
		m := b.cfg.Cluster.Metadata()
		for _, topic := range b.Topics() {
			for _, p := range topic.Partitions() {
				if p.rg != nil {
					p.stepMove(m)
				}
			}
		}
		t.Reset(moveInterval)
	}
}

// stepMove advances a move of the partition's replicas by one step, as
// its leader: add the new replicas as learners; once they have caught up,
// swap them for the old ones in one joint-consensus change; once the
// membership is the target, tell the controller. With no move under way,
// it hands leadership back to the preferred replica when that one is live
// and in sync.
func (p *Partition) stepMove(m *cluster.Metadata) {
	st := p.rg.Status()
	info := p.info.Load()
	if !st.IsLeader || !st.Ready || st.Joint() || p.b.clock.Now().Before(p.moveWait) {
		return
	}
	self := uint64(p.b.cfg.NodeID)
	if info.Target == nil {
		preferred := uint64(info.Replicas[0])
		settled := p.b.clock.Now().Sub(time.Unix(0, p.leaderSince.Load())) >= p.b.cfg.LeaderRebalanceAfter
		if n, ok := m.Nodes[info.Replicas[0]]; ok && settled && preferred != self && n.Live() && !n.Draining &&
			slices.Contains(st.InSync, preferred) && slices.Contains(st.Voters, preferred) {
			p.b.logger.Info("handing leadership back to the preferred replica", "partition", p.name(), "to", preferred)
			p.rg.TransferLeadership(preferred)
			p.moveWait = p.b.clock.Now().Add(5 * moveInterval)
		}
		return
	}
	target := make([]uint64, len(info.Target))
	for i, id := range info.Target {
		target[i] = uint64(id)
	}
	var cc raftpb.ConfChangeV2
	for _, id := range target {
		if !slices.Contains(st.Voters, id) && !slices.Contains(st.Learners, id) {
			cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: new(id)})
		}
	}
	if len(cc.Changes) == 0 {
		caughtUp := true
		for _, id := range target {
			if slices.Contains(st.Learners, id) {
				cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: new(id)})
				caughtUp = caughtUp && st.Match[id]+64 >= st.Commit
			}
		}
		for _, id := range st.Voters {
			if !slices.Contains(target, id) {
				cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: new(id)})
			}
		}
		if !caughtUp {
			return
		}
	}
	if len(cc.Changes) > 0 {
		p.b.logger.Info("replica move", "partition", p.name(), "target", info.Target, "changes", len(cc.Changes))
		p.rg.ProposeConfChange(&cc)
		p.moveWait = p.b.clock.Now().Add(2 * moveInterval)
		return
	}
	// The membership is the target: record it (off the loop; the
	// controller may take a moment).
	p.moveWait = p.b.clock.Now().Add(10 * moveInterval)
	p.b.wg.Add(1)
	go func() {
		defer p.b.wg.Done()
		ctx, cancel := adminContext()
		defer cancel()
		if err := p.b.cfg.Cluster.ReplicasDone(ctx, p.topic.Name, p.index, info.Target); err != nil {
			p.b.logger.Warn("report finished replica move", "partition", p.name(), "err", err)
		}
	}()
}
