package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/group"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/replication"
)

// offsetsStore persists the group coordinator's state in __consumer_offsets
// in Kafka's record formats: a group's records live on the partition its
// name hashes to, keyed so that compaction keeps the latest of each.
type offsetsStore struct {
	b *Broker
}

func (s *offsetsStore) SaveGroup(name string, v *kmsg.GroupMetadataValue) error {
	key := kmsg.GroupMetadataKey{Version: 2, Group: name}
	rec := record.Record{Key: key.AppendTo(nil)}
	if v != nil {
		rec.Value = v.AppendTo(nil)
	}
	p, err := s.b.internalPartition(OffsetsTopic, name)
	if err != nil {
		return err
	}
	_, err = p.appendInternal(record.BatchOptions{}, []record.Record{rec})
	return err
}

func (s *offsetsStore) SaveOffsets(name string, offsets []group.OffsetRecord) error {
	p, err := s.b.internalPartition(OffsetsTopic, name)
	if err != nil {
		return err
	}
	_, err = p.appendInternal(record.BatchOptions{}, offsetRecords(name, offsets))
	return err
}

// SaveTxnOffsets writes a transaction's offsets as the producer's
// transactional records; its commit or abort marker settles them.
func (s *offsetsStore) SaveTxnOffsets(name string, pid int64, epoch int16, offsets []group.OffsetRecord) error {
	opts := record.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: -1, Transactional: true}
	p, err := s.b.internalPartition(OffsetsTopic, name)
	if err != nil {
		return err
	}
	ar, err := p.appendInternal(opts, offsetRecords(name, offsets))
	if err != nil {
		return err
	}
	// Like any transactional write, it holds the partition's last stable
	// offset until the marker.
	p.mu.Lock()
	st := p.producers[pid]
	if st == nil {
		st = newProducerState(epoch)
		p.producers[pid] = st
	}
	if st.txnFirst < 0 {
		st.txnFirst = ar.BaseOffset
		p.ongoing[pid] = ar.BaseOffset
	}
	p.stateGen++
	p.mu.Unlock()
	return nil
}

func offsetRecords(name string, offsets []group.OffsetRecord) []record.Record {
	recs := make([]record.Record, 0, len(offsets))
	for _, o := range offsets {
		key := kmsg.OffsetCommitKey{Version: 1, Group: name, Topic: o.Topic, Partition: o.Partition}
		rec := record.Record{Key: key.AppendTo(nil)}
		if o.Offset != -1 {
			val := kmsg.NewOffsetCommitValue()
			val.Offset, val.Metadata, val.CommitTimestamp = o.Offset, o.Metadata, o.CommitTime
			if o.ExpireTime != -1 {
				val.Version, val.ExpireTimestamp = 1, o.ExpireTime
			} else {
				val.Version, val.LeaderEpoch = 3, o.LeaderEpoch
			}
			rec.Value = val.AppendTo(nil)
		}
		recs = append(recs, rec)
	}
	return recs
}

// newGroupManager makes an empty group coordinator writing to
// __consumer_offsets.
func (b *Broker) newGroupManager() *group.Manager {
	return group.NewManager(group.Config{
		MinSessionTimeout:     6 * time.Second,
		MaxSessionTimeout:     30 * time.Minute,
		InitialRebalanceDelay: b.cfg.GroupInitialRebalanceDelay,
		OffsetsRetention:      7 * 24 * time.Hour,
	}, &offsetsStore{b: b}, b.clock, b.logger)
}

// startGroups creates the group coordinator and replays __consumer_offsets
// (if it exists yet) into it. In a cluster each partition of
// __consumer_offsets gets its own coordinator, loaded on the node that
// leads it (see coordinatorStatus).
func (b *Broker) startGroups() error {
	if b.clustered() {
		b.closedGroups = b.newGroupManager()
		b.closedGroups.Close()
		b.groupCoords.wg, b.groupCoords.logger = &b.loads, b.logger.Error
		b.txnCoords.wg, b.txnCoords.logger = &b.loads, b.logger.Error
		return nil
	}
	b.groups = b.newGroupManager()
	t, ok := b.Topic(OffsetsTopic)
	if !ok {
		return nil
	}
	for _, p := range t.Partitions() {
		if err := p.replayOffsets(b.groups); err != nil {
			return err
		}
	}
	return nil
}

// replayOffsets loads a partition of __consumer_offsets into m.
func (p *Partition) replayOffsets(m *group.Manager) error {
	if err := p.forEachRecord(func(h *record.Header, r *record.Record) error {
		return replayOffsetsRecord(m, h, r)
	}); err != nil {
		return fmt.Errorf("replay %s: %w", p.name(), err)
	}
	return nil
}

