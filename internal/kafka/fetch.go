package kafka

import (
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/broker"
)

// handleFetch runs on the writer goroutine: it may wait up to MaxWaitMillis
// for data, and responses leave in request order anyway.
func handleFetch(c *conn, h *requestHeader, r kmsg.Request) *pending {
	req := r.(*kmsg.FetchRequest)
	version := h.version
	return &pending{later: func(w *connWriter) kmsg.Response { return c.s.fetch(req, version, w) }}
}

func (s *Server) fetch(req *kmsg.FetchRequest, version int16, w *connWriter) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.SetVersion(version)
	useIDs := version >= 13

	var parts []*fetchPart
	var sess *fetchSession
	incremental := false
	fromRequest := func() []*fetchPart {
		var out []*fetchPart
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				out = append(out, &fetchPart{topic: rt.Topic, topicID: rt.TopicID, partition: rp.Partition,
					offset: rp.FetchOffset, maxBytes: rp.PartitionMaxBytes, leaderEpoch: rp.CurrentLeaderEpoch})
			}
		}
		return out
	}
	switch {
	case version < 7:
		parts = fromRequest()
	case req.SessionEpoch == -1:
		// A full fetch that ends the client's session (if any) and opens none.
		if req.SessionID != 0 {
			s.sessions.remove(req.SessionID)
		}
		parts = fromRequest()
	case req.SessionEpoch == 0:
		// A full fetch that replaces the client's session (if any) with a
		// new one.
		if req.SessionID != 0 {
			s.sessions.remove(req.SessionID)
		}
		parts = fromRequest()
		if sess = s.sessions.create(); sess != nil {
			sess.mu.Lock()
			defer sess.mu.Unlock()
			for _, p := range parts {
				sess.upsert(*p)
			}
			parts = sess.parts
			resp.SessionID = sess.id
		}
	case req.SessionID == 0:
		resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
		return resp
	default:
		sess = s.sessions.get(req.SessionID)
		if sess == nil {
			resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
			return resp
		}
		sess.mu.Lock()
		defer sess.mu.Unlock()
		if sess.epoch != req.SessionEpoch {
			resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
			return resp
		}
		for _, ft := range req.ForgottenTopics {
			for _, p := range ft.Partitions {
				sess.forget(partKey{ft.Topic, ft.TopicID, p})
			}
		}
		for _, p := range fromRequest() {
			sess.upsert(*p)
		}
		parts = sess.parts
		resp.SessionID = sess.id
		incremental = true
	}
	if sess != nil {
		sess.epoch++
		if sess.epoch < 0 {
			sess.epoch = 1
		}
	}

	// Resolve partitions once; the read loop below may run several times.
	resolved := make([]*broker.Partition, len(parts))
	var views []*broker.Topic // partitions of views, made on the first one
	errs := make([]int16, len(parts))
	for i, fp := range parts {
		var t *broker.Topic
		var ok bool
		if useIDs {
			if t, ok = s.b.TopicByID(fp.topicID); !ok {
				errs[i] = kerr.UnknownTopicID.Code
				continue
			}
		} else if t, ok = s.b.Topic(fp.topic); !ok {
			errs[i] = kerr.UnknownTopicOrPartition.Code
			continue
		}
		p, ok := t.Partition(fp.partition)
		if !ok {
			errs[i] = kerr.UnknownTopicOrPartition.Code
			continue
		}
		if err := p.Serving(); err != nil {
			errs[i] = errorCode(err)
			continue
		}
		if errs[i] = leaderEpochError(p, fp.leaderEpoch); errs[i] != 0 {
			continue
		}
		resolved[i] = p
		if t.IsView() {
			if views == nil {
				views = make([]*broker.Topic, len(parts))
			}
			views[i] = t
		}
	}

	type result struct {
		batches        []byte
		hw, lso, start int64
		err            int16
		aborted        []broker.AbortedTxn
	}
	results := make([]result, len(parts))
	deadline := s.clock.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	for {
		chans := make([]<-chan struct{}, 0, len(parts))
		for _, p := range resolved {
			if p != nil {
				chans = append(chans, p.Changed())
			}
		}
		buf := w.scratch[:0]
		total := 0
		anyErr := false
		for i, fp := range parts {
			res := &results[i]
			*res = result{err: errs[i], hw: -1, lso: -1, start: -1}
			p := resolved[i]
			if p == nil {
				anyErr = true
				continue
			}
			limit := int(min(fp.maxBytes, req.MaxBytes-int32(total)))
			minOne := total == 0
			if version < 3 {
				limit = int(fp.maxBytes)
			}
			if limit <= 0 && !minOne {
				res.hw, res.lso, res.start = p.HighWatermark(), p.LastStableOffset(), p.LogStartOffset()
				continue
			}
			before := len(buf)
			rr, err := p.Read(buf, fp.offset, max(limit, 0), minOne, req.IsolationLevel == 1)
			res.hw, res.lso, res.start = rr.HighWatermark, rr.LastStableOffset, rr.LogStartOffset
			if err != nil {
				res.err = errorCode(err)
				anyErr = true
				continue
			}
			buf = rr.Batches
			res.batches = buf[before:]
			res.aborted = rr.Aborted
			if views != nil && views[i] != nil {
				v := views[i]
				// A view's records are computed from what was read;
				// they go to a buffer of their own.
				computed, err := v.ApplyView(nil, res.batches)
				buf = buf[:before]
				if err != nil {
					res.batches, res.err, anyErr = nil, errorCode(err), true
					continue
				}
				res.batches = computed
			}
			total += len(res.batches)
		}
		if cap(buf) <= 16<<20 {
			w.scratch = buf[:0]
		}
		if total >= int(req.MinBytes) || anyErr || req.MaxWaitMillis <= 0 || len(chans) == 0 {
			break
		}
		remaining := deadline.Sub(s.clock.Now())
		if remaining <= 0 || !s.waitAny(chans, remaining) {
			break
		}
	}

	// Build the response, grouping partitions by topic in order.
	for i, fp := range parts {
		res := results[i]
		if incremental && fp.sent && len(res.batches) == 0 && res.err == fp.sentErr &&
			res.hw == fp.sentHW && res.lso == fp.sentLSO && res.start == fp.sentStart {
			continue // nothing new for this partition
		}
		fp.sent, fp.sentErr, fp.sentHW, fp.sentLSO, fp.sentStart = true, res.err, res.hw, res.lso, res.start
		n := len(resp.Topics)
		if n == 0 || resp.Topics[n-1].Topic != fp.topic || resp.Topics[n-1].TopicID != fp.topicID {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = fp.topic, fp.topicID
			resp.Topics = append(resp.Topics, rt)
			n++
		}
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = fp.partition
		rp.ErrorCode = res.err
		rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = res.hw, res.lso, res.start
		rp.PreferredReadReplica = -1
		rp.RecordBatches = res.batches
		if req.IsolationLevel == 1 {
			rp.AbortedTransactions = make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, 0, len(res.aborted))
			for _, a := range res.aborted {
				rp.AbortedTransactions = append(rp.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset})
			}
		}
		resp.Topics[n-1].Partitions = append(resp.Topics[n-1].Partitions, rp)
	}
	return resp
}

// waitAny blocks until one of chans is closed (true), the timeout passes or
// the server shuts down (false).
func (s *Server) waitAny(chans []<-chan struct{}, timeout time.Duration) bool {
	t := s.clock.NewTimer(timeout)
	defer t.Stop()
	if len(chans) == 1 {
		select {
		case <-chans[0]:
			return true
		case <-t.C():
			return false
		case <-s.done:
			return false
		}
	}
	cases := make([]reflect.SelectCase, 0, len(chans)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.C())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.done)})
	for _, ch := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	chosen, _, _ := reflect.Select(cases)
	return chosen >= 2
}
