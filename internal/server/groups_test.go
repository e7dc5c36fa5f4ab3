package server_test

// Consumer groups under churn, through three client libraries: records are
// produced while members join and leave; every record must be processed at
// least once, committed offsets must never move backwards, and the final
// commits must survive a broker restart.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	segkafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/server/servertest"
)

const (
	groupRecords    = 200_000
	groupPartitions = 6
	groupChunks     = 5 // the producer's phases; members join and leave between them
)

// memberProcess is called for every record a member hands to the
// application, in the member's own goroutine.
type memberProcess func(partition int32, offset int64, value []byte)

// startMember starts one group member that consumes topic from the start
// (when the group has no commit), calls process for each record and commits
// what it processed. The returned stop makes the member commit and leave the
// group, and returns once it has.
type startMember func(t *testing.T, addr, group, topic string, process memberProcess) (stop func())

func TestGroupChurnFranzGo(t *testing.T) {
	runGroupChurn(t, startFranzMember)
}

func TestGroupChurnSarama(t *testing.T) {
	// Kafka 1.0 is the oldest generation sarama runs groups with here
	// (JoinGroup v2, OffsetCommit v3); 2.8 is its default.
	for _, v := range []sarama.KafkaVersion{sarama.V2_8_0_0, sarama.V1_0_0_0} {
		t.Run(v.String(), func(t *testing.T) {
			runGroupChurn(t, func(t *testing.T, addr, group, topic string, process memberProcess) func() {
				return startSaramaMember(t, v, addr, group, topic, process)
			})
		})
	}
}

// kafka-go's commit loop for a new generation also takes the commits of
// messages fetched before the rebalance (reader.go, commitLoopInterval reads
// the reader's one commits channel), so a member can commit an older offset
// of a partition that moved to another member, with its current
// generation, which Kafka accepts as well. Committed offsets may therefore
// go back with kafka-go; the other checks stand.
func TestGroupChurnKafkaGo(t *testing.T) {
	runGroupChurnOpts(t, startKafkaGoMember, true)
}

// position is where a record sits: partition and offset.
type position struct {
	partition int32
	offset    int64
}

// processedSet records which of the produced records (value = its index)
// the members processed, how often and where they read it.
type processedSet struct {
	mu       sync.Mutex
	times    []int32
	at       []position
	distinct int
	total    int
	byMember map[string]int
	bad      []string
	all      chan struct{} // closed when every record was processed
}

func newProcessedSet(n int) *processedSet {
	return &processedSet{times: make([]int32, n), at: make([]position, n), byMember: map[string]int{}, all: make(chan struct{})}
}

func (s *processedSet) process(member string) memberProcess {
	return func(partition int32, offset int64, value []byte) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.total++
		s.byMember[member]++
		i, err := strconv.Atoi(string(value))
		if err != nil || i < 0 || i >= len(s.times) {
			s.bad = append(s.bad, fmt.Sprintf("%s read unexpected value %q at %d/%d", member, value, partition, offset))
			return
		}
		p := position{partition, offset}
		if s.times[i] == 0 {
			s.at[i] = p
			s.distinct++
			if s.distinct == len(s.times) {
				close(s.all)
			}
		} else if s.at[i] != p {
			s.bad = append(s.bad, fmt.Sprintf("%s read record %d at %v, earlier at %v", member, i, p, s.at[i]))
		}
		s.times[i]++
	}
}

func (s *processedSet) count(member string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byMember[member]
}

// offsetWatch polls a group's committed offsets until stopped and records
// any partition whose commit moved backwards.
type offsetWatch struct {
	stop    chan struct{}
	done    chan struct{}
	samples int
	last    map[int32]int64
	back    []string
}

func watchCommits(ctx context.Context, adm *kadm.Client, group, topic string) *offsetWatch {
	w := &offsetWatch{stop: make(chan struct{}), done: make(chan struct{}), last: map[int32]int64{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if offs, err := adm.FetchOffsets(ctx, group); err == nil {
				w.samples++
				offs.Each(func(o kadm.OffsetResponse) {
					if o.Topic != topic || o.Err != nil || o.At < 0 {
						return
					}
					if prev, ok := w.last[o.Partition]; ok && o.At < prev {
						w.back = append(w.back, fmt.Sprintf("partition %d: %d after %d", o.Partition, o.At, prev))
					}
					w.last[o.Partition] = o.At
				})
			}
			select {
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// finish stops the watch; its fields may be read afterwards.
func (w *offsetWatch) finish() {
	close(w.stop)
	<-w.done
}

// waitFor polls cond until it holds, failing the test at ctx's deadline.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-tick.C:
		}
	}
}

// groupSettled reports whether the group is Stable with want members that
// share all partitions of topic, each owning at least one.
func groupSettled(ctx context.Context, adm *kadm.Client, group, topic string, want int) bool {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return false
	}
	g, ok := described[group]
	if !ok || g.Err != nil || g.State != "Stable" || len(g.Members) != want {
		return false
	}
	owned := 0
	for _, m := range g.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			return false
		}
		mine := 0
		for _, at := range a.Topics {
			if at.Topic == topic {
				mine += len(at.Partitions)
			}
		}
		if mine == 0 {
			return false
		}
		owned += mine
	}
	return owned == groupPartitions
}

