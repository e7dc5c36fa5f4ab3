package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// WorkloadConfig describes the clients a Workload runs. Zero fields take the
// defaults shown.
type WorkloadConfig struct {
	Brokers           []string
	Topic             string        // "chaos"
	Partitions        int32         // 12
	ReplicationFactor int16         // 3
	Producers         int           // 4
	Rate              int           // records per second per producer: 100
	Group             string        // "chaos-group"
	MetaClients       int           // 3 concurrent metadata clients
	MetaTopics        int           // 3 topics meta-0.. they create and delete
	MetaTimeout       time.Duration // 5s per metadata operation
	ObserveEvery      time.Duration // 500ms between high watermark polls
	TxnID             string        // the transactional producer's transactional ID: "chaos-txn"
	TxnRecords        int           // records per transaction: 5; negative: no transactional producer
	TxnEvery          time.Duration // 150ms: mean pause between transactions (uniform in ±1/3 of it)
	TxnOpTimeout      time.Duration // 10s: bounds a transaction's produces, and its EndTransaction
	Seed              uint64        // seeds the metadata clients' and the transactional producer's choices
	Logf              func(format string, args ...any)
}

func (c *WorkloadConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = "chaos"
	}
	if c.Partitions == 0 {
		c.Partitions = 12
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 3
	}
	if c.Producers == 0 {
		c.Producers = 4
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
	if c.Group == "" {
		c.Group = "chaos-group"
	}
	if c.MetaClients == 0 {
		c.MetaClients = 3
	}
	if c.MetaTopics == 0 {
		c.MetaTopics = 3
	}
	if c.MetaTimeout == 0 {
		c.MetaTimeout = 5 * time.Second
	}
	if c.ObserveEvery == 0 {
		c.ObserveEvery = 500 * time.Millisecond
	}
	if c.TxnID == "" {
		c.TxnID = "chaos-txn"
	}
	if c.TxnRecords == 0 {
		c.TxnRecords = 5
	}
	if c.TxnEvery == 0 {
		c.TxnEvery = 150 * time.Millisecond
	}
	if c.TxnOpTimeout == 0 {
		c.TxnOpTimeout = 10 * time.Second
	}
}

// Workload drives the cluster and records a History:
//
//   - Producers idempotent acks=all producers write unique values
//     p<producer>-<seq>, seq counting up, round robin over the partitions;
//     every attempt and every acknowledgement is recorded.
//   - One consumer in the group polls read_committed and commits; after each
//     successful commit an OffsetFetch records the committed offsets.
//   - An observer records ListOffsets (latest) for every partition.
//   - Metadata clients create, delete and list the topics meta-<k>, one
//     request per operation (client retries off), recording invocation and
//     return times and the outcome. Lists are read from the node that names
//     itself controller.
//   - A transactional producer (one transactional ID) writes transactions
//     of a few records t<txn>-<i> to random partitions of the same topic,
//     one transaction at a time, committing most and aborting about one in
//     three; each transaction's records, offsets and outcome are recorded.
//   - ReadAll, after Stop, reads every partition from the start to its high
//     watermark.
type Workload struct {
	cfg    WorkloadConfig
	origin time.Time // zero of MetaOp times; carries a monotonic reading

	stop        context.CancelFunc // ends the loops
	stopProduce context.CancelFunc // fails records still buffered
	loops       sync.WaitGroup     // producers' issuing loops
	others      sync.WaitGroup     // consumer, observer, metadata clients
	producers   []*kgo.Client

	mu struct {
		sync.Mutex
		h      History
		errors map[string]int
	}
}

// NewWorkload makes a workload; nothing runs until Start.
func NewWorkload(cfg WorkloadConfig) *Workload {
	cfg.setDefaults()
	w := &Workload{cfg: cfg, origin: time.Now()}
	w.mu.errors = make(map[string]int)
	return w
}

