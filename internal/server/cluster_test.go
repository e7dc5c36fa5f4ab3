package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/config"
	"github.com/weir-dev/weir/internal/server/servertest"
)

func clusterClient(t *testing.T, nodes []*servertest.Node, opts ...kgo.Opt) *kgo.Client {
	var seeds []string
	for _, n := range nodes {
		if n.Running() {
			seeds = append(seeds, n.Addr())
		}
	}
	// A short metadata age: franz-go sends "any broker" requests to the
	// brokers it last heard of, and a stopped node stays among them until
	// the next refresh.
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RetryTimeout(time.Minute), kgo.MetadataMinAge(100 * time.Millisecond), kgo.MetadataMaxAge(time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestClusterReplicatesAndFailsOver runs three nodes, writes to a topic
// with three replicas, stops the leader of a partition, keeps writing and
// reads everything back: every acknowledged record is there, once, at the
// offset it was acknowledged at.
func TestClusterReplicatesAndFailsOver(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, nil)
	servertest.WaitReady(t, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	adm := kadm.NewClient(clusterClient(t, nodes))
	if _, err := adm.CreateTopic(ctx, 4, 3, nil, "replicated"); err != nil {
		t.Fatal(err)
	}
	md, err := adm.Metadata(ctx, "replicated")
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 3 || md.Controller < 1 {
		t.Fatalf("metadata: brokers %v, controller %d", md.Brokers, md.Controller)
	}
	for _, p := range md.Topics["replicated"].Partitions {
		if len(p.Replicas) != 3 {
			t.Fatalf("partition %d replicas %v", p.Partition, p.Replicas)
		}
	}

	type ack struct {
		partition int32
		offset    int64
	}
	var mu sync.Mutex
	acked := map[string]ack{}
	produce := func(cl *kgo.Client, from, n int) {
		var wg sync.WaitGroup
		for i := from; i < from+n; i++ {
			v := fmt.Sprintf("v%06d", i)
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: "replicated", Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					t.Errorf("produce %s: %v", v, err)
					return
				}
				mu.Lock()
				acked[v] = ack{r.Partition, r.Offset}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	producer := clusterClient(t, nodes, kgo.RequiredAcks(kgo.AllISRAcks()))
	produce(producer, 0, 2000)

	// Stop the leader of partition 0 and keep writing through the others.
	leader := leaderOf(ctx, t, adm, "replicated", 0)
	nodes[leader-1].Stop()
	produce(producer, 2000, 2000)
	if t.Failed() {
		return
	}

	nodes[leader-1].Start()
	consumer := clusterClient(t, nodes, kgo.ConsumeTopics("replicated"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]ack{}
	for len(seen) < len(acked) {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", len(seen), len(acked), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s-%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			if prev, dup := seen[v]; dup {
				t.Errorf("%s read twice: at %d/%d and %d/%d", v, prev.partition, prev.offset, r.Partition, r.Offset)
			}
			seen[v] = ack{r.Partition, r.Offset}
		})
	}
	for v, a := range acked {
		if got, ok := seen[v]; !ok || got != a {
			t.Fatalf("%s acknowledged at %v, read at %v (present %v)", v, a, got, ok)
		}
	}
}

// leaderOf asks the cluster (over Kafka Metadata) for a partition's
// leader until one is known.
func leaderOf(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, p int32) int32 {
	t.Helper()
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if l := md.Topics[topic].Partitions[p].Leader; l > 0 {
				return l
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no leader for %s-%d: %v", topic, p, err)
		}
		time.Sleep(20 * time.Millisecond) // retrying a request to a real cluster
	}
}

