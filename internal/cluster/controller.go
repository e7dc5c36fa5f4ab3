package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/weir-dev/weir/internal/clock"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/replication"
	"github.com/weir-dev/weir/internal/replication/transport"
	"github.com/weir-dev/weir/internal/storage"
)

// Config configures a node's part in a cluster.
type Config struct {
	NodeID  int32
	DataDir string
	// Listener accepts peers' Raft connections; RPCAddr is the address
	// the other nodes reach it at (as listed in Seeds).
	Listener net.Listener
	RPCAddr  string
	// Seeds are the RPC addresses of the controller's voters, the same
	// list on every node.
	Seeds []string
	// DialMap redirects dials: to reach the node at key, dial value (the
	// fault-injection harness puts a proxy on every link this way).
	DialMap map[string]string
	// Where clients reach this node's Kafka listener.
	KafkaHost string
	KafkaPort int32
	// ClusterName must match on every node; peers of another are refused.
	ClusterName string
	// HealAfter is how long a node may be offline before its replicas are
	// re-created on other nodes (default 5 minutes).
	HealAfter     time.Duration
	TickInterval  time.Duration // Raft tick (default 100ms)
	ElectionTicks int           // ticks without a leader before an election (default 10)
	Clock         clock.Clock
	Logger        *slog.Logger
}

