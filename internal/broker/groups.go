package broker

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/group"
	"github.com/weir-dev/weir/internal/record"
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

// startGroups creates the group coordinator and replays __consumer_offsets
// (if it exists yet) into it.
func (b *Broker) startGroups() error {
	b.groups = group.NewManager(group.Config{
		MinSessionTimeout:     6 * time.Second,
		MaxSessionTimeout:     30 * time.Minute,
		InitialRebalanceDelay: b.cfg.GroupInitialRebalanceDelay,
		OffsetsRetention:      7 * 24 * time.Hour,
	}, &offsetsStore{b: b}, b.clock, b.logger)
	t, ok := b.Topic(OffsetsTopic)
	if !ok {
		return nil
	}
	for _, p := range t.Partitions() {
		if err := p.forEachRecord(func(h *record.Header, r *record.Record) error {
			return b.replayOffsetsRecord(h, r)
		}); err != nil {
			return fmt.Errorf("replay %s-%d: %w", t.Name, p.Index(), err)
		}
	}
	return nil
}

func (b *Broker) replayOffsetsRecord(h *record.Header, r *record.Record) error {
	if h.Control() {
		var key kmsg.ControlRecordKey
		if key.ReadFrom(r.Key) == nil {
			b.groups.LoadTxnEnd(h.ProducerID, key.Type == kmsg.ControlRecordKeyTypeCommit)
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
			b.groups.LoadTxnOffset(key.Group, h.ProducerID, rec)
		} else {
			b.groups.LoadOffset(key.Group, rec)
		}
	case 2:
		var key kmsg.GroupMetadataKey
		if err := key.ReadFrom(r.Key); err != nil {
			return fmt.Errorf("%w: group metadata key: %v", ErrCorruptMessage, err)
		}
		if r.Value == nil {
			b.groups.LoadGroup(key.Group, nil)
			return nil
		}
		var val kmsg.GroupMetadataValue
		if err := val.ReadFrom(r.Value); err != nil {
			return fmt.Errorf("%w: group metadata of %q: %v", ErrCorruptMessage, key.Group, err)
		}
		b.groups.LoadGroup(key.Group, &val)
	}
	return nil
}

// Groups is the group coordinator.
func (b *Broker) Groups() *group.Manager { return b.groups }