// Config is the configuration with defaults filled in.
func (w *Workload) Config() WorkloadConfig { return w.cfg }

func (w *Workload) logf(format string, args ...any) {
	if w.cfg.Logf != nil {
		w.cfg.Logf(format, args...)
	}
}

// noteError counts an error by kind, for the summary.
func (w *Workload) noteError(what string, err error) {
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120] + "..."
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.mu.errors) < 200 {
		w.mu.errors[what+": "+msg]++
	}
}

// Errors counts the client errors seen, by operation and message.
func (w *Workload) Errors() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.mu.errors))
	for k, v := range w.mu.errors {
		out[k] = v
	}
	return out
}

// History returns what was recorded. Call it after Stop (and ReadAll).
func (w *Workload) History() History {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.h
}

// Counts reports how many records were attempted, acknowledged and failed
// so far.
func (w *Workload) Counts() (attempted, acked, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.mu.h.Attempts), len(w.mu.h.Acks), w.mu.h.Failed
}

func (w *Workload) since() time.Duration { return time.Since(w.origin) }

func (w *Workload) client(opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(w.cfg.Brokers...),
		kgo.DialTimeout(3 * time.Second),
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.MetadataMaxAge(5 * time.Second),
	}
	return kgo.NewClient(append(base, opts...)...)
}

// CreateTopic creates the workload's topic, retrying until it exists or ctx
// ends.
func (w *Workload) CreateTopic(ctx context.Context) error {
	cl, err := w.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		_, err := adm.CreateTopic(ctx, w.cfg.Partitions, w.cfg.ReplicationFactor, nil, w.cfg.Topic)
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			break
		}
		w.logf("chaos: create topic %s: %v (retrying)", w.cfg.Topic, err)
		if !pause(ctx, 500*time.Millisecond) {
			return fmt.Errorf("create topic %s: %w", w.cfg.Topic, errors.Join(err, ctx.Err()))
		}
	}
	// Wait until every partition has a leader, so the run starts from a
	// working cluster.
	for {
		md, err := adm.Metadata(ctx, w.cfg.Topic)
		if err == nil {
			td := md.Topics[w.cfg.Topic]
			ready := td.Err == nil && int32(len(td.Partitions)) == w.cfg.Partitions
			for _, p := range td.Partitions {
				ready = ready && p.Err == nil && p.Leader >= 0
			}
			if ready {
				return nil
			}
		}
		if !pause(ctx, 250*time.Millisecond) {
			return fmt.Errorf("wait for leaders of %s: %w", w.cfg.Topic, ctx.Err())
		}
	}
}