// Controller is this node's view of the cluster: the shared multi-Raft
// engine and transport, the controller group and the metadata it applies.
type Controller struct {
	cfg    Config
	logger *slog.Logger
	clock  clock.Clock
	engine *replication.Engine
	tr     *transport.TCP
	syncer *storage.Syncer
	log    *storage.Log
	group  *replication.Group
	dec    *record.Decompressor

	meta    atomic.Pointer[Metadata]
	chMu    sync.Mutex
	changed chan struct{}

	mu      sync.Mutex
	waiters map[string]chan Result
	peers   map[uint64]string
	reports map[string]LeaderReport // leader reports not yet applied
	seedIDs []uint64                // the controller's initial voters
	// silentSince: when each node was last seen out of sync, as the
	// controller leader (background goroutine only).
	silentSince map[int32]time.Time

	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

// Start joins (or forms) the cluster: it starts the transport and the
// Raft engine, learns the seeds' node ids, and hosts the controller
// group. It returns once the controller group is hosted; the node
// registers itself in the background.
func Start(ctx context.Context, cfg Config) (*Controller, error) {
	if cfg.NodeID <= 0 {
		return nil, fmt.Errorf("cluster: node id must be positive, got %d", cfg.NodeID)
	}
	if len(cfg.Seeds) == 0 {
		return nil, errors.New("cluster: no seeds")
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "weir"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	if cfg.HealAfter <= 0 {
		cfg.HealAfter = 5 * time.Minute
	}
	c := &Controller{
		cfg: cfg, logger: cfg.Logger, clock: cfg.Clock,
		changed: make(chan struct{}),
		waiters: map[string]chan Result{},
		peers:   map[uint64]string{},
		reports: map[string]LeaderReport{},
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		dec:     record.NewDecompressor(),
	}
	c.meta.Store(newMetadata())
	c.engine = replication.New(replication.Config{
		NodeID:        uint64(cfg.NodeID),
		TickInterval:  cfg.TickInterval,
		ElectionTicks: cfg.ElectionTicks,
		Clock:         cfg.Clock,
		Logger:        cfg.Logger,
	})
	tr, err := transport.NewTCP(transport.TCPConfig{
		NodeID:      uint64(cfg.NodeID),
		ClusterID:   cfg.ClusterName,
		Listener:    cfg.Listener,
		Handler:     c.engine.Receive,
		Unreachable: c.engine.Unreachable,
		Logger:      cfg.Logger.With("component", "transport"),
		Clock:       cfg.Clock,
	})
	if err != nil {
		return nil, err
	}
	c.tr = tr
	c.engine.SetTransport(tr)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := tr.Serve(); err != nil && !errors.Is(err, transport.ErrClosed) {
			c.logger.Error("raft transport stopped", "err", err)
		}
	}()
	c.engine.Start()

	seeds, err := c.resolveSeeds(ctx)
	if err != nil {
		c.shutdownTransport()
		return nil, err
	}
	var voters []uint64
	self := false
	for addr, id := range seeds {
		voters = append(voters, id)
		if id == uint64(cfg.NodeID) {
			self = true
		} else {
			c.setPeer(id, addr)
		}
	}
	slices.Sort(voters)
	// A node outside the seeds joins as a learner of the controller: it
	// starts from the seeds' membership (which it is not in), asks to be
	// registered, and the controller leader adds it.
	c.seedIDs = voters
	if !self {
		cfg.Logger.Info("joining the cluster through its seeds", "node", cfg.NodeID, "seeds", cfg.Seeds)
	}

	c.syncer = storage.NewSyncer(2)
	lc := storage.DefaultConfig()
	lc.SegmentBytes = 16 << 20
	lc.RetentionAge, lc.RetentionBytes = -1, -1
	c.log, err = storage.Open(filepath.Join(cfg.DataDir, "controller"), storage.Options{Config: lc, Clock: cfg.Clock, Logger: cfg.Logger, Syncer: c.syncer})
	if err != nil {
		c.shutdownTransport()
		return nil, fmt.Errorf("open controller log: %w", err)
	}
	c.group, err = c.engine.AddGroup(replication.GroupConfig{
		ID: ControllerGroup, Log: c.log, Voters: voters, Replay: true, Forward: true,
		StateMachine: &controllerSM{c: c},
	})
	if err != nil {
		c.log.Close()
		c.shutdownTransport()
		return nil, err
	}
	c.wg.Add(1)
	go c.background()
	return c, nil
}

// seedsFile remembers the seeds' node ids once learned, so a restart
// needs none of them up.
const seedsFile = "seeds.json"

// resolveSeeds returns the node id behind every seed address: from the
// file written at the first start, or by probing each seed until all
// answer.
func (c *Controller) resolveSeeds(ctx context.Context) (map[string]uint64, error) {
	dir := filepath.Join(c.cfg.DataDir, "cluster")
	if body, err := storage.ReadSealed(filepath.Join(dir, seedsFile)); err == nil {
		var m map[string]uint64
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("cluster: %s: %w", seedsFile, err)
		}
		if sameSeeds(m, c.cfg.Seeds) {
			return m, nil
		}
		c.logger.Warn("seed list changed since the last start; keeping the controller voters learned then", "known", m)
		return m, nil
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("cluster: read %s: %w", seedsFile, err)
	}
	m := map[string]uint64{}
	backoff := 50 * time.Millisecond
	for {
		for _, addr := range c.cfg.Seeds {
			if _, ok := m[addr]; ok {
				continue
			}
			if addr == c.cfg.RPCAddr {
				m[addr] = uint64(c.cfg.NodeID)
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			id, err := transport.Probe(pctx, c.dialAddr(addr), uint64(c.cfg.NodeID), c.cfg.ClusterName)
			cancel()
			if err != nil {
				c.logger.Info("waiting for seed", "seed", addr, "err", err)
				continue
			}
			m[addr] = id
		}
		if len(m) == len(c.cfg.Seeds) {
			break
		}
		t := c.clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("cluster: waiting for seeds: %w", ctx.Err())
		case <-t.C():
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	seen := map[uint64]string{}
	for addr, id := range m {
		if other, dup := seen[id]; dup {
			return nil, fmt.Errorf("cluster: seeds %s and %s are both node %d", addr, other, id)
		}
		seen[id] = addr
	}
	body, _ := json.Marshal(m)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := storage.WriteFileAtomic(dir, seedsFile, storage.Seal(body)); err != nil {
		return nil, fmt.Errorf("cluster: save %s: %w", seedsFile, err)
	}
	return m, nil
}

func sameSeeds(m map[string]uint64, seeds []string) bool {
	if len(m) != len(seeds) {
		return false
	}
	for _, s := range seeds {
		if _, ok := m[s]; !ok {
			return false
		}
	}
	return true
}

func (c *Controller) dialAddr(addr string) string {
	if to, ok := c.cfg.DialMap[addr]; ok {
		return to
	}
	return addr
}

func (c *Controller) setPeer(id uint64, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peers[id] == addr {
		return
	}
	c.peers[id] = addr
	c.tr.SetPeer(id, c.dialAddr(addr))
}

func (c *Controller) shutdownTransport() {
	c.engine.Close()
	c.tr.Close()
	c.wg.Wait()
	c.dec.Close()
}

// Close stops the node's cluster part: the engine (every group), the
// transport and the controller log.
func (c *Controller) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	c.engine.Close()
	err := c.tr.Close()
	c.wg.Wait()
	if lerr := c.log.Close(); err == nil {
		err = lerr
	}
	c.syncer.Close()
	c.dec.Close()
	c.mu.Lock()
	for req, w := range c.waiters {
		w <- Result{Err: ErrClosed}
		delete(c.waiters, req)
	}
	c.mu.Unlock()
	return err
}

// Engine is the node's multi-Raft engine; partitions host their groups
// on it.
func (c *Controller) Engine() *replication.Engine { return c.engine }

// NodeID is this node's id.
func (c *Controller) NodeID() int32 { return c.cfg.NodeID }

// Metadata is the metadata as of the last applied controller entry.
func (c *Controller) Metadata() *Metadata { return c.meta.Load() }

// Changed returns a channel closed at the next metadata change.
func (c *Controller) Changed() <-chan struct{} {
	c.chMu.Lock()
	defer c.chMu.Unlock()
	return c.changed
}

// Status is the controller group's status; Status().Leader is the
// active controller.
func (c *Controller) Status() replication.Status { return c.group.Status() }

// Ready reports whether this node is registered in the metadata it has
// applied and the controller has a leader.
func (c *Controller) Ready() bool {
	m := c.Metadata()
	_, ok := m.Nodes[c.cfg.NodeID]
	return ok && m.ClusterID != "" && c.Status().Leader != 0
}

// publish makes m current (on the driver goroutine).
func (c *Controller) publish(m *Metadata) {
	c.meta.Store(m)
	for id, n := range m.Nodes {
		if id != c.cfg.NodeID && n.RPCAddr != "" {
			c.setPeer(uint64(id), n.RPCAddr)
		}
	}
	c.chMu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.chMu.Unlock()
}

// Propose proposes cmd and waits until this node applies it, returning
// its outcome. A proposal Raft refused outright (no leader yet) is tried
// again; one whose fate is unknown when ctx ends returns ErrTimeout.
func (c *Controller) Propose(ctx context.Context, cmd Command) (Result, error) {
	var rid [12]byte
	if _, err := rand.Read(rid[:]); err != nil {
		return Result{}, err
	}
	cmd.Req = hex.EncodeToString(rid[:])
	body, err := encodeCommand(&cmd)
	if err != nil {
		return Result{}, err
	}
	w := make(chan Result, 1)
	c.mu.Lock()
	c.waiters[cmd.Req] = w
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, cmd.Req)
		c.mu.Unlock()
	}()
	backoff := 20 * time.Millisecond
	for {
		batch, err := record.Build(record.BatchOptions{FirstTimestamp: c.clock.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
			[]record.Record{{Value: body}})
		if err != nil {
			return Result{}, err
		}
		p := c.group.Propose(batch)
		<-p.Done()
		if err := p.Err(); err == nil {
			break
		} else if !errors.Is(err, replication.ErrDropped) {
			return Result{}, err
		}
		t := c.clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{}, fmt.Errorf("%w: no controller leader", ErrTimeout)
		case <-c.stop:
			t.Stop()
			return Result{}, ErrClosed
		case <-t.C():
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
	select {
	case r := <-w:
		return r, nil
	case <-ctx.Done():
		return Result{}, ErrTimeout
	case <-c.stop:
		return Result{}, ErrClosed
	}
}

// ReportLeader tells the controller that this node leads a partition;
// reports are batched and retried until the metadata shows them.
func (c *Controller) ReportLeader(r LeaderReport) {
	key := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
	c.mu.Lock()
	if old, ok := c.reports[key]; !ok || old.Epoch <= r.Epoch {
		c.reports[key] = r
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// background registers the node and flushes leader reports.
func (c *Controller) background() {
	defer c.wg.Done()
	t := c.clock.NewTimer(c.retryEvery())
	defer t.Stop()
	for {
		c.maintain()
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-t.C():
			t.Reset(c.retryEvery())
		}
	}
}

func (c *Controller) maintain() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*c.retryEvery())
	defer cancel()
	m := c.Metadata()
	if m.Removed[c.cfg.NodeID] {
		return // decommissioned and removed: this node is out of the cluster
	}
	if !c.member() {
		// Not in the controller's membership yet: ask a seed to register
		// this node (the leader then adds it as a learner).
		self := Node{ID: c.cfg.NodeID, RPCAddr: c.cfg.RPCAddr, KafkaHost: c.cfg.KafkaHost, KafkaPort: c.cfg.KafkaPort}
		c.proposeViaSeeds(Command{Op: opRegisterNode, Node: &self})
		return
	}
	if c.Status().Leader == 0 {
		return
	}
	c.addLearners(m)
	if m.ClusterID == "" {
		id := make([]byte, 16)
		rand.Read(id)
		if _, err := c.Propose(ctx, Command{Op: opInit, ClusterID: hex.EncodeToString(id)}); err != nil {
			c.logger.Debug("propose cluster id", "err", err)
			return
		}
	}
	self := Node{ID: c.cfg.NodeID, RPCAddr: c.cfg.RPCAddr, KafkaHost: c.cfg.KafkaHost, KafkaPort: c.cfg.KafkaPort}
	if n, ok := m.Nodes[c.cfg.NodeID]; !ok || !n.sameAddresses(&self) {
		if _, err := c.Propose(ctx, Command{Op: opRegisterNode, Node: &self}); err != nil {
			c.logger.Debug("register node", "err", err)
			return
		}
		c.logger.Info("registered with the controller", "node", self.ID)
	}
	c.trackLiveness(ctx, m)
	c.heal(ctx, c.Metadata())
	c.mu.Lock()
	var batch []LeaderReport
	m = c.Metadata()
	for key, r := range c.reports {
		if t, ok := m.Topics[r.Topic]; !ok || int(r.Partition) >= len(t.Partitions) {
			delete(c.reports, key)
			continue
		} else if p := t.Partitions[r.Partition]; p.Epoch > r.Epoch || (p.Epoch == r.Epoch && p.Leader == r.Leader && slices.Equal(p.ISR, r.ISR)) {
			delete(c.reports, key)
			continue
		}
		batch = append(batch, r)
	}
	c.mu.Unlock()
	if len(batch) > 0 {
		if _, err := c.Propose(ctx, Command{Op: opLeaders, Leaders: batch}); err != nil {
			c.logger.Debug("report leaders", "err", err)
		}
	}
}