// runGroupChurn produces groupRecords records in groupChunks phases while
// the group changes: member a joins alone, b and c join one after the
// other, a leaves, d joins. The first four phases' records are produced
// while that phase's membership change is under way; the last once d owns
// partitions, so that every member processes something.
func runGroupChurn(t *testing.T, start startMember) { runGroupChurnOpts(t, start, false) }

// runGroupChurnOpts is runGroupChurn; staleCommits says the client may
// commit offsets of partitions it no longer owns (then a committed offset
// going back is logged, not a failure).
func runGroupChurnOpts(t *testing.T, start startMember, staleCommits bool) {
	n := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic, group = "churn", "churners"
	adm := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(n.Addr())))
	defer adm.Close()
	if _, err := adm.CreateTopic(ctx, groupPartitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}

	// The producer: chunk c waits for gates[c].
	gates := make([]chan struct{}, groupChunks)
	for i := range gates {
		gates[i] = make(chan struct{})
	}
	acked := make([]position, groupRecords)
	var produceErr error
	var produceMu sync.Mutex
	produced := make(chan struct{})
	p := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond))
	defer p.Close()
	go func() {
		defer close(produced)
		per := groupRecords / groupChunks
		for c := range groupChunks {
			select {
			case <-gates[c]:
			case <-ctx.Done():
				return
			}
			for i := c * per; i < (c+1)*per; i++ {
				v := []byte(strconv.Itoa(i))
				p.Produce(ctx, &kgo.Record{Key: v, Value: v}, func(r *kgo.Record, err error) {
					produceMu.Lock()
					defer produceMu.Unlock()
					if err != nil {
						produceErr = err
						return
					}
					acked[i] = position{r.Partition, r.Offset}
				})
			}
		}
		if err := p.Flush(ctx); err != nil {
			produceMu.Lock()
			produceErr = err
			produceMu.Unlock()
		}
	}()

	processed := newProcessedSet(groupRecords)
	watch := watchCommits(ctx, adm, group, topic)
	stops := map[string]func(){}
	join := func(name string) { stops[name] = start(t, n.Addr(), group, topic, processed.process(name)) }
	leave := func(name string) {
		stops[name]()
		delete(stops, name)
	}
	defer func() { // on failure
		for _, stop := range stops {
			stop()
		}
	}()
	settled := func(members int) {
		waitFor(ctx, t, fmt.Sprintf("the group is stable with %d members", members), func() bool {
			return groupSettled(ctx, adm, group, topic, members)
		})
	}

	join("a")
	close(gates[0])
	waitFor(ctx, t, "member a processed a record", func() bool { return processed.count("a") > 0 })
	join("b")
	close(gates[1])
	settled(2)
	join("c")
	close(gates[2])
	settled(3)
	close(gates[3])
	leave("a") // mid-stream: its partitions move while chunk 3 is produced
	settled(2)
	join("d")
	settled(3)
	close(gates[4]) // after d owns partitions, so every member gets records

	select {
	case <-produced:
	case <-ctx.Done():
		t.Fatal("producer did not finish")
	}
	if produceErr != nil {
		t.Fatalf("produce: %v", produceErr)
	}
	select {
	case <-processed.all:
	case <-ctx.Done():
		processed.mu.Lock()
		distinct := processed.distinct
		processed.mu.Unlock()
		t.Fatalf("only %d of %d records were processed", distinct, groupRecords)
	}
	for _, name := range []string{"b", "c", "d"} {
		leave(name)
	}
	watch.finish()

	produceMu.Lock() // the promises are done; this orders their writes before the reads
	defer produceMu.Unlock()
	processed.mu.Lock()
	for _, b := range processed.bad[:min(len(processed.bad), 10)] {
		t.Error(b)
	}
	for i, at := range processed.at {
		if at != acked[i] {
			t.Fatalf("record %d was produced at %v but read at %v", i, acked[i], at)
		}
	}
	t.Logf("processed %d records (%d distinct); per member %v; %d offset samples",
		processed.total, processed.distinct, processed.byMember, watch.samples)
	for _, name := range []string{"a", "b", "c", "d"} {
		if processed.byMember[name] == 0 {
			t.Errorf("member %s processed nothing", name)
		}
	}
	processed.mu.Unlock()
	for _, b := range watch.back {
		if staleCommits {
			t.Logf("committed offset went backwards (a stale commit, which this client makes): %s", b)
			continue
		}
		t.Errorf("committed offset went backwards: %s", b)
	}
	if watch.samples < 10 {
		t.Errorf("only %d offset samples taken", watch.samples)
	}

	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	checkGroupDone(ctx, t, adm, group, ends)
	n.Restart()
	adm2 := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(n.Addr())))
	defer adm2.Close()
	checkGroupDone(ctx, t, adm2, group, ends)
}

