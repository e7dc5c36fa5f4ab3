// Package broker owns the partitions of a node and the semantics Kafka
// clients rely on: topics and their configs, produce (validation,
// idempotent-producer sequence checks, durability), reads bounded by the high
// watermark, offsets by time, retention and record deletion. It speaks no
// wire protocol; the kafka package maps requests onto it and its errors onto
// Kafka error codes.
//
// Lock order: Broker.adminMu, then Broker.mu, then Topic.mu, then
// Partition.mu.
package broker

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/clock"
	"github.com/weir-dev/weir/internal/cluster"
	"github.com/weir-dev/weir/internal/group"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/storage"
)

// Config is the broker's part of the server configuration.
type Config struct {
	DataDir                  string
	NodeID                   int32
	AutoCreateTopics         bool
	DefaultPartitions        int32
	DefaultReplicationFactor int16
	// TopicDefaults overrides built-in topic config defaults for every
	// topic (Kafka's log.* broker settings), by topic config name.
	TopicDefaults        map[string]string
	MaxDecompressedBytes int
	MaintenanceInterval  time.Duration
	ProducerIDExpiration time.Duration
	SyncWorkers          int
	// Partitions of the internal topics, fixed at their creation.
	OffsetsTopicPartitions     int32 // __consumer_offsets (Kafka: 50)
	TransactionTopicPartitions int32 // __transaction_state (Kafka: 50)
	// GroupInitialRebalanceDelay is Kafka's
	// group.initial.rebalance.delay.ms.
	GroupInitialRebalanceDelay time.Duration
	// Cluster, when set, makes the broker one node of a cluster: topics
	// come from the controller and partitions are Raft groups.
	Cluster *cluster.Controller
	// LeaderRebalanceAfter is how long a leader that is not its
	// partition's preferred replica keeps leading before it hands over
	// (so leadership does not bounce while nodes come and go).
	LeaderRebalanceAfter time.Duration
}

// Broker is a node's partition manager.
type Broker struct {
	cfg     Config
	clock   clock.Clock
	logger  *slog.Logger
	syncer  *storage.Syncer
	buffers *storage.BufferPool
	decomp  *record.Decompressor

	adminMu sync.Mutex // serializes metadata changes and their saves
	meta    *metaState

	mu       sync.RWMutex
	topics   map[string]*Topic
	byID     map[[16]byte]*Topic
	views    map[string]*Topic // read-only topics computed from another's records (views.go)
	closed   bool
	nextPID  int64 // next producer id to hand out
	pidLimit int64 // end of the durably reserved block

	txn    *TxnCoordinator
	groups *group.Manager // single node: the one coordinator
	// Cluster: one coordinator per led __consumer_offsets and
	// __transaction_state partition; closedGroups answers NOT_COORDINATOR.
	groupCoords  ledStates[*group.Manager]
	txnCoords    ledStates[*TxnCoordinator]
	closedGroups *group.Manager
	loads        sync.WaitGroup
	peersMu      sync.Mutex
	peers        *kgo.Client // cluster: writes transaction markers on other nodes

	stop chan struct{}
	wg   sync.WaitGroup
}

// Topic is a named set of partitions with shared configs.
type Topic struct {
	Name     string
	ID       [16]byte
	settings atomic.Pointer[settings]
	// view is set for a view: its partitions are its source's.
	view *view

	mu         sync.RWMutex
	partitions []*Partition
	configs    map[string]string
}

