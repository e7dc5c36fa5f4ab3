package streams

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/record"
)

// ErrNotLocal is what Source.Produce returns for a partition this node
// does not lead: its records go through the Kafka client instead.
var ErrNotLocal = errors.New("partition not led by this node")

// maxOutputBatch bounds an output batch written straight to a local
// partition (well under the default max.message.bytes).
const maxOutputBatch = 256 << 10

// outputs collects one chunk's output records. A record whose partition
// this node leads is encoded into a batch for that partition and appended
// through the broker's produce path (validation, idempotence rules,
// replication) without a trip through the Kafka protocol; the rest go
// through the engine's Kafka client. Keys are placed on partitions as the
// Kafka client places them (murmur2), so both ways agree.
type outputs struct {
	src      Source
	parters  map[string]kgo.TopicPartitioner
	batches  map[topicPartition]*record.BatchBuilder
	order    []topicPartition
	sendList            // what finish hands over
	probe    kgo.Record // what the partitioner looks at, reused
	count    int
	numParts map[string]int32
}

type topicPartition struct {
	topic     string
	partition int32
}

type localBatch struct {
	tp    topicPartition
	batch []byte
}

func newOutputs(src Source) *outputs {
	return &outputs{src: src, parters: map[string]kgo.TopicPartitioner{}, batches: map[topicPartition]*record.BatchBuilder{},
		numParts: map[string]int32{}}
}

// reset starts a chunk.
func (o *outputs) reset() {
	o.order, o.sendList, o.count = o.order[:0], sendList{}, 0
	clear(o.numParts)
	for _, p := range o.parters {
		if nb, ok := p.(kgo.TopicPartitionerOnNewBatch); ok {
			nb.OnNewBatch() // keyless records move on, as a client's sticky batches do
		}
	}
}

// add routes one record. key, value and header values are copied.
func (o *outputs) add(topic string, ts int64, key, value []byte, headers []record.RecordHeader) {
	o.count++
	n := o.partitions(topic)
	if n <= 0 { // not known here (yet): the client creates or finds it
		o.client = appendClient(o.client, topic, ts, key, value, headers)
		return
	}
	o.probe.Key = key
	tp := topicPartition{topic, int32(o.partitioner(topic).Partition(&o.probe, int(n)))}
	b := o.builder(tp)
	b.Add(ts, key, value, headers)
	if b.Size() >= maxOutputBatch {
		o.ready = append(o.ready, localBatch{tp, b.Finish()})
	}
}

// builder returns the batch being filled for tp.
func (o *outputs) builder(tp topicPartition) *record.BatchBuilder {
	b := o.batches[tp]
	if b == nil {
		b = &record.BatchBuilder{}
		o.batches[tp] = b
	}
	if b.Len() == 0 {
		o.order = append(o.order, tp)
	}
	return b
}

// addBatch routes a whole stored batch of n records (keyless: without
// keys) as it is, if its records all go to one partition of topic;
// false if they would not, and the caller adds them one by one.
func (o *outputs) addBatch(topic string, batch []byte, n int, keyless bool) bool {
	parts := o.partitions(topic)
	if parts <= 0 || (parts > 1 && !keyless) {
		return false
	}
	o.count += n
	o.probe.Key = nil
	tp := topicPartition{topic, int32(o.partitioner(topic).Partition(&o.probe, int(parts)))}
	if b := o.batches[tp]; b != nil && b.Len() > 0 {
		o.ready = append(o.ready, localBatch{tp, b.Finish()}) // what came before goes first
	}
	o.ready = append(o.ready, localBatch{tp, record.Reissue(batch)})
	return true
}

func (o *outputs) partitions(topic string) int32 {
	n, ok := o.numParts[topic]
	if !ok {
		n = o.src.Partitions(topic)
		o.numParts[topic] = n
	}
	return n
}

func (o *outputs) partitioner(topic string) kgo.TopicPartitioner {
	p := o.parters[topic]
	if p == nil {
		p = kgo.StickyKeyPartitioner(nil).ForTopic(topic)
		o.parters[topic] = p
	}
	return p
}

