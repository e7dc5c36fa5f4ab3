package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPerfCatchUp measures how long a replica takes to catch up with its
// partition's leader, on a 3-node cluster with a one-partition RF=3 topic:
//
//   - restarted: a follower is killed, -perf.catchup-bytes of 1 KiB
//     records are written to the other two (acks=all), then the follower
//     is started again;
//   - wiped: then the same follower is killed again, its partition
//     directory (log and Raft state) deleted, and, once the leader has
//     dropped it from the ISR, it is started again, so it has the whole
//     log to fetch as a fresh replica. (The leader then hands leadership
//     to the third node, which repairs the wiped one.)
//
// "Caught up" is the moment the follower's log is as long as the longest
// of the others', by the sizes each node reports for its own replica in
// DescribeLogDirs (polled every 100 ms). Leaders list a follower in the ISR
// as soon as it takes appends again, well before it has caught up, so the
// ISR is reported beside it but is not the measure.
func TestPerfCatchUp(t *testing.T) {
	e := perfSetup(t)
	tb := newTable("restarted", "wiped")
	for run := 1; run <= *perfRuns; run++ {
		catchUpRun(t, e, run, tb)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d runs; %d MiB of record values (1 KiB records, one producer, acks=all, linger 5 ms) "+
		"written while one follower was down; times from the follower's process start.\n\n", *perfRuns, *perfCatchUp>>20)
	b.WriteString(tb.markdown([2]string{}))
	e.report(t, "Catch-up", b.String())
}

