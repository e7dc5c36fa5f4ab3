package broker

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/replication"
)

// In a cluster each __transaction_state partition has its own transaction
// coordinator, loaded by the node that leads the partition; it writes the
// markers of a transaction to each partition's leader with
// WriteTxnMarkers, as Kafka does.

// ErrNotCoordinator: this node does not coordinate the transactional id.
var ErrNotCoordinator = errors.New("not the coordinator")

// TxnCoordinatorFor is the coordinator of transactional id on this node.
func (b *Broker) TxnCoordinatorFor(id string) (*TxnCoordinator, error) {
	if !b.clustered() {
		return b.txn, nil
	}
	n := b.cfg.TransactionTopicPartitions
	if t, ok := b.Topic(TransactionTopic); ok {
		n = t.NumPartitions()
	}
	idx := partitionIndex(id, n)
	if c, ok := b.txnCoords.get(idx); ok {
		return c, nil
	}
	return nil, fmt.Errorf("%w: node %d does not lead %s-%d", ErrNotCoordinator, b.cfg.NodeID, TransactionTopic, idx)
}

// TxnCoordinators lists the transaction coordinators this node runs.
func (b *Broker) TxnCoordinators() []*TxnCoordinator {
	if !b.clustered() {
		if b.txn == nil {
			return nil
		}
		return []*TxnCoordinator{b.txn}
	}
	return b.txnCoords.all()
}

// TxnCoordinatorNode is the node coordinating transactional id: the leader
// of its __transaction_state partition (created on first use).
func (b *Broker) TxnCoordinatorNode(id string) (int32, error) {
	p, err := b.internalPartition(TransactionTopic, id)
	if err != nil {
		return -1, err
	}
	leader, _, _, _ := p.LeaderInfo()
	if leader < 0 {
		return -1, fmt.Errorf("%w: %s has no leader yet", ErrCoordinatorNotAvailable, p.name())
	}
	return leader, nil
}

// txnCoordinatorStatus loads a __transaction_state partition's coordinator
// when this node starts leading it and drops it when it stops.
func (b *Broker) txnCoordinatorStatus(p *Partition, st replication.Status) {
	b.txnCoords.follow(p, st, func() (*TxnCoordinator, error) {
		c := &TxnCoordinator{b: b, txns: map[string]*txnMeta{}, byPID: map[int64]*txnMeta{}}
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := c.loadFrom([]*Partition{p}); err != nil {
			return nil, err
		}
		b.logger.Info("transaction coordinator loaded", "partition", p.name(), "term", st.Term)
		return c, nil
	}, nil)
}

// peerClient is a Kafka client to the cluster's nodes, for the requests
// one broker sends another.
func (b *Broker) peerClient() (*kgo.Client, error) {
	b.peersMu.Lock()
	defer b.peersMu.Unlock()
	if b.peers != nil {
		return b.peers, nil
	}
	var seeds []string
	for _, n := range b.cfg.Cluster.Metadata().Nodes {
		seeds = append(seeds, fmt.Sprintf("%s:%d", n.KafkaHost, n.KafkaPort))
	}
	sort.Strings(seeds)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ClientID("weir-broker"), kgo.RetryTimeout(adminTimeout))
	if err != nil {
		return nil, err
	}
	b.peers = cl
	return cl, nil
}

// writeMarkers has every partition's leader write a transaction's marker,
// retrying the partitions whose leader moved until all are written.
func (b *Broker) writeMarkers(parts map[TopicPartition]bool, pid int64, epoch int16, commit bool) error {
	if len(parts) == 0 {
		return nil
	}
	cl, err := b.peerClient()
	if err != nil {
		return err
	}
	ctx, cancel := adminContext()
	defer cancel()
	pending := map[TopicPartition]bool{}
	for tp := range parts {
		if _, err := b.Partition(tp.Topic, tp.Partition); err == nil {
			pending[tp] = true // a deleted topic needs no marker
		}
	}
	backoff := 50 * time.Millisecond
	for len(pending) > 0 {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		mk := kmsg.NewWriteTxnMarkersRequestMarker()
		mk.ProducerID, mk.ProducerEpoch, mk.Committed = pid, epoch, commit
		byTopic := map[string][]int32{}
		for tp := range pending {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
		}
		for t, ps := range byTopic {
			mk.Topics = append(mk.Topics, kmsg.WriteTxnMarkersRequestMarkerTopic{Topic: t, Partitions: ps})
		}
		req.Markers = []kmsg.WriteTxnMarkersRequestMarker{mk}
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			for _, m := range resp.Markers {
				for _, t := range m.Topics {
					for _, p := range t.Partitions {
						tp := TopicPartition{t.Topic, p.Partition}
						switch {
						case p.ErrorCode == 0, p.ErrorCode == kerr.UnknownTopicOrPartition.Code:
							delete(pending, tp)
						default:
							err = fmt.Errorf("marker on %s-%d: %w", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
						}
					}
				}
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: write transaction markers: %v", ErrStorage, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		cl.ForceMetadataRefresh()
	}
	return nil
}

// WriteMarkerAsLeader is the leader's side of WriteTxnMarkers: the marker
// goes into the partition, and a marker in __consumer_offsets settles the
// offsets the transaction staged in the groups kept there.
func (b *Broker) WriteMarkerAsLeader(topic string, partition int32, pid int64, epoch int16, commit bool, coordinatorEpoch int32) error {
	p, err := b.Partition(topic, partition)
	if err != nil {
		return err
	}
	if err := p.Serving(); err != nil {
		return err
	}
	if err := p.WriteMarker(pid, epoch, commit, coordinatorEpoch); err != nil {
		return err
	}
	if topic != OffsetsTopic || !b.clustered() {
		return nil
	}
	m, ok := b.groupCoords.get(partition)
	if !ok {
		return nil // replayed from the marker when the coordinator loads
	}
	for _, g := range m.PendingTxnGroups(pid) {
		if err := m.CompleteTxn(g, pid, commit); err != nil {
			return err
		}
	}
	return nil
}
