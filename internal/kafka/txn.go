package kafka

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
)

// Coordinator key types of FindCoordinator.
const (
	coordinatorGroup = 0
	coordinatorTxn   = 1
)

// handleFindCoordinator answers that this node coordinates every group and
// transactional id: a single node leads every internal partition.
func handleFindCoordinator(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	resp.SetVersion(h.version)
	host, port := c.s.advertised()
	node := c.s.b.NodeID()
	check := func(key string) (int16, *string) {
		switch {
		case req.CoordinatorType != coordinatorGroup && req.CoordinatorType != coordinatorTxn:
			return kerr.InvalidRequest.Code, errorMessage(errors.New("unknown coordinator type"))
		case key == "" && req.CoordinatorType == coordinatorGroup:
			return kerr.InvalidGroupID.Code, nil
		case key == "":
			return kerr.InvalidRequest.Code, errorMessage(errors.New("empty transactional id"))
		}
		return 0, nil
	}
	locate := func(key string) (int32, string, int32, int16, *string) {
		code, msg := check(key)
		if code != 0 || c.s.b.Cluster() == nil {
			return node, host, port, code, msg
		}
		find := c.s.b.GroupCoordinatorNode
		if req.CoordinatorType == coordinatorTxn {
			find = c.s.b.TxnCoordinatorNode
		}
		id, err := find(key)
		if err != nil {
			return -1, "", -1, kerr.CoordinatorNotAvailable.Code, errorMessage(err)
		}
		n, ok := c.s.b.Cluster().Metadata().Nodes[id]
		if !ok {
			return -1, "", -1, kerr.CoordinatorNotAvailable.Code, errorMessage(fmt.Errorf("node %d is not registered", id))
		}
		return id, n.KafkaHost, n.KafkaPort, 0, nil
	}
	if h.version < 4 {
		resp.NodeID, resp.Host, resp.Port, resp.ErrorCode, resp.ErrorMessage = locate(req.CoordinatorKey)
		if resp.ErrorCode != 0 {
			resp.NodeID, resp.Host, resp.Port = -1, "", -1
		}
		return respond(resp)
	}
	for _, key := range req.CoordinatorKeys {
		co := kmsg.NewFindCoordinatorResponseCoordinator()
		co.Key = key
		co.NodeID, co.Host, co.Port, co.ErrorCode, co.ErrorMessage = locate(key)
		if co.ErrorCode != 0 {
			co.NodeID, co.Host, co.Port = -1, "", -1
		}
		resp.Coordinators = append(resp.Coordinators, co)
	}
	return respond(resp)
}

// initTxnProducerID serves InitProducerID for a transactional id.
func initTxnProducerID(c *conn, req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) {
	if *req.TransactionalID == "" {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return
	}
	txns, err := c.s.b.TxnCoordinatorFor(*req.TransactionalID)
	var pid int64
	var epoch int16
	if err == nil {
		pid, epoch, err = txns.InitProducerID(*req.TransactionalID,
			time.Duration(req.TransactionTimeoutMillis)*time.Millisecond, req.ProducerID, req.ProducerEpoch)
	}
	resp.ErrorCode = txnErrorCode(err, req.Version, 4)
	if err == nil {
		resp.ProducerID, resp.ProducerEpoch = pid, epoch
	}
}

// txnErrorCode maps coordinator errors. PRODUCER_FENCED (KIP-588) exists
// from version fencedSince of each API; older clients know fencing only as
// INVALID_PRODUCER_EPOCH.
func txnErrorCode(err error, version, fencedSince int16) int16 {
	if errors.Is(err, broker.ErrProducerFenced) && version < fencedSince {
		return kerr.InvalidProducerEpoch.Code
	}
	return errorCode(err)
}

