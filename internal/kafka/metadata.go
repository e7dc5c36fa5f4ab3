package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
)

// authorizedOperationsUnset is what Kafka sends when operations were not
// requested.
const authorizedOperationsUnset = -2147483648

func handleMetadata(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.SetVersion(h.version)
	s := c.s
	b := s.b
	resp.Brokers, resp.ControllerID = brokersAndController(s)
	cid := b.ClusterID()
	resp.ClusterID = &cid
	resp.AuthorizedOperations = authorizedOperationsUnset

	// One directory for the whole request: in a cluster it is the
	// controller's metadata as of now, so the answer is one consistent
	// state that shows every change acknowledged before it.
	dir := b.TopicDirectory()
	all := req.Topics == nil || (h.version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range dir.Topics() {
			resp.Topics = append(resp.Topics, topicMetadata(t))
		}
		for _, t := range b.Views() {
			resp.Topics = append(resp.Topics, topicMetadata(t.Layout()))
		}
		return respond(resp)
	}
	autoCreate := h.version < 4 || req.AllowAutoTopicCreation
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			// Lookup by id (v12+).
			t, ok := dir.TopicByID(rt.TopicID)
			if !ok {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			resp.Topics = append(resp.Topics, topicMetadata(t))
			continue
		}
		name := *rt.Topic
		t, ok := dir.Topic(name)
		var err error
		if !ok {
			if err = broker.ValidateTopicName(name); err == nil {
				if autoCreate {
					t, err = autoCreateTopic(b, name)
				} else {
					err = broker.ErrUnknownTopicOrPartition
				}
			}
		}
		if err != nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = &name
			mt.ErrorCode = errorCode(err)
			if errors.Is(err, broker.ErrInvalidTopic) {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, topicMetadata(t))
	}
	return respond(resp)
}

// autoCreateTopic creates the topic name and describes it. The request's
// directory predates the create, so a new one reads it back; that also
// covers another client creating it first, which in a cluster this node
// may not have in its own list yet.
func autoCreateTopic(b *broker.Broker, name string) (broker.TopicLayout, error) {
	if _, err := b.AutoCreateTopic(name); err != nil && !errors.Is(err, broker.ErrTopicExists) {
		return broker.TopicLayout{}, err
	}
	t, ok := b.TopicDirectory().Topic(name)
	if !ok {
		return t, fmt.Errorf("%w: topic %q not in the metadata after its auto-creation", broker.ErrUnknownTopicOrPartition, name)
	}
	return t, nil
}

func topicMetadata(t broker.TopicLayout) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = t.Internal
	mt.AuthorizedOperations = authorizedOperationsUnset
	for _, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Index
		mp.Leader, mp.LeaderEpoch, mp.Replicas, mp.ISR = p.Leader, p.Epoch, p.Replicas, p.ISR
		if mp.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// brokersAndController lists the nodes clients may connect to and the
// active controller: this node alone on a single node, every registered
// node in a cluster.
func brokersAndController(s *Server) ([]kmsg.MetadataResponseBroker, int32) {
	b := s.b
	host, port := s.advertised()
	self := kmsg.MetadataResponseBroker{NodeID: b.NodeID(), Host: host, Port: port}
	ctl := b.Cluster()
	if ctl == nil {
		return []kmsg.MetadataResponseBroker{self}, b.NodeID()
	}
	m := ctl.Metadata()
	out := []kmsg.MetadataResponseBroker{self}
	for _, id := range m.NodeIDs() {
		// Like Kafka, list only live brokers: clients pick "any broker"
		// requests from this list.
		if n := m.Nodes[id]; id != b.NodeID() && n.Live() {
			out = append(out, kmsg.MetadataResponseBroker{NodeID: id, Host: n.KafkaHost, Port: n.KafkaPort})
		}
	}
	controller := int32(ctl.Status().Leader)
	if controller == 0 {
		controller = -1
	}
	return out, controller
}