func replayOffsetsRecord(m *group.Manager, h *record.Header, r *record.Record) error {
	if h.Control() {
		var key kmsg.ControlRecordKey
		if key.ReadFrom(r.Key) == nil {
			m.LoadTxnEnd(h.ProducerID, key.Type == kmsg.ControlRecordKeyTypeCommit)
		}
		return nil
	}
	if len(r.Key) < 2 {
		return nil
	}
	switch version := int16(r.Key[0])<<8 | int16(r.Key[1]); version {
	case 0, 1:
		var key kmsg.OffsetCommitKey
		if err := key.ReadFrom(r.Key); err != nil {
			return fmt.Errorf("%w: offset commit key: %v", ErrCorruptMessage, err)
		}
		rec := group.OffsetRecord{Topic: key.Topic, Partition: key.Partition, Offset: -1, LeaderEpoch: -1, ExpireTime: -1}
		if r.Value != nil {
			var val kmsg.OffsetCommitValue
			if err := val.ReadFrom(r.Value); err != nil {
				return fmt.Errorf("%w: offset commit value: %v", ErrCorruptMessage, err)
			}
			rec.Offset, rec.Metadata, rec.CommitTime = val.Offset, val.Metadata, val.CommitTimestamp
			if val.Version >= 3 {
				rec.LeaderEpoch = val.LeaderEpoch
			}
			if val.Version == 1 {
				rec.ExpireTime = val.ExpireTimestamp
			}
		}
		if h.Transactional() {
			m.LoadTxnOffset(key.Group, h.ProducerID, rec)
		} else {
			m.LoadOffset(key.Group, rec)
		}
	case 2:
		var key kmsg.GroupMetadataKey
		if err := key.ReadFrom(r.Key); err != nil {
			return fmt.Errorf("%w: group metadata key: %v", ErrCorruptMessage, err)
		}
		if r.Value == nil {
			m.LoadGroup(key.Group, nil)
			return nil
		}
		var val kmsg.GroupMetadataValue
		if err := val.ReadFrom(r.Value); err != nil {
			return fmt.Errorf("%w: group metadata of %q: %v", ErrCorruptMessage, key.Group, err)
		}
		m.LoadGroup(key.Group, &val)
	}
	return nil
}

// GroupCoordinator is the coordinator of group name on this node: the
// only one on a single node; in a cluster the one of the
// __consumer_offsets partition the name hashes to, or one that answers
// NOT_COORDINATOR when this node does not lead that partition.
func (b *Broker) GroupCoordinator(name string) *group.Manager {
	if !b.clustered() {
		return b.groups
	}
	if m, ok := b.groupCoords.get(b.offsetsPartitionOf(name)); ok {
		return m
	}
	return b.closedGroups
}

// GroupCoordinators lists every coordinator this node runs.
func (b *Broker) GroupCoordinators() []*group.Manager {
	if !b.clustered() {
		return []*group.Manager{b.groups}
	}
	return b.groupCoords.all()
}

// offsetsPartitionOf is the __consumer_offsets partition holding a
// group's state.
func (b *Broker) offsetsPartitionOf(name string) int32 {
	n := b.cfg.OffsetsTopicPartitions
	if t, ok := b.Topic(OffsetsTopic); ok {
		n = t.NumPartitions()
	}
	return partitionIndex(name, n)
}

// coordinatorStatus follows the leadership of a __consumer_offsets
// partition: its coordinator is loaded from the log once this node leads
// it and closed when it stops.
func (b *Broker) coordinatorStatus(p *Partition, st replication.Status) {
	b.groupCoords.follow(p, st, func() (*group.Manager, error) {
		m := b.newGroupManager()
		if err := p.replayOffsets(m); err != nil {
			m.Close()
			return nil, err
		}
		b.logger.Info("group coordinator loaded", "partition", p.name(), "term", st.Term)
		return m, nil
	}, (*group.Manager).Close)
}

// ErrCoordinatorNotAvailable: the coordinator's partition has no leader
// yet (or its coordinator is not replicated).
var ErrCoordinatorNotAvailable = errors.New("coordinator not available")

// GroupCoordinatorNode is the node that coordinates group name: in a
// cluster the leader of its __consumer_offsets partition (created on
// first use).
func (b *Broker) GroupCoordinatorNode(name string) (int32, error) {
	if !b.clustered() {
		return b.cfg.NodeID, nil
	}
	p, err := b.internalPartition(OffsetsTopic, name)
	if err != nil {
		return -1, err
	}
	leader, _, _, _ := p.LeaderInfo()
	if leader < 0 {
		return -1, fmt.Errorf("%w: %s has no leader yet", ErrCoordinatorNotAvailable, p.name())
	}
	return leader, nil
}