// Start starts every client. They run until Stop.
func (w *Workload) Start() error {
	loopCtx, stop := context.WithCancel(context.Background())
	produceCtx, stopProduce := context.WithCancel(context.Background())
	w.stop, w.stopProduce = stop, stopProduce

	for k := range w.cfg.Producers {
		cl, err := w.client(
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.MaxBufferedRecords(256),
			kgo.ProducerLinger(5*time.Millisecond),
			kgo.ProduceRequestTimeout(10*time.Second),
			kgo.UnknownTopicRetries(-1),
		)
		if err != nil {
			w.Stop()
			return err
		}
		w.producers = append(w.producers, cl)
		w.loops.Add(1)
		go w.produceLoop(loopCtx, produceCtx, k, cl)
	}

	consumer, err := w.client(
		kgo.ConsumerGroup(w.cfg.Group),
		kgo.ConsumeTopics(w.cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.SessionTimeout(10*time.Second),
	)
	if err != nil {
		w.Stop()
		return err
	}
	w.others.Add(1)
	go w.consumeLoop(loopCtx, consumer)

	observer, err := w.client()
	if err != nil {
		w.Stop()
		return err
	}
	w.others.Add(1)
	go w.observeLoop(loopCtx, observer)

	rng := rand.New(rand.NewPCG(w.cfg.Seed, 0x6d657461))
	for k := range w.cfg.MetaClients {
		// One request per operation: a client-side retry of a create
		// that had already applied would come back "already exists"
		// and look like a linearizability violation.
		cl, err := w.client(kgo.RequestRetries(0))
		if err != nil {
			w.Stop()
			return err
		}
		w.others.Add(1)
		go w.metaLoop(loopCtx, k, cl, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
	}

	if w.cfg.TxnRecords > 0 {
		txnRng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		w.others.Add(1)
		go w.txnLoop(loopCtx, txnRng)
	}
	return nil
}

// Stop ends every client: producers stop issuing, then get up to 15 s to
// have their buffered records acknowledged; records still unanswered then
// are failed (they stay "attempted").
func (w *Workload) Stop() {
	if w.stop == nil {
		return
	}
	w.stop()
	flushCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	var flushes sync.WaitGroup
	for _, cl := range w.producers {
		flushes.Add(1)
		go func() {
			defer flushes.Done()
			if err := cl.Flush(flushCtx); err != nil {
				w.noteError("flush", err)
			}
		}()
	}
	flushes.Wait()
	cancel()
	w.stopProduce()
	w.loops.Wait()
	for _, cl := range w.producers {
		cl.Close()
	}
	w.producers = nil
	w.others.Wait()
	w.stop = nil
}

func (w *Workload) produceLoop(loopCtx, produceCtx context.Context, k int, cl *kgo.Client) {
	defer w.loops.Done()
	tick := time.NewTicker(time.Second / time.Duration(w.cfg.Rate))
	defer tick.Stop()
	for seq := int64(0); ; seq++ {
		select {
		case <-loopCtx.Done():
			return
		case <-tick.C:
		}
		if loopCtx.Err() != nil {
			return
		}
		part := int32((int64(k) + seq) % int64(w.cfg.Partitions))
		value := ProducerValue(k, seq)
		sent := time.Now()
		w.mu.Lock()
		w.mu.h.Attempts = append(w.mu.h.Attempts, Attempt{Value: value, Partition: part, Sent: sent})
		w.mu.Unlock()
		rec := &kgo.Record{Topic: w.cfg.Topic, Partition: part, Value: []byte(value)}
		cl.Produce(produceCtx, rec, func(r *kgo.Record, err error) {
			if err != nil {
				w.mu.Lock()
				w.mu.h.Failed++
				w.mu.Unlock()
				w.noteError("produce", err)
				return
			}
			a := Ack{Partition: r.Partition, Offset: r.Offset, Value: value, Sent: sent, Acked: time.Now()}
			w.mu.Lock()
			w.mu.h.Acks = append(w.mu.h.Acks, a)
			w.mu.Unlock()
		})
	}
}

func (w *Workload) consumeLoop(ctx context.Context, cl *kgo.Client) {
	defer w.others.Done()
	defer cl.Close()
	adm := kadm.NewClient(cl)
	last := make(map[int32]int64)
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(_ string, _ int32, err error) { w.noteError("fetch", err) })
		var reads []Read
		fs.EachRecord(func(r *kgo.Record) {
			reads = append(reads, Read{Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
		})
		if len(reads) == 0 {
			continue
		}
		w.mu.Lock()
		w.mu.h.Consumed = append(w.mu.h.Consumed, reads...)
		w.mu.Unlock()

		opCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := cl.CommitUncommittedOffsets(opCtx)
		if err != nil {
			w.noteError("commit", err)
			cancel()
			continue
		}
		offs, err := adm.FetchOffsets(opCtx, w.cfg.Group)
		cancel()
		if err != nil {
			w.noteError("offset fetch", err)
			continue
		}
		at := time.Now()
		var commits []Commit
		for p, o := range offs[w.cfg.Topic] {
			if o.Err != nil || o.At < 0 {
				continue
			}
			if prev, ok := last[p]; ok && prev == o.At {
				continue
			}
			last[p] = o.At
			commits = append(commits, Commit{Partition: p, Offset: o.At, At: at})
		}
		slices.SortFunc(commits, func(a, b Commit) int { return int(a.Partition - b.Partition) })
		w.mu.Lock()
		w.mu.h.Commits = append(w.mu.h.Commits, commits...)
		w.mu.Unlock()
	}
}

func (w *Workload) observeLoop(ctx context.Context, cl *kgo.Client) {
	defer w.others.Done()
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tick := time.NewTicker(w.cfg.ObserveEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		opCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		w.observe(opCtx, adm)
		cancel()
	}
}

// observe records one ListOffsets (latest) answer per partition and returns
// the offsets it got.
func (w *Workload) observe(ctx context.Context, adm *kadm.Client) map[int32]int64 {
	offs, err := adm.ListEndOffsets(ctx, w.cfg.Topic)
	if err != nil {
		w.noteError("list offsets", err)
		if offs == nil {
			return nil
		}
	}
	at := time.Now()
	got := make(map[int32]int64)
	var marks []Watermark
	for p, o := range offs[w.cfg.Topic] {
		if o.Err != nil || p < 0 || o.Offset < 0 {
			continue
		}
		got[p] = o.Offset
		marks = append(marks, Watermark{Partition: p, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, At: at})
	}
	slices.SortFunc(marks, func(a, b Watermark) int { return int(a.Partition - b.Partition) })
	w.mu.Lock()
	w.mu.h.Watermarks = append(w.mu.h.Watermarks, marks...)
	w.mu.Unlock()
	return got
}

// txnClient makes a client for the transactional producer. Transactional
// clients are idempotent and produce with acks=all.
func (w *Workload) txnClient() (*kgo.Client, error) {
	return w.client(
		kgo.TransactionalID(w.cfg.TxnID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProduceRequestTimeout(w.cfg.TxnOpTimeout),
		kgo.UnknownTopicRetries(-1),
	)
}

// txnLoop runs one transaction at a time until ctx ends; a transaction under
// way when it ends is finished (committed or aborted) first, so that no
// transaction is left open to hold back the last stable offset of the final
// read. After an error the client cannot recover from, it is closed and a new
// one made: the new one's InitProducerId fences the old producer epoch, which
// ends whatever the old one left open.
func (w *Workload) txnLoop(ctx context.Context, rng *rand.Rand) {
	defer w.others.Done()
	var cl *kgo.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	jitter := int64(w.cfg.TxnEvery / 3)
	for id := int64(0); ; {
		if !pause(ctx, w.cfg.TxnEvery-time.Duration(jitter)+time.Duration(rng.Int64N(2*jitter+1))) {
			return
		}
		// The choices come first, so that they do not depend on
		// what failed.
		abort := rng.IntN(3) == 0
		parts := make([]int32, w.cfg.TxnRecords)
		for i := range parts {
			parts[i] = rng.Int32N(w.cfg.Partitions)
		}
		if cl == nil {
			c, err := w.txnClient()
			if err != nil {
				w.noteError("txn client", err)
				continue
			}
			cl = c
		}
		if err := cl.BeginTransaction(); err != nil {
			w.noteError("txn begin", err)
			cl.Close()
			cl = nil
			continue
		}
		t, healthy := w.runTxn(cl, id, abort, parts)
		id++
		w.mu.Lock()
		w.mu.h.Txns = append(w.mu.h.Txns, t)
		w.mu.Unlock()
		if !healthy {
			cl.Close()
			cl = nil
		}
	}
}

// runTxn produces one transaction's records, to the partitions given, and
// ends it: with TryCommit unless abort is set or a produce failed. It
// reports false if the client is left in a state it should not be reused
// from.
func (w *Workload) runTxn(cl *kgo.Client, id int64, abort bool, parts []int32) (Txn, bool) {
	t := Txn{ID: id, ChoseAbort: abort, Began: time.Now()}
	recs := make([]*kgo.Record, len(parts))
	index := make(map[*kgo.Record]int, len(parts))
	for i, p := range parts {
		v := TxnValue(id, i)
		recs[i] = &kgo.Record{Topic: w.cfg.Topic, Partition: p, Value: []byte(v)}
		index[recs[i]] = i
		t.Records = append(t.Records, TxnRecord{Value: v, Partition: p, Offset: -1})
	}
	produceCtx, cancel := context.WithTimeout(context.Background(), w.cfg.TxnOpTimeout)
	results := cl.ProduceSync(produceCtx, recs...)
	cancel()
	for _, res := range results { // in the order they completed
		i, ok := index[res.Record]
		if !ok {
			continue
		}
		if res.Err != nil {
			t.ProduceFailed = true
			t.Records[i].Err = res.Err.Error()
			w.noteError("txn produce", res.Err)
			continue
		}
		t.Records[i].Offset = res.Record.Offset
	}
	if len(results) != len(recs) {
		t.ProduceFailed = true // cannot happen: ProduceSync answers every record
	}

	commit := !abort && !t.ProduceFailed
	err := w.endTxn(cl, kgo.TransactionEndTry(commit))
	if commit && errors.Is(err, kerr.OperationNotAttempted) {
		// The producer ID had failed, so the commit was never
		// sent; as franz-go documents, retry as an abort.
		w.noteError("txn commit", err)
		commit = false
		err = w.endTxn(cl, kgo.TryAbort)
	}
	t.Ended = time.Now()
	switch {
	case commit && err == nil:
		t.Outcome = TxnCommitted
	case commit:
		t.Outcome = TxnUnknown
	default:
		t.Outcome = TxnAborted
	}
	if err == nil {
		return t, true
	}
	t.EndErr = err.Error()
	w.noteError("txn end", err)
	// franz-go's documented recovery after a failed EndTransaction is a
	// retry with TryAbort: after an unconfirmed outcome it re-initializes
	// the producer ID, bumping the epoch, which aborts the transaction
	// unless the commit already got as far as the coordinator's
	// PrepareCommit (hence "unknown").
	if err := w.endTxn(cl, kgo.TryAbort); err != nil {
		w.noteError("txn abort retry", err)
		return t, false
	}
	return t, true
}

// endTxn ends the current transaction, bounded by TxnOpTimeout.
func (w *Workload) endTxn(cl *kgo.Client, how kgo.TransactionEndTry) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.TxnOpTimeout)
	defer cancel()
	return cl.EndTransaction(ctx, how)
}

// MetaTopicName is the k'th topic the metadata clients work on.
func MetaTopicName(k int) string { return fmt.Sprintf("meta-%d", k) }

func (w *Workload) metaLoop(ctx context.Context, client int, cl *kgo.Client, rng *rand.Rand) {
	defer w.others.Done()
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(w.cfg.MetaTimeout / time.Millisecond))
	names := make([]string, w.cfg.MetaTopics)
	for k := range names {
		names[k] = MetaTopicName(k)
	}
	ctrl := int32(-1) // the node that last named itself controller
	for ctx.Err() == nil {
		opCtx, cancel := context.WithTimeout(ctx, w.cfg.MetaTimeout+2*time.Second)
		var ops []MetaOp
		switch n := rng.IntN(7); {
		case n < 2:
			ops = w.metaWrite(opCtx, client, MetaCreate, names[rng.IntN(len(names))], adm)
		case n < 4:
			ops = w.metaWrite(opCtx, client, MetaDelete, names[rng.IntN(len(names))], adm)
		default:
			ops = w.metaList(opCtx, client, names, cl, &ctrl)
		}
		cancel()
		w.mu.Lock()
		w.mu.h.MetaOps = append(w.mu.h.MetaOps, ops...)
		w.mu.Unlock()
		pause(ctx, time.Duration(20+rng.IntN(80))*time.Millisecond)
	}
}

