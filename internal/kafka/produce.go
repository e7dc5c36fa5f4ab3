package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
	"github.com/weir-dev/weir/internal/record"
)

// handleProduce appends every partition's batch on the reader goroutine, so
// the connection's requests hit the log in the order they were sent, and
// leaves waiting for the fsync to the writer goroutine: the next request is
// read and appended while this one's fsync runs, and both share it.
func handleProduce(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	resp.SetVersion(h.version)
	b := c.s.b
	type waiting struct {
		part *kmsg.ProduceResponseTopicPartition
		wait *broker.Completion
	}
	var waits []waiting
	acksOK := req.Acks == 0 || req.Acks == 1 || req.Acks == -1
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.TopicID = rt.TopicID
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, 0, len(rt.Partitions))
		var topic *broker.Topic
		var topicErr error
		if acksOK {
			if t, ok := b.Topic(rt.Topic); ok && t.IsView() {
				topicErr = broker.ErrReadOnlyView
			} else if ok {
				topic = t
			} else if topicErr = broker.ValidateTopicName(rt.Topic); topicErr == nil {
				topic, topicErr = b.AutoCreateTopic(rt.Topic)
			}
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			sp.LogStartOffset = -1
			var res broker.ProduceResult
			var err error
			switch {
			case !acksOK:
				sp.ErrorCode = kerr.InvalidRequiredAcks.Code
			case topicErr != nil:
				err = topicErr
			default:
				if h.version >= 12 {
					err = c.implicitTxnAdd(rt.Topic, rp.Partition, rp.Records)
				}
				if err == nil {
					err = produceOne(topic, rp.Partition, rp.Records, &res)
				}
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				sp.ErrorMessage = errorMessage(err)
			} else if sp.ErrorCode == 0 {
				sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = res.BaseOffset, res.LogAppendTime, res.LogStartOffset
			}
			st.Partitions = append(st.Partitions, sp) // never reallocates: capacity is exact
			wait := res.Committed
			if req.Acks == 1 {
				wait = res.Local
			}
			if err == nil && wait != nil && req.Acks != 0 {
				waits = append(waits, waiting{part: &st.Partitions[len(st.Partitions)-1], wait: wait})
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks == 0 {
		return nil
	}
	if len(waits) == 0 {
		return respond(resp)
	}
	return &pending{later: func(*connWriter) kmsg.Response {
		for _, w := range waits {
			<-w.wait.Done()
			base, err := w.wait.Result()
			if err != nil {
				w.part.ErrorCode = errorCode(err)
				w.part.ErrorMessage = errorMessage(err)
				w.part.BaseOffset = -1
				continue
			}
			w.part.BaseOffset = base
		}
		return resp
	}}
}

// implicitTxnAdd registers a transactional batch's partition in its
// producer's transaction, as Produce v12+ does instead of AddPartitionsToTxn
// (KIP-890 part 2).
func (c *conn) implicitTxnAdd(topic string, partition int32, records []byte) error {
	if len(records) < record.HeaderSize {
		return nil // Produce answers the malformed batch
	}
	h, err := record.ParseHeader(records)
	if err != nil || !h.Transactional() || h.Control() || !h.Idempotent() {
		return nil
	}
	if _, err := c.s.b.Partition(topic, partition); err != nil {
		return err
	}
	txns := c.s.b.Transactions()
	if txns == nil {
		return nil // a cluster: transaction.version 2 is not offered there
	}
	return txns.AddPartitionImplicit(h.ProducerID, h.ProducerEpoch, topic, partition)
}

func produceOne(t *broker.Topic, partition int32, records []byte, res *broker.ProduceResult) error {
	p, ok := t.Partition(partition)
	if !ok {
		return broker.ErrUnknownTopicOrPartition
	}
	if len(records) == 0 {
		return broker.ErrCorruptMessage
	}
	var err error
	*res, err = p.Produce(records)
	return err
}