// member reports whether this node is a voter or learner of the
// controller group.
func (c *Controller) member() bool {
	st := c.Status()
	id := uint64(c.cfg.NodeID)
	return slices.Contains(st.Voters, id) || slices.Contains(st.VotersOutgoing, id) || slices.Contains(st.Learners, id)
}

// proposeViaSeeds sends a command straight to the seeds as a Raft
// proposal: a node outside the group knows no leader to forward to, but
// a seed forwards it. The outcome shows in the metadata once the node
// replicates the log.
func (c *Controller) proposeViaSeeds(cmd Command) {
	body, err := encodeCommand(&cmd)
	if err != nil {
		return
	}
	batch, err := record.Build(record.BatchOptions{FirstTimestamp: c.clock.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]record.Record{{Value: body}})
	if err != nil {
		return
	}
	for _, id := range c.seedIDs {
		if id == uint64(c.cfg.NodeID) {
			continue
		}
		m := &raftpb.Message{Type: raftpb.MessageType_MsgProp.Enum(), From: new(uint64(c.cfg.NodeID)), To: new(id),
			Entries: []*raftpb.Entry{{Data: batch}}}
		c.tr.Send(id, []transport.Envelope{{Group: ControllerGroup, Msg: m}})
		return // one seed is enough; the next round tries again if need be
	}
}