// appendClient adds a copy of a record to a list for the Kafka client.
func appendClient(list []*kgo.Record, topic string, ts int64, key, value []byte, headers []record.RecordHeader) []*kgo.Record {
	rec := &kgo.Record{Topic: topic, Key: cloneOrNil(key), Value: cloneOrNil(value), Timestamp: time.UnixMilli(ts)}
	for _, h := range headers {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: cloneOrNil(h.Value)})
	}
	return append(list, rec)
}

// finish closes the chunk's batches and hands over its outputs.
func (o *outputs) finish() sendList {
	for _, tp := range o.order {
		if b := o.batches[tp]; b.Len() > 0 {
			o.ready = append(o.ready, localBatch{tp, b.Finish()})
		}
	}
	o.order = o.order[:0]
	l := o.sendList
	o.sendList = sendList{}
	return l
}

// sendList is a chunk's outputs: batches for partitions led here (as far
// as the chunk knew), in the order they filled, and records for the client.
type sendList struct {
	ready  []localBatch
	client []*kgo.Record
}

// send writes the outputs and returns a wait for all of them and whether
// any went through the client. A batch for a partition that turns out not
// to be led here goes to its leader as it is, in a produce request of its
// own, and has landed when send returns; if that fails, through the
// client record by record.
func (l *sendList) send(ctx context.Context, src Source, cl *kgo.Client) (wait func(context.Context) error, viaClient bool, err error) {
	var waits []func(context.Context) error
	var d *record.Decompressor
	for _, lb := range l.ready {
		w, err := src.Produce(lb.tp.topic, lb.tp.partition, lb.batch)
		if errors.Is(err, ErrNotLocal) && forward(ctx, cl, lb) == nil {
			continue
		}
		if errors.Is(err, ErrNotLocal) {
			if d == nil { // a batch kept whole may be compressed
				d = record.NewDecompressor()
				defer d.Close()
			}
			if err := record.ForEachRecord(lb.batch, d, func(h *record.Header, r *record.Record) error {
				l.client = appendClient(l.client, lb.tp.topic, h.FirstTimestamp+r.TimestampDelta, r.Key, r.Value, r.Headers)
				return nil
			}); err != nil {
				return nil, false, err
			}
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("write %s/%d: %w", lb.tp.topic, lb.tp.partition, err)
		}
		waits = append(waits, w)
	}
	var cw *clientWait
	if len(l.client) > 0 {
		cw = &clientWait{}
		cw.wg.Add(len(l.client))
		for _, rec := range l.client {
			cl.Produce(ctx, rec, cw.done)
		}
	}
	return func(ctx context.Context) error {
		var first error
		for _, w := range waits {
			if err := w(ctx); err != nil && first == nil {
				first = err
			}
		}
		if cw != nil {
			cw.wg.Wait()
			if first == nil {
				first = cw.err
			}
		}
		return first
	}, cw != nil, nil
}

// forward writes a batch to its partition's leader on another node: one
// acks=all produce request, answered once the batch is committed there.
// Order is kept because send waits for each answer before the next batch.
func forward(ctx context.Context, cl *kgo.Client, lb localBatch) error {
	topic := lb.tp.topic
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	md, err := cl.RequestCachedMetadata(ctx, mreq, 0)
	if err != nil {
		return err
	}
	leader := int32(-1)
	for _, t := range md.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		for _, p := range t.Partitions {
			if p.Partition == lb.tp.partition && p.ErrorCode == 0 {
				leader = p.Leader
			}
		}
	}
	if leader < 0 {
		return fmt.Errorf("%s/%d has no known leader", topic, lb.tp.partition)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, int32(finishTimeout/time.Millisecond)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = lb.tp.partition, lb.batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return fmt.Errorf("produce to %s/%d: answer for %d topics", topic, lb.tp.partition, len(resp.Topics))
	}
	return nil
}

// clientWait follows records sent through the Kafka client.
type clientWait struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (c *clientWait) done(_ *kgo.Record, err error) {
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	c.wg.Done()
}