func handleAddPartitionsToTxn(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.AddPartitionsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	resp.SetVersion(h.version)
	var parts []broker.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, broker.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	txns, err := c.s.b.TxnCoordinatorFor(req.TransactionalID)
	if err == nil {
		err = txns.AddPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts, false)
	}
	code := txnErrorCode(err, h.version, 2)
	if errors.Is(err, broker.ErrUnknownTopicOrPartition) {
		code = kerr.UnknownTopicOrPartition.Code
	}
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition = p
			rp.ErrorCode = code
			if code == kerr.UnknownTopicOrPartition.Code {
				if _, perr := c.s.b.Partition(t.Topic, p); perr == nil {
					rp.ErrorCode = kerr.OperationNotAttempted.Code
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return respond(resp)
}

func handleAddOffsetsToTxn(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	resp.SetVersion(h.version)
	txns, err := c.s.b.TxnCoordinatorFor(req.TransactionalID)
	if err == nil {
		err = txns.AddOffsets(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)
	}
	resp.ErrorCode = txnErrorCode(err, h.version, 2)
	return respond(resp)
}

func handleEndTxn(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.EndTxnRequest)
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.SetVersion(h.version)
	// Markers are written and fsynced before the answer: off the reader.
	version := h.version
	return &pending{later: func(*connWriter) kmsg.Response {
		// v5+ (KIP-890 part 2) bumps the epoch at every end.
		txns, err := c.s.b.TxnCoordinatorFor(req.TransactionalID)
		var pid int64
		var epoch int16
		if err == nil {
			pid, epoch, err = txns.EndTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, version >= 5)
		}
		resp.ErrorCode = txnErrorCode(err, version, 2)
		resp.ProducerID, resp.ProducerEpoch = pid, epoch
		return resp
	}}
}

func handleDescribeTransactions(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.DescribeTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	resp.SetVersion(h.version)
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		txns, err := c.s.b.TxnCoordinatorFor(id)
		if err != nil {
			st.ErrorCode = errorCode(err)
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		ti, ok := txns.Describe([]string{id})[id]
		if !ok {
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State = ti.State.String()
		st.TimeoutMillis = int32(ti.Timeout / time.Millisecond)
		st.StartTimestamp = -1
		if !ti.Start.IsZero() {
			st.StartTimestamp = ti.Start.UnixMilli()
		}
		st.ProducerID, st.ProducerEpoch = ti.ProducerID, ti.Epoch
		for topic, parts := range ti.Partitions {
			slices.Sort(parts)
			st.Topics = append(st.Topics, kmsg.DescribeTransactionsResponseTransactionStateTopic{Topic: topic, Partitions: parts})
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return respond(resp)
}

func handleListTransactions(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.ListTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	resp.SetVersion(h.version)
	now := c.s.clock.Now()
	var all []broker.TxnInfo
	for _, txns := range c.s.b.TxnCoordinators() {
		all = append(all, txns.List()...)
	}
	slices.SortFunc(all, func(a, b broker.TxnInfo) int { return strings.Compare(a.ID, b.ID) })
	for _, ti := range all {
		state := ti.State.String()
		if len(req.StateFilters) > 0 && !slices.Contains(req.StateFilters, state) {
			continue
		}
		if len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, ti.ProducerID) {
			continue
		}
		if req.DurationFilterMillis > 0 && (ti.Start.IsZero() || now.Sub(ti.Start) < time.Duration(req.DurationFilterMillis)*time.Millisecond) {
			continue
		}
		ts := kmsg.NewListTransactionsResponseTransactionState()
		ts.TransactionalID, ts.ProducerID, ts.TransactionState = ti.ID, ti.ProducerID, state
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return respond(resp)
}

func handleDescribeProducers(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.DescribeProducersRequest)
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	resp.SetVersion(h.version)
	for _, t := range req.Topics {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		for _, pi := range t.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = pi
			p, err := c.s.b.Partition(t.Topic, pi)
			if err != nil {
				rp.ErrorCode, rp.ErrorMessage = errorCode(err), errorMessage(err)
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			for _, ps := range p.ProducerStates() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID, ap.ProducerEpoch, ap.LastSequence = ps.ID, int32(ps.Epoch), ps.LastSequence
				ap.LastTimestamp, ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = ps.LastTimestamp, 0, ps.TxnStartOffset
				rp.ActiveProducers = append(rp.ActiveProducers, ap)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return respond(resp)
}

// handleWriteTxnMarkers is the partition leader's side of a transaction's
// end in a cluster: the coordinator (on any node) asks the leaders to
// write the commit or abort markers.
func handleWriteTxnMarkers(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.WriteTxnMarkersRequest)
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	resp.SetVersion(h.version)
	// Markers are replicated and fsynced before the answer: off the reader.
	return &pending{later: func(*connWriter) kmsg.Response {
		for _, m := range req.Markers {
			rm := kmsg.NewWriteTxnMarkersResponseMarker()
			rm.ProducerID = m.ProducerID
			for _, t := range m.Topics {
				rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
					rp.Partition = p
					rp.ErrorCode = errorCode(c.s.b.WriteMarkerAsLeader(t.Topic, p, m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch))
					rt.Partitions = append(rt.Partitions, rp)
				}
				rm.Topics = append(rm.Topics, rt)
			}
			resp.Markers = append(resp.Markers, rm)
		}
		return resp
	}}
}