// Partitions returns the topic's partitions in order.
func (t *Topic) Partitions() []*Partition {
	if t.view != nil {
		return t.view.source.Partitions()
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append([]*Partition(nil), t.partitions...)
}

// Partition returns partition i.
func (t *Topic) Partition(i int32) (*Partition, bool) {
	if t.view != nil {
		return t.view.source.Partition(i)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if i < 0 || int(i) >= len(t.partitions) {
		return nil, false
	}
	return t.partitions[i], true
}

// NumPartitions is the partition count.
func (t *Topic) NumPartitions() int32 {
	if t.view != nil {
		return t.view.source.NumPartitions()
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return int32(len(t.partitions))
}

// Internal reports whether the topic is one of Weir's own.
func (t *Topic) Internal() bool { return internalName(t.Name) }

func internalName(name string) bool { return strings.HasPrefix(name, "__") }

// Open loads the broker's metadata and opens every partition log.
func Open(cfg Config, clk clock.Clock, logger *slog.Logger) (*Broker, error) {
	if clk == nil {
		clk = clock.Real{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.DefaultReplicationFactor <= 0 {
		cfg.DefaultReplicationFactor = 1
	}
	if cfg.MaintenanceInterval <= 0 {
		cfg.MaintenanceInterval = 30 * time.Second
	}
	if cfg.LeaderRebalanceAfter <= 0 {
		cfg.LeaderRebalanceAfter = 30 * time.Second
	}
	if cfg.ProducerIDExpiration <= 0 {
		cfg.ProducerIDExpiration = 24 * time.Hour
	}
	if cfg.OffsetsTopicPartitions <= 0 {
		cfg.OffsetsTopicPartitions = 16
	}
	if cfg.TransactionTopicPartitions <= 0 {
		cfg.TransactionTopicPartitions = 4
	}
	if cfg.MaxDecompressedBytes <= 0 {
		cfg.MaxDecompressedBytes = record.DefaultLimits.MaxDecompressedBytes
	}
	for name, v := range cfg.TopicDefaults {
		if err := ValidateTopicConfig(name, v); err != nil {
			return nil, fmt.Errorf("topic default: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, topicsSubdir), 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	meta, err := loadMeta(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if err := saveMeta(cfg.DataDir, meta); err != nil { // fixes the cluster id on first start
		return nil, err
	}
	b := &Broker{
		cfg: cfg, clock: clk, logger: logger,
		syncer:  storage.NewSyncer(max(cfg.SyncWorkers, 4)),
		buffers: storage.NewBufferPool(),
		decomp:  record.NewDecompressor(),
		meta:    meta,
		topics:  make(map[string]*Topic),
		byID:    make(map[[16]byte]*Topic),
		views:   make(map[string]*Topic),
		nextPID: meta.NextProducerID,
		stop:    make(chan struct{}),
	}
	b.pidLimit = b.nextPID
	if b.clustered() {
		b.adminMu.Lock()
		b.reconcileLocked()
		b.adminMu.Unlock()
		if err := b.startCoordinators(); err != nil {
			b.closeAll()
			return nil, err
		}
		b.wg.Add(3)
		go b.reconcileLoop()
		go b.moveLoop()
		go b.maintain()
		return b, nil
	}
	for _, tm := range meta.Topics {
		id, err := parseTopicID(tm.ID)
		if err != nil {
			b.closeAll()
			return nil, err
		}
		t := b.newTopic(tm.Name, id, tm.Configs)
		b.topics[t.Name] = t
		b.byID[t.ID] = t
		for i := range tm.Partitions {
			p, err := b.openPartition(t, i)
			if err != nil {
				b.closeAll()
				return nil, fmt.Errorf("open partition %s-%d: %w", t.Name, i, err)
			}
			t.partitions = append(t.partitions, p)
		}
	}
	b.removeStrayDirs()
	if err := b.startCoordinators(); err != nil {
		b.closeAll()
		return nil, err
	}
	b.wg.Add(1)
	go b.maintain()
	return b, nil
}

// startCoordinators loads the group and transaction coordinators from
// their internal topics; the topics are created on first use.
func (b *Broker) startCoordinators() error {
	if err := b.startGroups(); err != nil {
		return fmt.Errorf("load consumer groups: %w", err)
	}
	if b.clustered() {
		return nil // loaded per __transaction_state partition by its leader
	}
	b.txn = &TxnCoordinator{b: b, groups: b.groups, txns: map[string]*txnMeta{}, byPID: map[int64]*txnMeta{}}
	if err := b.txn.load(); err != nil {
		return fmt.Errorf("load transactions: %w", err)
	}
	return nil
}

// Transactions is the transaction coordinator.
func (b *Broker) Transactions() *TxnCoordinator { return b.txn }

// verifyTxnPartition checks a transactional produce against the
// coordinator.
func (b *Broker) verifyTxnPartition(pid int64, epoch int16, topic string, partition int32) error {
	if b.clustered() {
		// The coordinator may be on another node; as in Kafka before
		// KIP-890, the leader does not ask it.
		return nil
	}
	if b.txn == nil {
		return fmt.Errorf("%w: no transaction coordinator", ErrInvalidTxnState)
	}
	return b.txn.verify(pid, epoch, topic, partition)
}

func (b *Broker) newTopic(name string, id [16]byte, configs map[string]string) *Topic {
	if configs == nil {
		configs = map[string]string{}
	}
	t := &Topic{Name: name, ID: id, configs: configs}
	s := configLookup{topic: configs, broker: b.cfg.TopicDefaults}.resolve()
	t.settings.Store(&s)
	return t
}

// removeStrayDirs deletes partition directories no topic owns: leftovers of
// deletions interrupted by a crash.
func (b *Broker) removeStrayDirs() {
	dir := filepath.Join(b.cfg.DataDir, topicsSubdir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	live := map[string]bool{}
	for _, t := range b.topics {
		for i := range t.partitions {
			live[filepath.Base(partitionDir(b.cfg.DataDir, t.Name, int32(i)))] = true
		}
	}
	for _, e := range entries {
		if !live[e.Name()] {
			b.logger.Info("removing directory of a deleted topic", "dir", e.Name())
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// ClusterID identifies the cluster.
func (b *Broker) ClusterID() string { return b.clusterID() }

// NodeID is this broker's id.
func (b *Broker) NodeID() int32 { return b.cfg.NodeID }

// DataDir is where the broker keeps its files.
func (b *Broker) DataDir() string { return b.cfg.DataDir }

// DefaultPartitions is the partition count of topics created without one.
func (b *Broker) DefaultPartitions() int32 { return b.cfg.DefaultPartitions }

// AutoCreateTopics reports whether unknown topics are created on use.
func (b *Broker) AutoCreateTopics() bool { return b.cfg.AutoCreateTopics }

// Decompressor is the broker's shared decompressor.
func (b *Broker) Decompressor() *record.Decompressor { return b.decomp }

// Topic looks a topic up by name.
func (b *Broker) Topic(name string) (*Topic, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.topics[name]
	if !ok {
		t, ok = b.views[name]
	}
	return t, ok
}

// TopicByID looks a topic up by id.
func (b *Broker) TopicByID(id [16]byte) (*Topic, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.byID[id]
	return t, ok
}

// Topics returns every topic, sorted by name.
func (b *Broker) Topics() []*Topic {
	b.mu.RLock()
	ts := make([]*Topic, 0, len(b.topics))
	for _, t := range b.topics {
		ts = append(ts, t)
	}
	b.mu.RUnlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts
}

// Partition finds a partition by topic name and index.
func (b *Broker) Partition(topic string, index int32) (*Partition, error) {
	t, ok := b.Topic(topic)
	if !ok {
		return nil, fmt.Errorf("%w: topic %q", ErrUnknownTopicOrPartition, topic)
	}
	p, ok := t.Partition(index)
	if !ok {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownTopicOrPartition, topic, index)
	}
	return p, nil
}

// producerIDBlock is how many producer ids are reserved per metadata write.
const producerIDBlock = 1000

// InitProducerID hands out a new producer id for an idempotent producer.
// Ids come from blocks reserved durably, so a restart never reuses one.
func (b *Broker) InitProducerID() (int64, error) {
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	if b.nextPID >= b.pidLimit && b.clustered() {
		ctx, cancel := adminContext()
		first, err := b.cfg.Cluster.AllocateProducerIDs(ctx, producerIDBlock)
		cancel()
		if err != nil {
			return 0, controllerErr(err)
		}
		b.nextPID, b.pidLimit = first, first+producerIDBlock
	}
	if b.nextPID >= b.pidLimit {
		b.meta.NextProducerID = b.pidLimit + producerIDBlock
		if err := saveMeta(b.cfg.DataDir, b.meta); err != nil {
			b.meta.NextProducerID = b.pidLimit
			return 0, fmt.Errorf("%w: reserve producer ids: %v", ErrStorage, err)
		}
		b.pidLimit = b.meta.NextProducerID
	}
	id := b.nextPID
	b.nextPID++
	return id, nil
}

// maintain runs retention and producer-state housekeeping periodically.
func (b *Broker) maintain() {
	defer b.wg.Done()
	t := b.clock.NewTimer(b.cfg.MaintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C():
			b.RunMaintenance()
			t.Reset(b.cfg.MaintenanceInterval)
		}
	}
}

// RunMaintenance applies retention to every partition, expires idle
// producers and snapshots producer state. The broker runs it every
// MaintenanceInterval; tests call it directly.
func (b *Broker) RunMaintenance() {
	for _, c := range b.TxnCoordinators() {
		c.expire()
	}
	for _, m := range b.GroupCoordinators() {
		if m != nil {
			m.ExpireOffsets()
		}
	}
	expireBefore := b.clock.Now().Add(-b.cfg.ProducerIDExpiration).UnixMilli()
	for _, t := range b.Topics() {
		for _, p := range t.Partitions() {
			if p.log == nil {
				continue
			}
			if n, err := p.log.ApplyRetention(); err != nil {
				b.logger.Error("retention", "partition", p.name(), "err", err)
			} else if n > 0 {
				b.logger.Info("retention deleted segments", "partition", p.name(), "segments", n, "log_start_offset", p.LogStartOffset())
			}
			if t.settings.Load().compact {
				p.compact()
			}
			p.expireProducers(expireBefore)
			if err := p.snapshotProducers(false); err != nil {
				b.logger.Warn("producer state snapshot", "partition", p.name(), "err", err)
			}
		}
	}
}

// Failures lists partitions whose logs stopped after an I/O error; a
// healthy broker has none.
func (b *Broker) Failures() []string {
	var out []string
	for _, t := range b.Topics() {
		for _, p := range t.Partitions() {
			if p.log == nil {
				continue
			}
			if err := p.log.Failed(); err != nil {
				out = append(out, fmt.Sprintf("%s: %v", p.name(), err))
			}
		}
	}
	return out
}

// Close stops housekeeping and closes every log cleanly (synced, indexes
// written, clean-shutdown markers left).
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()
	for _, m := range b.GroupCoordinators() {
		if m != nil {
			m.Close()
		}
	}
	return b.closeAll()
}

func (b *Broker) closeAll() error {
	var errs []error
	for _, t := range b.topics {
		for _, p := range t.partitions {
			if p.rg != nil {
				p.rg.Remove() // the driver appends to the log no more
			}
			if p.log == nil {
				continue
			}
			if err := p.close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", p.name(), err))
			}
		}
	}
	b.loads.Wait() // no group left to start another load
	if b.peers != nil {
		b.peers.Close()
	}
	b.syncer.Close()
	b.decomp.Close()
	return errors.Join(errs...)
}

// TopicIDString formats a topic id as Weir stores it.
func TopicIDString(id [16]byte) string { return hex.EncodeToString(id[:]) }