func catchUpRun(t *testing.T, e *perfEnv, run int, tb *table) {
	t.Helper()
	waitQuiet(t)
	pc := e.startPerfCluster(t, "catchup", 3)
	defer pc.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	const topic = "catchup"
	if err := createTopic(ctx, pc.KafkaAddrs(), topic, 1, 3); err != nil {
		t.Fatal(err)
	}
	nodes, err := newNodeClients(pc.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	defer nodes.close()

	// The victim follows the partition and, if possible, is not the
	// controller's leader either, so its absence moves no leadership.
	leader, err := pc.PartitionLeader(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := pc.ControllerLeader(ctx)
	if err != nil {
		ctrl = -1
	}
	victim := -1
	for i := range pc.Size() {
		if i != leader && (victim < 0 || victim == ctrl) {
			victim = i
		}
	}
	before, err := nodes.logSize(ctx, victim, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Kill(victim); err != nil {
		t.Fatal(err)
	}
	var others []string
	for i := range pc.Size() {
		if i != victim {
			others = append(others, pc.Node(i).KafkaAddr)
		}
	}
	took, err := writeBytes(ctx, others, topic, *perfCatchUp, uint64(run))
	if err != nil {
		t.Fatalf("run %d: write with n%d down: %v", run, pc.Node(victim).ID, err)
	}
	writeMB := float64(*perfCatchUp) / 1e6 / took.Seconds()
	tb.add("write with one node down, MB/s of values", "restarted", writeMB)
	t.Logf("run %d: wrote %d MiB with n%d down in %v (%.0f MB/s)", run, *perfCatchUp>>20, pc.Node(victim).ID,
		took.Round(time.Millisecond), writeMB)

	for _, variant := range []string{"restarted", "wiped"} {
		from := before
		if variant == "wiped" {
			if _, err := pc.Kill(victim); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(pc.Node(victim).DataDir, "topics", topic+"-0")
			if _, err := os.Stat(dir); err != nil {
				t.Fatalf("partition directory: %v (has the data layout changed?)", err)
			}
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			from = 0
			// As a replaced disk would, come back only after the
			// leader has noticed the node gone: a replica wiped and
			// restarted within a few tens of milliseconds stays
			// empty, and in the ISR, until the next write reaches
			// the partition (see docs/benchmarks.md).
			gone := time.Now()
			if !waitFor(ctx, func() bool { return !inLeadersISR(ctx, pc, nodes, victim, topic) }) {
				t.Fatal(ctx.Err())
			}
			t.Logf("run %d: the leader dropped n%d from the ISR %v after the kill", run, pc.Node(victim).ID,
				time.Since(gone).Round(time.Millisecond))
		}
		waitQuiet(t)
		m, ok := measureCatchUp(ctx, t, pc, nodes, victim, topic)
		missing := m.target - from
		e.record(t, map[string]any{
			"test": "catchup", "run": run, "variant": variant, "victim": pc.Node(victim).ID,
			"write_seconds": took.Seconds(), "bytes_missing": missing, "caught_up": ok,
			"ready_s": m.ready.Seconds(), "in_isr_s": m.inISR.Seconds(), "caught_up_s": m.caught.Seconds(),
			"cpu_seconds": m.cpu, "other_cpu_seconds": m.other, "load1": load1(),
		})
		if !ok {
			continue
		}
		rate := float64(missing) / 1e6 / m.caught.Seconds()
		tb.add("bytes to copy, MiB", variant, float64(missing)/(1<<20))
		tb.add("start → /readyz 200, s", variant, m.ready.Seconds())
		if m.inISR > 0 {
			tb.add("start → in the leader's ISR, s", variant, m.inISR.Seconds())
		}
		tb.add("start → log as long as the leader's, s", variant, m.caught.Seconds())
		tb.add("catch-up rate, MB/s", variant, rate)
		if m.inISR > 0 && m.inISR < m.caught {
			// From the moment the leader streams to the node again:
			// the copy alone, without the start and the reconnection.
			tb.add("copy rate once in the ISR, MB/s", variant, float64(missing)/1e6/(m.caught-m.inISR).Seconds())
		}
		tb.add("CPU of all nodes while catching up, cores", variant, m.cpu/m.caught.Seconds())
		tb.add("CPU of other work on the machine meanwhile, cores", variant, m.other/m.caught.Seconds())
		t.Logf("run %d %s: n%d copied %d MiB in %v (%.0f MB/s); ready after %v, in ISR after %v", run, variant,
			pc.Node(victim).ID, missing>>20, m.caught.Round(time.Millisecond), rate, m.ready.Round(time.Millisecond),
			m.inISR.Round(time.Millisecond))
	}
}

// catchUp is what measureCatchUp saw, in time since the process start.
type catchUp struct {
	ready, inISR, caught time.Duration
	target               int64   // the longest other replica's size when caught up
	cpu                  float64 // CPU seconds of every node meanwhile
	other                float64 // CPU seconds of other work on the machine meanwhile
}

// measureCatchUp starts node victim and polls until its replica of
// topic-0 is as long as the others'.
func measureCatchUp(ctx context.Context, t *testing.T, pc *perfCluster, nodes nodeClients, victim int, topic string) (catchUp, bool) {
	t.Helper()
	var m catchUp
	othersPIDs := pc.pids()
	self := []int{os.Getpid()}
	c0, m0, s0 := cpuSeconds(othersPIDs), machineBusy(), cpuSeconds(self)
	start := time.Now()
	if err := pc.Start(victim); err != nil {
		t.Fatal(err)
	}
	victimPID := pc.pids()
	victimPID = slices.DeleteFunc(victimPID, func(p int) bool { return slices.Contains(othersPIDs, p) })
	id := pc.Node(victim).ID

	// Readiness and the ISR are watched apart from the sizes and more
	// often, so that a slow answer to one question delays no other.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	isReady, inISR := make(chan struct{}), make(chan struct{})
	watch := func(every time.Duration, cond func() bool, at *time.Duration, done chan struct{}) {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			if waitForEvery(watchCtx, every, cond) {
				*at = time.Since(start)
				if done != nil {
					close(done)
				}
			}
		}()
	}
	watch(10*time.Millisecond, func() bool { return ready(pc.Cluster, victim) }, &m.ready, isReady)
	watch(50*time.Millisecond, func() bool { return inLeadersISR(watchCtx, pc, nodes, victim, topic) }, &m.inISR, inISR)
	stop := func() {
		stopWatch()
		watchers.Wait()
	}

	lastLog := start
	for {
		since := time.Since(start)
		var target int64
		for i := range pc.Size() {
			if i == victim {
				continue
			}
			if n, err := nodes.logSize(ctx, i, topic, 0); err == nil {
				target = max(target, n)
			}
		}
		var size int64
		err := errors.New("not ready")
		select {
		case <-isReady:
			size, err = nodes.logSize(ctx, victim, topic, 0)
		default:
		}
		if err == nil && target > 0 && size >= target {
			m.caught, m.target = time.Since(start), target
			break
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			t.Logf("n%d after %v: %d of %d bytes (%v)", id, since.Round(time.Second), size, target, err)
		}
		if since > 5*time.Minute || !pause(ctx, 100*time.Millisecond) {
			stop()
			t.Errorf("n%d did not catch up in %v: its log has %d bytes, the others' up to %d (last error: %v); log tail:\n%s",
				id, since.Round(time.Second), size, target, err, pc.LogTail(victim, 3000))
			return m, false
		}
	}
	// The leader has listed the node in the ISR by now, unless it is
	// slow to tell.
	select {
	case <-inISR:
	case <-time.After(time.Second):
	}
	stop()
	m.cpu = cpuSeconds(othersPIDs) - c0 + cpuSeconds(victimPID)
	m.other = max(machineBusy()-m0-m.cpu-(cpuSeconds(self)-s0), 0)
	return m, true
}

// inLeadersISR reports whether a node that names itself the leader of
// topic-0 lists node victim in its ISR.
func inLeadersISR(ctx context.Context, pc *perfCluster, nodes nodeClients, victim int, topic string) bool {
	for i := range pc.Size() {
		if i == victim {
			continue
		}
		l, isr, err := nodes.partitionView(ctx, i, topic, 0)
		if err == nil && l == pc.Node(i).ID && slices.Contains(isr, pc.Node(victim).ID) {
			return true
		}
	}
	return false
}

// writeBytes writes n bytes of 1 KiB records of random bytes to partition
// 0 of topic, idempotent with acks=all and linger 5 ms, and waits for every
// acknowledgement.
func writeBytes(ctx context.Context, brokers []string, topic string, n int64, seed uint64) (time.Duration, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(10000),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	const size = 1024
	pool := make([]byte, 1<<20+size)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(pool)
	var mu sync.Mutex
	var errs []error
	start := time.Now()
	for i := range n / size {
		off := (i * 4099) % (1 << 20)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: pool[off : off+size]}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if len(errs) < 5 {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}
	return time.Since(start), errors.Join(errs...)
}