func (w *Workload) metaWrite(ctx context.Context, client int, kind MetaKind, topic string, adm *kadm.Client) []MetaOp {
	op := MetaOp{Client: client, Kind: kind, Topic: topic, Call: w.since()}
	var err error
	if kind == MetaCreate {
		// One partition, one replica: the controller can place it
		// whatever nodes are down, so a create is refused only for
		// reasons that say something about the topic set.
		_, err = adm.CreateTopic(ctx, 1, 1, nil, topic)
	} else {
		_, err = adm.DeleteTopic(ctx, topic)
	}
	op.Return = w.since()
	op.Result = classifyMeta(kind, err)
	if err != nil && op.Result != MetaAlreadyExists && op.Result != MetaUnknownTopic {
		op.Err = err.Error()
		w.noteError("meta "+kind.String(), err)
	}
	return []MetaOp{op}
}

// metaList asks whether each topic exists, in one uncached Metadata request
// without auto-creation, and records one MetaDescribe per topic. The request
// goes to the node that names itself the controller: any other broker may
// answer from a lagging copy of the metadata (as Kafka brokers do), which is
// not a linearizable read and says nothing about the controller. An answer
// from a node that no longer names itself controller is ambiguous.
func (w *Workload) metaList(ctx context.Context, client int, names []string, cl *kgo.Client, ctrl *int32) []MetaOp {
	ops := make([]MetaOp, 0, len(names))
	fail := func(call, ret time.Duration, err error) []MetaOp {
		w.noteError("meta list", err)
		*ctrl = -1
		for _, n := range names {
			ops = append(ops, MetaOp{Client: client, Kind: MetaDescribe, Topic: n, Call: call, Return: ret,
				Result: MetaAmbiguous, Err: err.Error()})
		}
		return ops
	}
	if *ctrl < 0 {
		resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		if err != nil {
			return fail(w.since(), w.since(), err)
		}
		if resp.ControllerID < 0 {
			return fail(w.since(), w.since(), errors.New("no controller in metadata"))
		}
		*ctrl = resp.ControllerID
	}
	asked := *ctrl
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	for _, n := range names {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, t)
	}
	call := w.since()
	raw, err := cl.Broker(int(asked)).Request(ctx, req)
	ret := w.since()
	if err != nil {
		return fail(call, ret, err)
	}
	resp := raw.(*kmsg.MetadataResponse)
	if resp.ControllerID != asked {
		*ctrl = resp.ControllerID
		return fail(call, ret, fmt.Errorf("node %d no longer names itself controller (says %d)", asked, resp.ControllerID))
	}
	codes := make(map[string]int16)
	for _, t := range resp.Topics {
		if t.Topic != nil {
			codes[*t.Topic] = t.ErrorCode
		}
	}
	for _, n := range names {
		op := MetaOp{Client: client, Kind: MetaDescribe, Topic: n, Call: call, Return: ret, Result: MetaAmbiguous}
		code, ok := codes[n]
		switch {
		case !ok:
			op.Err = "topic missing from the metadata response"
		case code == 0:
			op.Result = MetaOK
		case code == kerr.UnknownTopicOrPartition.Code:
			op.Result = MetaUnknownTopic
		default:
			op.Err = kerr.ErrorForCode(code).Error()
		}
		ops = append(ops, op)
	}
	return ops
}

