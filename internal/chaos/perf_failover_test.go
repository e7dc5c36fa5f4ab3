package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// prober writes a 1 KiB record to partition 0 of a topic at a fixed
// interval with an idempotent acks=all producer, linger 0, and records
// every acknowledgement. A record waits in the client for as long as the
// partition cannot take it; nothing is dropped.
type prober struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu struct {
		sync.Mutex
		acks   []Ack
		failed int
	}
}

func startProber(name string, brokers []string, topic string, every time.Duration, opts ...kgo.Opt) (*prober, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{name: name, cl: cl, cancel: cancel, done: make(chan struct{})}
	value := make([]byte, 1024)
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			sent := time.Now()
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: value}, func(r *kgo.Record, err error) {
				p.mu.Lock()
				defer p.mu.Unlock()
				if err != nil {
					p.mu.failed++
					return
				}
				p.mu.acks = append(p.mu.acks, Ack{Partition: r.Partition, Offset: r.Offset, Sent: sent, Acked: time.Now()})
			})
		}
	}()
	return p, nil
}

// outage is the time from at to the first acknowledgement of a record sent
// at or after it, and whether there was one yet.
func (p *prober) outage(at time.Time) (time.Duration, bool) {
	p.mu.Lock()
	acks := slices.Clone(p.mu.acks)
	p.mu.Unlock()
	o := Unavailability(acks, at, time.Now(), 1)
	return o.FirstAck, o.Recovered
}

// longestGap is the longest time in [from, to] without an
// acknowledgement, counting from from to the first and from the last to to.
func (p *prober) longestGap(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var gap time.Duration
	last := from
	for _, a := range p.mu.acks {
		if a.Acked.Before(from) || a.Acked.After(to) {
			continue
		}
		gap = max(gap, a.Acked.Sub(last))
		last = a.Acked
	}
	return max(gap, to.Sub(last))
}

// ackedSince reports whether a record sent at or after t was acknowledged.
func (p *prober) ackedSince(t time.Time) bool {
	_, ok := p.outage(t)
	return ok
}

func (p *prober) stop() {
	p.cancel()
	<-p.done
	p.cl.Close()
}

// TestPerfFailover kills (SIGKILL) the leader of a one-partition RF=3
// topic -perf.kills times per run while two probers write to it every
// 5 ms, and measures from the kill to:
//
//   - elected: the first Metadata answer of a surviving node that names a
//     surviving leader (polled every 20 ms);
//   - first write: the first acknowledgement of a record sent after the
//     kill, for a client tuned like Kafka's Java client (metadata refresh
//     at most every 100 ms, retry backoff 100 ms) and for franz-go's
//     defaults (metadata at most every 5 s, backoff from 250 ms).
//
// Between kills the node is restarted; the longest pause in the tuned
// prober's acknowledgements while it rejoins is reported too. The partition
// must be fully in sync again, with both probers writing, before the next
// kill.
func TestPerfFailover(t *testing.T) {
	e := perfSetup(t)
	tb := newTable("elected", "first write (tuned client)", "first write (franz-go defaults)")
	var lines []string
	kills := 0
	for run := 1; run <= *perfRuns; run++ {
		lines = append(lines, failoverRun(t, e, run, tb)...)
		kills += *perfKills
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d kills of the partition leader (%d runs of %d), 3 nodes, topic with 1 partition, RF=3.\n"+
		"Seconds from kill -9 to the event, over all kills (nearest rank).\n\n", kills, *perfRuns, *perfKills)
	b.WriteString("| |")
	for _, c := range tb.cols {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n|---|---|---|---|\n")
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.5}, {"p90", 0.9}, {"max", 1}} {
		fmt.Fprintf(&b, "| %s |", q.name)
		for _, c := range tb.cols {
			fmt.Fprintf(&b, " %s |", formatNum(quantile(tb.vals["seconds"][c], q.q)))
		}
		b.WriteString("\n")
	}
	gaps := tb.vals["rejoin gap"]["first write (tuned client)"]
	fmt.Fprintf(&b, "\nRejoin: the longest wait between two acknowledgements of the tuned prober from restarting the "+
		"killed node until 3 s after it was ready: p50 %s s, max %s s.\n", formatNum(quantile(gaps, 0.5)), formatNum(quantile(gaps, 1)))
	b.WriteString("\nEvery kill:\n\n```\n" + strings.Join(lines, "\n") + "\n```\n")
	e.report(t, "Leader failover", b.String())
}

// quantile is the q-quantile of vs by nearest rank.
func quantile(vs []float64, q float64) float64 {
	ds := make([]time.Duration, len(vs))
	for i, v := range vs {
		ds[i] = time.Duration(v * float64(time.Second))
	}
	return Percentile(ds, q).Seconds()
}