// TestClusterGroupOffsetsFailOver commits a consumer group's offsets,
// stops the group's coordinator and reads the offsets back from the new
// one, then resumes consuming where the group left off.
func TestClusterGroupOffsetsFailOver(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, nil)
	servertest.WaitReady(t, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(clusterClient(t, nodes))
	if _, err := adm.CreateTopic(ctx, 3, 3, nil, "g"); err != nil {
		t.Fatal(err)
	}
	producer := clusterClient(t, nodes)
	for i := range 300 {
		if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "g", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consume := func(n int) {
		t.Helper()
		cl := clusterClient(t, nodes, kgo.ConsumerGroup("cg"), kgo.ConsumeTopics("g"), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		got := 0
		for got < n {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d", got, n)
			}
			got += fs.NumRecords()
		}
		if got != n {
			t.Fatalf("consumed %d, want %d (committed offsets not honored)", got, n)
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	consume(300)
	ends, err := adm.ListEndOffsets(ctx, "g")
	if err != nil || ends.Error() != nil {
		t.Fatalf("end offsets: %v %v", err, ends.Error())
	}
	described, err := adm.DescribeGroups(ctx, "cg")
	if err != nil {
		t.Fatal(err)
	}
	coord := described["cg"].Coordinator.NodeID
	if coord < 1 {
		t.Fatalf("no coordinator in %+v", described["cg"])
	}
	nodes[coord-1].Stop()
	adm = kadm.NewClient(clusterClient(t, nodes))
	var offs kadm.OffsetResponses
	for {
		offs, err = adm.FetchOffsets(ctx, "cg")
		if err == nil && offs.Error() == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("fetch offsets after coordinator %d stopped: %v / %v", coord, err, offs.Error())
		}
		time.Sleep(20 * time.Millisecond) // retrying a request to a real cluster
	}
	// Committed offsets are the partitions' ends (Raft's own entries take
	// offsets too, so the ends are not record counts).
	committed := 0
	offs.Each(func(o kadm.OffsetResponse) {
		committed++
		if e, ok := ends.Lookup("g", o.Partition); !ok || o.At != e.Offset {
			t.Errorf("partition %d: committed %d after failover, end offset %d", o.Partition, o.At, e.Offset)
		}
	})
	if committed == 0 {
		t.Fatal("no committed offsets after failover")
	}
	for i := 300; i < 330; i++ {
		if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "g", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consume(30)
}

// waitReplicas polls Metadata until every partition of topic has
// three in-sync replicas, none on the excluded node.
func waitReplicas(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, excluded int32) {
	t.Helper()
	for {
		md, err := adm.Metadata(ctx, topic)
		ok := err == nil && len(md.Topics[topic].Partitions) > 0
		if ok {
			for _, p := range md.Topics[topic].Partitions {
				if len(p.Replicas) != 3 || len(p.ISR) != 3 || p.Leader < 0 || slices.Contains(p.Replicas, excluded) {
					ok = false
				}
			}
		}
		if ok {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never left node %d: %v %+v", topic, excluded, err, md.Topics[topic].Partitions)
		}
		time.Sleep(50 * time.Millisecond) // retrying a request to a real cluster
	}
}

// TestClusterHealsAndDrains stops a node for longer than heal-after: its
// replicas are re-created on the others. Then a node is decommissioned
// over the admin API and its replicas move away. No record is lost.
func TestClusterHealsAndDrains(t *testing.T) {
	nodes := servertest.StartCluster(t, 4, func(_ int, c *config.Config) { c.HealAfter = time.Second })
	servertest.WaitReady(t, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(clusterClient(t, nodes))
	if _, err := adm.CreateTopic(ctx, 4, 3, nil, "heal"); err != nil {
		t.Fatal(err)
	}
	producer := clusterClient(t, nodes)
	produced := 0
	produce := func(n int) {
		t.Helper()
		for range n {
			if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "heal", Value: []byte(fmt.Sprint(produced))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			produced++
		}
	}
	produce(400)

	nodes[3].Stop()
	waitReplicas(ctx, t, kadm.NewClient(clusterClient(t, nodes)), "heal", 4)
	produce(100)

	resp, err := http.Post("http://"+nodes[0].HTTPAddr()+"/v1/nodes/3/decommission", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("decommission: %s", resp.Status)
	}
	nodes[3].Start() // back, but node 3 is draining: replicas go to 4
	waitReplicas(ctx, t, kadm.NewClient(clusterClient(t, nodes)), "heal", 3)
	produce(100)
	// Drained, node 3 leaves: Metadata stops listing it.
	adm = kadm.NewClient(clusterClient(t, nodes))
	for {
		md, err := adm.BrokerMetadata(ctx)
		if err == nil && len(md.Brokers) == 3 && !slices.ContainsFunc(md.Brokers, func(b kadm.BrokerDetail) bool { return b.NodeID == 3 }) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("node 3 still listed: %v %v", md.Brokers, err)
		}
		time.Sleep(50 * time.Millisecond) // retrying a request to a real cluster
	}

	consumer := clusterClient(t, nodes, kgo.ConsumeTopics("heal"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	for len(seen) < produced {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(seen), produced)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
}

// TestClusterNodeJoins starts a fourth node with the three seeds: it
// registers, replicates the metadata, takes replicas of a new topic and
// serves them.
func TestClusterNodeJoins(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, nil)
	servertest.WaitReady(t, nodes...)
	joiner := servertest.JoinCluster(t, nodes, 4, nil)
	servertest.WaitReady(t, joiner)
	all := append(nodes, joiner)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(clusterClient(t, all))
	if _, err := adm.CreateTopic(ctx, 8, 3, nil, "joined"); err != nil {
		t.Fatal(err)
	}
	var md kadm.Metadata
	for { // the other nodes apply the new topic a moment later
		var err error
		md, err = adm.Metadata(ctx, "joined")
		if err == nil && len(md.Topics["joined"].Partitions) == 8 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("metadata of joined: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // retrying a request to a real cluster
	}
	held := 0
	for _, p := range md.Topics["joined"].Partitions {
		if slices.Contains(p.Replicas, 4) {
			held++
		}
	}
	if len(md.Brokers) != 4 || held == 0 {
		t.Fatalf("brokers %v; node 4 holds %d partitions", md.Brokers, held)
	}
	// Through the new node only.
	cl := clusterClient(t, []*servertest.Node{joiner})
	for i := range 200 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "joined", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumer := clusterClient(t, []*servertest.Node{joiner}, kgo.ConsumeTopics("joined"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < 200 {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 200", got)
		}
		got += fs.NumRecords()
	}
}

// TestClusterSarama runs IBM sarama (another client family) against a
// three-node cluster: an idempotent acks=all producer keeps writing while
// a partition leader stops, then a sarama consumer reads every record
// back, once.
func TestClusterSarama(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, nil)
	servertest.WaitReady(t, nodes...)
	addrs := func() []string {
		var a []string
		for _, n := range nodes {
			if n.Running() {
				a = append(a, n.Addr())
			}
		}
		return a
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Producer.Retry.Max = 100
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Net.MaxOpenRequests = 1
	cfg.Metadata.Retry.Max = 100
	cfg.Consumer.Return.Errors = true
	admin, err := sarama.NewClusterAdmin(addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic("sarama", &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := leaderOf(ctx, t, kadm.NewClient(clusterClient(t, nodes)), "sarama", 0)

	p, err := sarama.NewAsyncProducer(addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	const total = 3000
	acked := make(chan struct{}, total)
	errs := make(chan error, total)
	go func() {
		for {
			select {
			case _, ok := <-p.Successes():
				if !ok {
					return
				}
				acked <- struct{}{}
			case e, ok := <-p.Errors():
				if !ok {
					return
				}
				errs <- e
			}
		}
	}()
	for i := range total {
		if i == total/3 {
			for range total / 3 { // a third acknowledged, then the leader goes
				select {
				case <-acked:
				case err := <-errs:
					t.Fatal(err)
				}
			}
			nodes[leader-1].Stop()
		}
		p.Input() <- &sarama.ProducerMessage{Topic: "sarama", Value: sarama.StringEncoder(fmt.Sprintf("s%05d", i))}
	}
	for range total - total/3 {
		select {
		case <-acked:
		case err := <-errs:
			t.Fatalf("produce across the leader stop: %v", err)
		case <-ctx.Done():
			t.Fatal("producer stalled")
		}
	}
	p.Close()

	c, err := sarama.NewConsumer(addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seen := map[string]int{}
	msgs := make(chan *sarama.ConsumerMessage)
	cerrs := make(chan error, 3)
	for part := range int32(3) {
		pc, err := c.ConsumePartition("sarama", part, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					select {
					case msgs <- m:
					case <-ctx.Done():
						return
					}
				case e, ok := <-pc.Errors():
					if ok {
						cerrs <- e
					}
					return
				}
			}
		}()
	}
	for read := 0; read < total; read++ {
		select {
		case m := <-msgs:
			seen[string(m.Value)]++
		case err := <-cerrs:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatalf("read stalled at %d records", read)
		}
	}
	for i := range total {
		if v := fmt.Sprintf("s%05d", i); seen[v] != 1 {
			t.Fatalf("%s read %d times", v, seen[v])
		}
	}
}

// TestClusterTransactions commits and aborts transactions across
// partitions led by different nodes, stops the transaction coordinator
// between transactions, and reads with read_committed: exactly the
// committed records.
func TestClusterTransactions(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, nil)
	servertest.WaitReady(t, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(clusterClient(t, nodes))
	if _, err := adm.CreateTopic(ctx, 3, 3, nil, "txn"); err != nil {
		t.Fatal(err)
	}
	var want []string
	run := func(from int, commit bool) {
		t.Helper()
		cl := clusterClient(t, nodes, kgo.TransactionalID("tx-1"), kgo.DefaultProduceTopic("txn"),
			kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
		defer cl.Close()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := from; i < from+30; i++ {
			v := fmt.Sprintf("t%03d", i)
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if commit {
				want = append(want, v)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction (commit %v): %v", commit, err)
		}
	}
	run(0, true)
	run(30, false)
	// Stop the coordinator of tx-1; the next transaction goes to the new one.
	var coord int32 = -1
	adm.FindTxnCoordinators(ctx, "tx-1").Each(func(c kadm.FindCoordinatorResponse) {
		if c.Err == nil {
			coord = c.NodeID
		}
	})
	if coord < 1 {
		t.Fatal("no transaction coordinator for tx-1")
	}
	nodes[coord-1].Stop()
	run(60, true)
	run(90, false)
	nodes[coord-1].Start()

	consumer := clusterClient(t, nodes, kgo.ConsumeTopics("txn"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := map[string]bool{}
	for len(got) < len(want) {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d committed records", len(got), len(want))
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
	}
	for v := range got {
		if !slices.Contains(want, v) {
			t.Fatalf("read %s, which was aborted", v)
		}
	}
	// The aborted records of 30-59 lie before the committed 60-89 in every
	// partition, so reading all committed ones went past them.
}

// TestClusterTransactionalOffsets runs franz-go's consume-transform-produce
// session against a cluster: offsets committed inside transactions reach
// the group (whose coordinator may be on another node than the
// transaction's) when the transactions commit.
func TestClusterTransactionalOffsets(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, nil)
	servertest.WaitReady(t, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(clusterClient(t, nodes))
	if _, err := adm.CreateTopics(ctx, 3, 3, nil, "in", "out"); err != nil {
		t.Fatal(err)
	}
	producer := clusterClient(t, nodes, kgo.DefaultProduceTopic("in"))
	written := map[int32]bool{} // partitions holding records
	for i := range 60 {
		r, err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).First()
		if err != nil {
			t.Fatal(err)
		}
		written[r.Partition] = true
	}
	var seeds []string
	for _, n := range nodes {
		seeds = append(seeds, n.Addr())
	}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(seeds...), kgo.TransactionalID("etl-tx"), kgo.ConsumerGroup("etl"),
		kgo.ConsumeTopics("in"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DefaultProduceTopic("out"), kgo.RequireStableFetchOffsets())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	moved := 0
	for moved < 60 {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("moved %d of 60", moved)
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Value: r.Value}, nil)
			moved++
		})
		if committed, err := sess.End(ctx, kgo.TryCommit); err != nil || !committed {
			t.Fatalf("end transaction: committed %v, %v", committed, err)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	offs, err := adm.FetchOffsets(ctx, "etl")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := offs.Lookup("in", e.Partition)
		if written[e.Partition] && (!ok || o.At != e.Offset) {
			t.Errorf("partition %d: group committed %v, end %d", e.Partition, o.At, e.Offset)
		}
	})
}

// TestClusterLeadersReturnToPreferred stops a partition's preferred leader
// and starts it again: once it is back in sync, leadership returns to it.
func TestClusterLeadersReturnToPreferred(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, func(_ int, c *config.Config) { c.LeaderRebalanceAfter = 500 * time.Millisecond })
	servertest.WaitReady(t, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(clusterClient(t, nodes))
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "pref"); err != nil {
		t.Fatal(err)
	}
	var preferred int32
	for preferred == 0 { // other nodes apply the new topic a moment later
		md, err := adm.Metadata(ctx, "pref")
		if err == nil && len(md.Topics["pref"].Partitions[0].Replicas) == 3 {
			preferred = md.Topics["pref"].Partitions[0].Replicas[0]
		} else if ctx.Err() != nil {
			t.Fatalf("metadata of pref: %v", err)
		} else {
			time.Sleep(20 * time.Millisecond) // retrying a request to a real cluster
		}
	}
	nodes[preferred-1].Stop()
	adm = kadm.NewClient(clusterClient(t, nodes))
	for l := leaderOf(ctx, t, adm, "pref", 0); l == preferred; l = leaderOf(ctx, t, adm, "pref", 0) {
		time.Sleep(20 * time.Millisecond) // retrying a request to a real cluster
	}
	nodes[preferred-1].Start()
	for l := leaderOf(ctx, t, adm, "pref", 0); l != preferred; l = leaderOf(ctx, t, adm, "pref", 0) {
		time.Sleep(20 * time.Millisecond) // retrying a request to a real cluster
	}
}

// TestClusterCompactedReplicaMoves compacts a partition in a cluster, then
// moves its only replica to another node by decommissioning the one that
// holds it: the new replica rebuilds the partition from the compacted Raft
// log and serves exactly the records the old one did, at the same offsets.
func TestClusterCompactedReplicaMoves(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, nil)
	servertest.WaitReady(t, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(clusterClient(t, nodes))
	const topic = "changelog"
	configs := map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"segment.bytes":             kadm.StringPtr("2048"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, configs, topic); err != nil {
		t.Fatal(err)
	}
	producer := clusterClient(t, nodes)
	const produced = 600
	for i := range produced {
		r := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%02d", i%25)), Value: []byte(fmt.Sprintf("v%d", i))}
		if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	md, err := adm.Metadata(ctx, topic)
	if err != nil || len(md.Topics[topic].Partitions) != 1 {
		t.Fatalf("metadata: %v", err)
	}
	holder := md.Topics[topic].Partitions[0].Replicas[0]
	nodes[holder-1].Server().Broker().RunMaintenance()

	// readAll reads the partition from the start to its end through
	// whichever node leads it.
	readAll := func() []string {
		t.Helper()
		cl := clusterClient(t, nodes, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		defer cl.Close()
		var got []string
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("read %d records: %v", len(got), fs.Errors())
			}
			done := false
			fs.EachRecord(func(r *kgo.Record) {
				got = append(got, fmt.Sprintf("%d %s=%s", r.Offset, r.Key, r.Value))
				done = done || string(r.Value) == fmt.Sprintf("v%d", produced-1)
			})
			if done {
				return got
			}
		}
	}
	before := readAll()
	if len(before) >= produced || !strings.HasSuffix(before[len(before)-1], fmt.Sprintf(" k%02d=v%d", (produced-1)%25, produced-1)) {
		t.Fatalf("not compacted: %d of %d records, last %q", len(before), produced, before[len(before)-1])
	}

	resp, err := http.Post(fmt.Sprintf("http://%s/v1/nodes/%d/decommission", nodes[0].HTTPAddr(), holder), "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("decommission: %s", resp.Status)
	}
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil && len(md.Topics[topic].Partitions) == 1 {
			p := md.Topics[topic].Partitions[0]
			if len(p.Replicas) == 1 && p.Replicas[0] != holder && p.Leader == p.Replicas[0] {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("replica never left node %d: %v %+v", holder, err, md.Topics[topic].Partitions)
		}
		time.Sleep(50 * time.Millisecond) // retrying a request to a real cluster
	}
	after := readAll()
	if !slices.Equal(after, before) {
		t.Fatalf("the moved replica serves %d records, the old one served %d:\n%v\nvs\n%v", len(after), len(before), after, before)
	}
}