// classifyMeta maps a create or delete outcome to a MetaResult. Only answers
// that say what the controller did are definite; anything else (timeouts,
// lost connections, NOT_CONTROLLER, which a forwarding broker may return
// after the controller accepted the request) is ambiguous.
func classifyMeta(kind MetaKind, err error) MetaResult {
	var dial *net.OpError
	switch {
	case err == nil:
		return MetaOK
	case kind == MetaCreate && errors.Is(err, kerr.TopicAlreadyExists):
		return MetaAlreadyExists
	case kind == MetaDelete && errors.Is(err, kerr.UnknownTopicOrPartition):
		return MetaUnknownTopic
	case errors.Is(err, kerr.InvalidReplicationFactor), errors.Is(err, kerr.InvalidPartitions),
		errors.Is(err, kerr.InvalidTopicException), errors.Is(err, kerr.PolicyViolation),
		errors.Is(err, kerr.InvalidRequest), errors.Is(err, kerr.InvalidConfig),
		errors.Is(err, kerr.TopicDeletionDisabled), errors.Is(err, kerr.UnsupportedVersion),
		errors.Is(err, kerr.InvalidReplicaAssignment):
		return MetaFailed
	case errors.As(err, &dial) && dial.Op == "dial":
		// Never reached a broker; with retries off there was no
		// earlier attempt either.
		return MetaFailed
	}
	return MetaAmbiguous
}