func failoverRun(t *testing.T, e *perfEnv, run int, tb *table) []string {
	t.Helper()
	waitQuiet(t)
	pc := e.startPerfCluster(t, "failover", 3)
	defer pc.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	const topic = "failover"
	if err := createTopic(ctx, pc.KafkaAddrs(), topic, 1, 3); err != nil {
		t.Fatal(err)
	}
	nodes, err := newNodeClients(pc.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	defer nodes.close()

	backoff := func(int) time.Duration { return 100 * time.Millisecond }
	tuned, err := startProber("tuned", pc.KafkaAddrs(), topic, 5*time.Millisecond,
		kgo.MetadataMinAge(100*time.Millisecond), kgo.RetryBackoffFn(backoff))
	if err != nil {
		t.Fatal(err)
	}
	defer tuned.stop()
	defaults, err := startProber("defaults", pc.KafkaAddrs(), topic, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer defaults.stop()
	probers := []*prober{tuned, defaults}

	var lines []string
	for k := 1; k <= *perfKills; k++ {
		// A healthy start: every node up, all three in sync by the
		// leader's account, and both probers writing.
		settled := time.Now()
		leader := -1
		healthy := waitFor(ctx, func() bool {
			leader = -1
			for i := range pc.Size() {
				l, isr, err := nodes.partitionView(ctx, i, topic, 0)
				if err == nil && l == pc.Node(i).ID && len(isr) == 3 {
					leader = i
				}
			}
			return leader >= 0 && tuned.ackedSince(settled) && defaults.ackedSince(settled) &&
				time.Since(settled) > 2*time.Second
		})
		if !healthy {
			t.Fatalf("run %d kill %d: the partition did not become healthy (3 in sync, writes flowing)", run, k)
		}
		victim := pc.Node(leader).ID
		wasController := false
		if ctrl, err := pc.ControllerLeader(ctx); err == nil {
			wasController = ctrl == leader
		}

		at := time.Now()
		if _, err := pc.Kill(leader); err != nil {
			t.Fatal(err)
		}
		var elected time.Duration
		newLeader := int32(-1)
		if !waitForEvery(ctx, 20*time.Millisecond, func() bool {
			for i := range pc.Size() {
				if i == leader {
					continue
				}
				if l, _, err := nodes.partitionView(ctx, i, topic, 0); err == nil && l >= 0 && l != victim {
					elected, newLeader = time.Since(at), l
					return true
				}
			}
			return time.Since(at) > time.Minute
		}) || newLeader < 0 {
			t.Fatalf("run %d kill %d: no new leader named a minute after killing n%d", run, k, victim)
		}
		var firsts [2]time.Duration
		if !waitFor(ctx, func() bool {
			return (tuned.ackedSince(at) && defaults.ackedSince(at)) || time.Since(at) > 2*time.Minute
		}) {
			t.Fatal(ctx.Err())
		}
		for i, p := range probers {
			d, ok := p.outage(at)
			if !ok {
				t.Errorf("run %d kill %d: prober %s wrote nothing in 2 minutes after the kill", run, k, p.name)
			}
			firsts[i] = d
		}
		tb.add("seconds", "elected", elected.Seconds())
		tb.add("seconds", "first write (tuned client)", firsts[0].Seconds())
		tb.add("seconds", "first write (franz-go defaults)", firsts[1].Seconds())

		// Bring the node back and watch what its return costs: the
		// longest wait between two acknowledgements of the tuned
		// prober over the next few seconds, and who leads after.
		restarted := time.Now()
		if err := pc.Start(leader); err != nil {
			t.Fatal(err)
		}
		readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
		err := pc.WaitReady(readyCtx, leader)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		pause(ctx, 3*time.Second)
		gap := tuned.longestGap(restarted, time.Now())
		after := int32(-1)
		for i := range pc.Size() {
			if l, _, err := nodes.partitionView(ctx, i, topic, 0); err == nil && l == pc.Node(i).ID {
				after = l
			}
		}
		tb.add("rejoin gap", "first write (tuned client)", gap.Seconds())

		also := ""
		if wasController {
			also = " (also the controller leader)"
		}
		line := fmt.Sprintf("run %d kill %2d: n%d%s; n%d elected after %v; first write %v tuned, %v defaults; "+
			"after n%d rejoined: leader n%d, longest write gap %v",
			run, k, victim, also, newLeader, elected.Round(time.Millisecond), firsts[0].Round(time.Millisecond),
			firsts[1].Round(time.Millisecond), victim, after, gap.Round(time.Millisecond))
		t.Log(line)
		lines = append(lines, line)
		e.record(t, map[string]any{
			"test": "failover", "run": run, "kill": k, "killed": victim, "killed_controller": wasController,
			"new_leader": newLeader, "elected_s": elected.Seconds(), "first_write_tuned_s": firsts[0].Seconds(),
			"first_write_defaults_s": firsts[1].Seconds(), "leader_after_rejoin": after,
			"rejoin_longest_gap_s": gap.Seconds(), "load1": load1(),
		})
	}
	for _, p := range probers {
		p.mu.Lock()
		if p.mu.failed > 0 {
			t.Errorf("run %d: prober %s had %d records fail", run, p.name, p.mu.failed)
		}
		p.mu.Unlock()
	}
	return lines
}

// waitForEvery polls cond every interval until it holds or ctx ends.
func waitForEvery(ctx context.Context, interval time.Duration, cond func() bool) bool {
	for !cond() {
		if !pause(ctx, interval) {
			return cond()
		}
	}
	return true
}