// checkGroupDone checks that group has no members left and that its commit
// of every partition in ends is the partition's end offset.
func checkGroupDone(ctx context.Context, t *testing.T, adm *kadm.Client, group string, ends kadm.ListedOffsets) {
	t.Helper()
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if g := described[group]; g.Err != nil || g.State != "Empty" || len(g.Members) != 0 {
		t.Errorf("group after every member left: state %q, %d members (%v)", g.State, len(g.Members), g.Err)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := offs.Lookup(e.Topic, e.Partition)
		switch {
		case !ok || o.Err != nil:
			t.Errorf("partition %d: no commit (%v)", e.Partition, o.Err)
		case o.At != e.Offset:
			t.Errorf("partition %d: committed %d, end offset %d", e.Partition, o.At, e.Offset)
		}
		checked++
	})
	if checked != groupPartitions {
		t.Fatalf("%d end offsets listed, want %d", checked, groupPartitions)
	}
}

// franz-go: autocommit (every 100 ms and on revoke) of polled records, which
// the member has processed by the time it polls again.
func startFranzMember(t *testing.T, addr, group, topic string, process memberProcess) func() {
	cl := mustFranz(t, kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.HeartbeatInterval(100*time.Millisecond),
		kgo.AutoCommitInterval(100*time.Millisecond), kgo.FetchMaxWait(200*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachError(func(topic string, partition int32, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Logf("franz-go fetch %s/%d: %v", topic, partition, err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) { process(r.Partition, r.Offset, r.Value) })
		}
	}()
	return func() {
		cancel()
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Errorf("franz-go final commit: %v", err)
		}
		cl.Close() // leaves the group
	}
}

// sarama: MarkMessage after processing; autocommit every 100 ms, a commit
// in Cleanup at every rebalance and one when the group is closed.
func startSaramaMember(t *testing.T, version sarama.KafkaVersion, addr, group, topic string, process memberProcess) func() {
	cfg := sarama.NewConfig()
	cfg.Version = version
	cfg.ClientID = "weir-groups"
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cfg.Consumer.Group.Heartbeat.Interval = 100 * time.Millisecond
	cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, errsDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range cg.Errors() {
			t.Logf("sarama: %v", err)
		}
	}()
	go func() {
		defer close(done)
		h := saramaHandler{process: process}
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				t.Logf("sarama consume: %v", err)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		if err := cg.Close(); err != nil {
			t.Errorf("sarama close: %v", err)
		}
		<-errsDone
	}
}

type saramaHandler struct{ process memberProcess }

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error { return nil }

func (saramaHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	return nil
}

func (h saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return nil
			}
			h.process(m.Partition, m.Offset, m.Value)
			s.MarkMessage(m, "")
		case <-s.Context().Done():
			return nil
		}
	}
}

// kafka-go: FetchMessage, process, then CommitMessages, which the reader
// sends every 100 ms and at the end of each generation.
func startKafkaGoMember(t *testing.T, addr, group, topic string, process memberProcess) func() {
	r := segkafka.NewReader(segkafka.ReaderConfig{
		Brokers: []string{addr}, GroupID: group, Topic: topic, StartOffset: segkafka.FirstOffset,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 200 * time.Millisecond,
		CommitInterval: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
		JoinGroupBackoff: 100 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("kafka-go fetch: %v", err)
				}
				return
			}
			process(int32(m.Partition), m.Offset, m.Value)
			if err := r.CommitMessages(context.Background(), m); err != nil {
				t.Errorf("kafka-go commit: %v", err)
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
		if err := r.Close(); err != nil { // commits what is pending, then leaves
			t.Errorf("kafka-go close: %v", err)
		}
	}
}