// addLearners, on the controller leader, adds registered nodes that are
// not yet members of the controller group as learners, so they replicate
// the metadata.
func (c *Controller) addLearners(m *Metadata) {
	st := c.Status()
	if !st.IsLeader || !st.Ready || st.Joint() {
		return
	}
	var cc raftpb.ConfChangeV2
	for _, id := range m.NodeIDs() {
		u := uint64(id)
		if !slices.Contains(st.Voters, u) && !slices.Contains(st.Learners, u) {
			cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: new(u)})
		}
	}
	if len(cc.Changes) > 0 {
		c.logger.Info("adding nodes to the controller as learners", "changes", len(cc.Changes))
		c.group.ProposeConfChange(&cc)
	}
}

// trackLiveness, on the controller leader, records nodes going silent
// and coming back: a voter is live while Raft sees it active.
func (c *Controller) trackLiveness(ctx context.Context, m *Metadata) {
	st := c.Status()
	if !st.IsLeader || !st.Ready || len(st.InSync) == 0 {
		c.silentSince = nil
		return
	}
	now := c.clock.Now()
	if c.silentSince == nil {
		c.silentSince = map[int32]time.Time{}
	}
	for _, id := range m.NodeIDs() {
		n := m.Nodes[id]
		if !slices.Contains(st.Voters, uint64(id)) && !slices.Contains(st.Learners, uint64(id)) {
			continue
		}
		live := id == c.cfg.NodeID || slices.Contains(st.InSync, uint64(id))
		if live {
			delete(c.silentSince, id)
		} else if _, ok := c.silentSince[id]; !ok {
			c.silentSince[id] = now
		}
		// A node is declared gone only after staying silent for a while:
		// a follower catching up is briefly out of sync too.
		if !live && now.Sub(c.silentSince[id]) < c.silenceGrace() {
			live = true
		}
		if live == n.Live() {
			continue
		}
		since := int64(0)
		if !live {
			since = c.clock.Now().UnixMilli()
		}
		if _, err := c.Propose(ctx, Command{Op: opNodeState, NodeID: id, OfflineSince: since}); err != nil {
			c.logger.Debug("record node state", "node", id, "err", err)
			return
		}
		c.logger.Info("node state changed", "node", id, "live", live)
	}
}