// ReadAll reads every partition from its start to its high watermark,
// read_committed, into History.Final. It first waits (up to half of ctx's
// time, at most 30 s) for each high watermark to cover the partition's
// highest acknowledged offset (transactional records included), so a leader that has not caught up yet is not
// taken for data loss. It returns an error naming partitions it could not
// read to the end before ctx ended; what it read is recorded regardless.
func (w *Workload) ReadAll(ctx context.Context) error {
	w.mu.Lock()
	need := make(map[int32]int64)
	for _, a := range append(slices.Clone(w.mu.h.Acks), TxnAcks(w.mu.h.Txns)...) {
		need[a.Partition] = max(need[a.Partition], a.Offset+1)
	}
	w.mu.Unlock()

	cl, err := w.client()
	if err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	wait := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/2)
	}
	targetCtx, cancel := context.WithTimeout(ctx, wait)
	target := make(map[int32]int64)
	for {
		for p, o := range w.observe(targetCtx, adm) {
			target[p] = max(target[p], o)
		}
		covered := int32(len(target)) == w.cfg.Partitions
		for p, n := range need {
			covered = covered && target[p] >= n
		}
		if covered || !pause(targetCtx, 500*time.Millisecond) {
			break
		}
	}
	cancel()
	cl.Close()
	for p := range w.cfg.Partitions {
		if _, ok := target[p]; !ok {
			// No answer for this partition: read at least what
			// was acknowledged.
			target[p] = need[p]
		}
	}

	parts := make(map[int32]kgo.Offset)
	for p := range w.cfg.Partitions {
		parts[p] = kgo.NewOffset().AtStart()
	}
	// Control records (transaction markers) are kept only to follow the
	// read position: a partition can end in a marker, or in aborted
	// records and their marker, which a read_committed reader does not
	// see otherwise.
	reader, err := w.client(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.cfg.Topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer reader.Close()
	next := make(map[int32]int64)
	seen := make(map[Read]bool)
	done := func() bool {
		for p, t := range target {
			if next[p] < t {
				return false
			}
		}
		return true
	}
	for !done() && ctx.Err() == nil {
		fs := reader.PollFetches(ctx)
		var reads []Read
		fs.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
			if r.Attrs.IsControl() {
				return
			}
			x := Read{Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)}
			if !seen[x] {
				seen[x] = true
				reads = append(reads, x)
			}
		})
		w.mu.Lock()
		w.mu.h.Final = append(w.mu.h.Final, reads...)
		w.mu.Unlock()
	}
	if done() {
		return nil
	}
	var short []string
	for p := range w.cfg.Partitions {
		if next[p] < target[p] {
			short = append(short, fmt.Sprintf("%d (read to %d of %d)", p, next[p], target[p]))
		}
	}
	sort.Strings(short)
	return fmt.Errorf("final read incomplete: partitions %s: %w", strings.Join(short, ", "), ctx.Err())
}

// pause waits for d, for pacing a client against a real cluster; it returns
// false if ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
