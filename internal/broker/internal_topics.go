package broker

import (
	"errors"
	"fmt"

	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/storage"
)

// Weir's own topics, named and laid out as Kafka's so tooling recognizes
// them. Their records use Kafka's formats (kmsg OffsetCommitKey/Value,
// GroupMetadataKey/Value, TxnMetadataKey/Value).
const (
	OffsetsTopic     = "__consumer_offsets"
	TransactionTopic = "__transaction_state"
)

// internalTopicDefaults are the configs of the internal topics: compacted,
// as the latest record per key is the state.
var internalTopicDefaults = map[string]string{
	"cleanup.policy": "compact",
	"segment.bytes":  "104857600",
}

// ErrInternalTopic is returned when clients try to write to or delete one
// of Weir's own topics.
var ErrInternalTopic = fmt.Errorf("%w: internal topic", ErrInvalidTopic)

// internalPartition returns the partition of an internal topic that holds
// key, creating the topic on first use as Kafka does (so an idle broker
// never pays for coordinator partitions it does not need).
func (b *Broker) internalPartition(name, key string) (*Partition, error) {
	n := b.cfg.OffsetsTopicPartitions
	if name == TransactionTopic {
		n = b.cfg.TransactionTopicPartitions
	}
	t, err := b.ensureInternalTopic(name, n)
	if err != nil {
		return nil, err
	}
	return partitionFor(t, key), nil
}

// ensureInternalTopic creates an internal topic if it does not exist yet.
func (b *Broker) ensureInternalTopic(name string, partitions int32) (*Topic, error) {
	if t, ok := b.Topic(name); ok {
		return t, nil
	}
	configs := map[string]string{}
	for k, v := range internalTopicDefaults {
		configs[k] = v
	}
	t, err := b.CreateTopic(TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: -1, Configs: configs}, false)
	if errors.Is(err, ErrTopicExists) {
		if t, ok := b.Topic(name); ok {
			return t, nil
		}
	}
	return t, err
}

// javaStringHash is Java's String.hashCode, which Kafka uses to place a
// group or transactional id on a partition of its internal topic.
func javaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 { // a surrogate pair in UTF-16
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// partitionFor returns the internal topic partition that holds key's
// state, as Kafka chooses it: abs(hashCode) mod partitions.
func partitionFor(t *Topic, key string) *Partition {
	parts := t.Partitions()
	return parts[partitionIndex(key, int32(len(parts)))]
}

// partitionIndex is abs(hashCode(key)) mod n.
func partitionIndex(key string, n int32) int32 {
	h := javaStringHash(key)
	if h < 0 {
		h = -h
		if h < 0 { // MinInt32
			h = 0
		}
	}
	return h % n
}

// appendInternal writes a batch of the broker's own records and waits until
// it is durable.
func (p *Partition) appendInternal(opts record.BatchOptions, records []record.Record) (storage.AppendResult, error) {
	opts.FirstTimestamp = p.b.clock.Now().UnixMilli()
	if !opts.Transactional {
		// The broker's own records belong to no producer (0 is a real
		// producer id, so the zero value cannot mean "none").
		opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = -1, -1, -1
	}
	batch, err := record.Build(opts, records)
	if err != nil {
		return storage.AppendResult{}, err
	}
	if p.b.clustered() {
		return p.appendReplicated(batch)
	}
	p.mu.Lock()
	ar, err := p.log.Append(batch, p.LeaderEpoch(), 0)
	p.mu.Unlock()
	if err != nil {
		return ar, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	w := p.log.Durable(ar.LastOffset + 1)
	if !ar.Synced {
		if err := p.log.Sync(); err != nil {
			return ar, fmt.Errorf("%w: %v", ErrStorage, err)
		}
	}
	<-w.Done()
	if err := w.Err(); err != nil {
		return ar, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	return ar, nil
}

// forEachRecord replays a partition from its start: every record of every
// batch (control batches included, with their header) in offset order.
func (p *Partition) forEachRecord(fn func(h *record.Header, r *record.Record) error) error {
	off := p.log.LogStartOffset()
	end := p.log.LogEndOffset()
	var buf []byte
	for off < end {
		var err error
		buf, err = p.log.Read(buf[:0], off, storage.ReadOptions{MaxBytes: 4 << 20, MinOneBatch: true, UpToLogEnd: true})
		if err != nil {
			return err
		}
		if len(buf) == 0 {
			return nil
		}
		for b := buf; len(b) > 0; {
			size := record.PeekSize(b)
			if err := record.ForEachRecord(b[:size], p.b.decomp, func(h *record.Header, r *record.Record) error {
				if h.BaseOffset+int64(r.OffsetDelta) < off {
					return nil
				}
				return fn(h, r)
			}); err != nil {
				return err
			}
			off = max(off, record.PeekLastOffset(b)+1)
			b = b[size:]
		}
	}
	return nil
}