// heal, on the controller leader, moves the replicas off nodes that have
// been offline longer than HealAfter or are being decommissioned: each
// such replica is replaced by a live node that does not hold the
// partition, the least loaded first. The partition's leader carries the
// move out.
func (c *Controller) heal(ctx context.Context, m *Metadata) {
	st := c.Status()
	if !st.IsLeader || !st.Ready {
		return
	}
	now := c.clock.Now().UnixMilli()
	gone := map[int32]bool{}
	load := map[int32]int{}
	var live []int32
	for _, id := range m.NodeIDs() {
		n := m.Nodes[id]
		switch {
		case n.Draining || (!n.Live() && now-n.OfflineSince >= c.cfg.HealAfter.Milliseconds()):
			gone[id] = true
		case n.Live():
			live = append(live, id)
			load[id] = 0
		}
	}
	c.removeDrained(ctx, m, st)
	if len(gone) == 0 {
		return
	}
	for _, t := range m.Topics {
		for _, p := range t.Partitions {
			for _, r := range append(slices.Clone(p.Replicas), p.Target...) {
				if _, ok := load[r]; ok {
					load[r]++
				}
			}
		}
	}
	moves := 0
	for _, name := range m.TopicNames() {
		t := m.Topics[name]
		for i, p := range t.Partitions {
			if p.Target != nil || moves >= 64 {
				continue
			}
			target := slices.Clone(p.Replicas)
			changed := false
			for k, r := range target {
				if !gone[r] {
					continue
				}
				best := int32(-1)
				for _, id := range live {
					if !slices.Contains(target, id) && (best < 0 || load[id] < load[best]) {
						best = id
					}
				}
				if best < 0 {
					break // no node to move to; stay under-replicated
				}
				target[k] = best
				load[best]++
				changed = true
			}
			if !changed {
				continue
			}
			moves++
			if _, err := c.Propose(ctx, Command{Op: opReassign, Topic: name, Partition: int32(i), Target: target}); err != nil {
				c.logger.Debug("reassign", "partition", fmt.Sprintf("%s-%d", name, i), "err", err)
				return
			}
			c.logger.Info("moving replicas", "partition", fmt.Sprintf("%s-%d", name, i), "from", p.Replicas, "to", target)
		}
	}
}

// removeDrained, on the controller leader, lets decommissioned nodes that
// hold no replica leave: first out of the metadata (so Metadata no longer
// lists them, and the node itself learns it is out and stops asking to
// register), then out of the controller group.
func (c *Controller) removeDrained(ctx context.Context, m *Metadata, st replication.Status) {
	for _, id := range m.NodeIDs() {
		n := m.Nodes[id]
		if !n.Draining || m.replicaCount(id) > 0 {
			continue
		}
		if id == c.cfg.NodeID {
			// The leader itself is leaving: hand the controller over.
			for _, v := range st.Voters {
				if v != uint64(id) && slices.Contains(st.InSync, v) {
					c.group.TransferLeadership(v)
					break
				}
			}
			continue
		}
		if _, err := c.Propose(ctx, Command{Op: opRemoveNode, NodeID: id}); err != nil {
			c.logger.Debug("remove node", "node", id, "err", err)
			return
		}
		c.logger.Info("decommissioned node removed", "node", id)
	}
	for id := range m.Removed {
		u := uint64(id)
		if (slices.Contains(st.Voters, u) || slices.Contains(st.Learners, u)) && !st.Joint() && len(st.Voters) > 1 {
			c.logger.Info("removed node leaves the controller group", "node", id)
			c.group.ProposeConfChange(&raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{
				{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: new(u)}}})
			return // one membership change at a time
		}
	}
}

// ReplicasDone tells the controller a partition's membership is now its
// move's target.
func (c *Controller) ReplicasDone(ctx context.Context, topic string, partition int32, replicas []int32) error {
	return c.run(ctx, Command{Op: opReplicasDone, Topic: topic, Partition: partition, Target: replicas})
}

// Reassign asks for a partition's replicas to move to target.
func (c *Controller) Reassign(ctx context.Context, topic string, partition int32, target []int32) error {
	return c.run(ctx, Command{Op: opReassign, Topic: topic, Partition: partition, Target: target})
}

// Decommission drains a node: its replicas move to the other nodes.
func (c *Controller) Decommission(ctx context.Context, node int32) error {
	return c.run(ctx, Command{Op: opDecommission, NodeID: node})
}

// silenceGrace is how long a node may be silent before it is declared
// offline: two election timeouts.
func (c *Controller) silenceGrace() time.Duration {
	ticks := c.cfg.ElectionTicks
	if ticks <= 0 {
		ticks = 10
	}
	return 2 * time.Duration(ticks) * c.cfg.TickInterval
}

// retryEvery is how often registration and leader reports are retried.
func (c *Controller) retryEvery() time.Duration { return 5 * c.cfg.TickInterval }

// CreateTopic asks the controller for a topic; id is the topic's new id.
func (c *Controller) CreateTopic(ctx context.Context, name string, id [16]byte, partitions int32, replicas int16, configs map[string]string) error {
	return c.run(ctx, Command{Op: opCreateTopic, Topic: name, TopicID: hex.EncodeToString(id[:]), Partitions: partitions, Replicas: replicas, Configs: configs})
}

// DeleteTopic asks the controller to delete a topic.
func (c *Controller) DeleteTopic(ctx context.Context, name string) error {
	return c.run(ctx, Command{Op: opDeleteTopic, Topic: name})
}

// CreatePartitions grows a topic to count partitions.
func (c *Controller) CreatePartitions(ctx context.Context, name string, count int32) error {
	return c.run(ctx, Command{Op: opCreatePartitions, Topic: name, Partitions: count})
}

// SetTopicConfigs replaces a topic's configs.
func (c *Controller) SetTopicConfigs(ctx context.Context, name string, configs map[string]string) error {
	return c.run(ctx, Command{Op: opSetConfigs, Topic: name, Configs: configs})
}

// AllocateProducerIDs reserves count producer ids, returning the first.
func (c *Controller) AllocateProducerIDs(ctx context.Context, count int64) (int64, error) {
	r, err := c.Propose(ctx, Command{Op: opAllocProducerIDs, Count: count})
	if err != nil {
		return 0, err
	}
	return r.Value, r.Err
}

func (c *Controller) run(ctx context.Context, cmd Command) error {
	r, err := c.Propose(ctx, cmd)
	if err != nil {
		return err
	}
	return r.Err
}

// controllerSM applies the controller log to the metadata.
type controllerSM struct {
	replication.NopStateMachine
	c *Controller
}

func (s *controllerSM) Apply(index uint64, batch []byte) {
	c := s.c
	m := c.Metadata()
	type outcome struct {
		w   chan Result
		res Result
	}
	var outcomes []outcome
	err := record.ForEachRecord(batch, c.dec, func(_ *record.Header, r *record.Record) error {
		cmd, err := decodeCommand(r.Value)
		if err != nil {
			return err
		}
		next, res := m.apply(cmd)
		if next != m {
			m = next
		}
		c.mu.Lock()
		if w, ok := c.waiters[cmd.Req]; ok {
			outcomes = append(outcomes, outcome{w, res})
			delete(c.waiters, cmd.Req)
		}
		c.mu.Unlock()
		return nil
	})
	if err != nil {
		c.logger.Error("skipping undecodable controller entry", "index", index, "err", err)
	}
	if m != c.Metadata() {
		m = m.clone()
		m.Index = index
		c.publish(m)
	}
	// Proposers learn their outcome only now, so that one reading
	// Metadata() once its change is acknowledged finds it there. (Each
	// waiter has room for its one result: the sends do not block.)
	for _, o := range outcomes {
		o.w <- o.res
	}
}

func (s *controllerSM) StatusChanged(st replication.Status) {
	select {
	case s.c.kick <- struct{}{}:
	default:
	}
}
