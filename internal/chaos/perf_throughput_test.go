package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// perfSystem is one column of the throughput table.
type perfSystem struct {
	name  string
	nodes int
	extra []string // appended to every node's command line
	about string
}

var perfSystemList = []perfSystem{
	// --seeds= empties the seeds the harness passes, which turns cluster
	// mode off: a plain single node, as make bench-compare runs it.
	{name: "single", nodes: 1, extra: []string{"--seeds="}, about: "one `weir serve` without cluster mode (unreplicated log)"},
	{name: "raft1", nodes: 1, about: "one node in cluster mode: RF=1, every batch goes through its Raft group"},
	{name: "cluster3", nodes: 3, about: "three nodes, RF=3 (every node a voter of every partition)"},
}

// TestPerfThroughput measures produce throughput (as fast as possible,
// linger 5 ms) for each partition count and produce and end-to-end latency
// at a fixed rate with linger 0, on each system, with `weir bench` as the
// client: 1 KiB records, acks=all, idempotent, one producer. Every system
// and run starts on fresh nodes and fresh data directories.
func TestPerfThroughput(t *testing.T) {
	e := perfSetup(t)
	var systems []perfSystem
	for _, name := range strings.Split(*perfSystems, ",") {
		i := slices.IndexFunc(perfSystemList, func(s perfSystem) bool { return s.name == strings.TrimSpace(name) })
		if i < 0 {
			t.Fatalf("-perf.systems: no system %q", name)
		}
		systems = append(systems, perfSystemList[i])
	}
	var parts []int32
	for _, s := range strings.Split(*perfPartitions, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			t.Fatalf("-perf.partitions: bad count %q", s)
		}
		parts = append(parts, int32(n))
	}
	cols := make([]string, len(systems))
	for i, s := range systems {
		cols[i] = s.name
	}
	tp := &throughputRun{e: e, tb: newTable(cols...)}
	for run := 1; run <= *perfRuns; run++ {
		for _, sys := range systems {
			tp.run(t, sys, run, parts)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d runs; each phase %v measured after %v warmup; 1 KiB records, acks=all, idempotent, 1 producer.\n",
		*perfRuns, *perfDuration, *perfWarmup)
	b.WriteString("Throughput: linger 5 ms, as fast as possible. Latency: 1 partition, linger 0, ")
	fmt.Fprintf(&b, "%d records/s. Server CPU is every node's utime+stime.\n\n", *perfRate)
	for _, s := range systems {
		fmt.Fprintf(&b, "- %s: %s\n", s.name, s.about)
	}
	b.WriteString("\n")
	ratio := [2]string{}
	if slices.Contains(cols, "cluster3") && slices.Contains(cols, "single") {
		ratio = [2]string{"cluster3", "single"}
	}
	b.WriteString(tp.tb.markdown(ratio))
	if len(tp.leaders) > 0 {
		fmt.Fprintf(&b, "\nPartition leaders per node (node 1, 2, 3), per run: %s\n", strings.Join(tp.leaders, "; "))
	}
	fmt.Fprintf(&b, "CPU used by other work on the machine during the phases, cores: %s; "+
		"1-minute load average before them: %s\n", summarize(tp.others), summarize(tp.loads))
	e.report(t, "Throughput and latency", b.String())
}

type throughputRun struct {
	e       *perfEnv
	tb      *table
	loads   []float64
	others  []float64 // cores used by other work during each phase
	leaders []string
}

func (tp *throughputRun) run(t *testing.T, sys perfSystem, run int, parts []int32) {
	t.Helper()
	pc := tp.e.startPerfCluster(t, sys.name, sys.nodes, append([]string{"--log-level", "warn"}, sys.extra...)...)
	defer pc.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	common := []string{"--brokers", pc.brokers(), "--record-size", "1024", "--acks", "all", "--idempotent",
		"--producers", "1", "--warmup", perfWarmup.String(), "--duration", perfDuration.String()}
	rf := int16(sys.nodes)

	// Latency first, while the disks are fresh: the as-fast-as-possible
	// phases write gigabytes whose flushing would still go on.
	topic := "latency"
	if err := createTopic(ctx, pc.KafkaAddrs(), topic, 1, rf); err != nil {
		t.Fatalf("%s run %d: %v", sys.name, run, err)
	}
	args := append([]string{"e2e"}, common...)
	args = append(args, "--topic", topic, "--partitions", "1", "--linger", "0s",
		"--rate", strconv.Itoa(*perfRate))
	res, perNode, _, _ := tp.phase(ctx, t, pc, sys, run, "e2e", nil, args)
	cpu := sum(perNode)
	at := fmt.Sprintf("@%d/s", *perfRate)
	if res.Ack != nil {
		tp.tb.add("produce ack p50 ms "+at, sys.name, res.Ack.P50)
		tp.tb.add("produce ack p99 ms "+at, sys.name, res.Ack.P99)
		tp.tb.add("produce ack p99.9 ms "+at, sys.name, res.Ack.P999)
	}
	if res.E2E != nil {
		tp.tb.add("end-to-end p50 ms "+at, sys.name, res.E2E.P50)
		tp.tb.add("end-to-end p99 ms "+at, sys.name, res.E2E.P99)
		tp.tb.add("end-to-end p99.9 ms "+at, sys.name, res.E2E.P999)
		tp.tb.add("end-to-end max ms "+at, sys.name, res.E2E.Max)
	}
	if res.TotalRecords > 0 {
		tp.tb.add("server CPU µs/record "+at, sys.name, cpu*1e6/float64(res.TotalRecords))
	}

	for _, p := range parts {
		topic := fmt.Sprintf("tput-%d", p)
		if err := createTopic(ctx, pc.KafkaAddrs(), topic, p, rf); err != nil {
			t.Fatalf("%s run %d: %v", sys.name, run, err)
		}
		leaders := tp.leaderCounts(ctx, t, pc, topic)
		if sys.nodes > 1 && p > 1 {
			tp.leaders = append(tp.leaders, fmt.Sprintf("%d partitions: %v", p, leaders))
		}
		args := append([]string{"produce"}, common...)
		args = append(args, "--topic", topic, "--partitions", strconv.Itoa(int(p)), "--linger", "5ms")
		res, perNode, clientCPU, wall := tp.phase(ctx, t, pc, sys, run, fmt.Sprintf("produce-%dp", p), leaders, args)
		cpu := sum(perNode)
		label := fmt.Sprintf(", %d partition", p)
		if p > 1 {
			label += "s"
		}
		tp.tb.add("produce records/s"+label, sys.name, res.RecordsPerSec)
		tp.tb.add("produce MB/s"+label, sys.name, res.MBPerSec)
		if res.Ack != nil {
			tp.tb.add("produce ack p99 ms"+label, sys.name, res.Ack.P99)
		}
		tp.tb.add("server CPU cores"+label, sys.name, cpu/wall.Seconds())
		tp.tb.add("client CPU cores"+label, sys.name, clientCPU/wall.Seconds())
		if res.TotalRecords > 0 {
			tp.tb.add("server CPU µs/record"+label, sys.name, cpu*1e6/float64(res.TotalRecords))
			tp.tb.add("busiest node's CPU µs/record"+label, sys.name, slices.Max(perNode)*1e6/float64(res.TotalRecords))
		}
	}
}

// phase runs one `weir bench` and records it with the CPU the nodes spent.
// It returns the CPU seconds each node spent.
func (tp *throughputRun) phase(ctx context.Context, t *testing.T, pc *perfCluster, sys perfSystem, run int, name string,
	leaders []int, args []string) (res benchResult, perNode []float64, clientCPU float64, wall time.Duration) {
	t.Helper()
	quiet := waitQuiet(t)
	pids := pc.pids()
	l0 := load1()
	tp.loads = append(tp.loads, l0)
	m0 := machineBusy()
	before := make([]float64, len(pids))
	for i, pid := range pids {
		before[i] = cpuSeconds([]int{pid})
	}
	start := time.Now()
	res, raw, clientCPU, err := tp.e.bench(ctx, args...)
	wall = time.Since(start)
	machine := machineBusy() - m0
	var cpu float64
	perNode = make([]float64, len(pids))
	for i, pid := range pids {
		perNode[i] = cpuSeconds([]int{pid}) - before[i]
		cpu += perNode[i]
	}
	if err != nil {
		t.Fatalf("%s run %d %s: %v", sys.name, run, name, err)
	}
	// What neither the nodes nor the client used went to other work on
	// the machine (and a little to this test process).
	other := max(machine-cpu-clientCPU, 0) / wall.Seconds()
	tp.others = append(tp.others, other)
	if res.Errors > 0 {
		t.Errorf("%s run %d %s: the client saw %d errors", sys.name, run, name, res.Errors)
	}
	tp.e.record(t, struct {
		Test       string          `json:"test"`
		System     string          `json:"system"`
		Run        int             `json:"run"`
		Phase      string          `json:"phase"`
		CPUSeconds float64         `json:"server_cpu_seconds"`
		WallSecs   float64         `json:"wall_seconds"`
		Load1      float64         `json:"load1_before"`
		Load1After float64         `json:"load1_after"`
		PerNode    []float64       `json:"server_cpu_seconds_per_node"`
		ClientCPU  float64         `json:"client_cpu_seconds"`
		OtherCores float64         `json:"other_cpu_cores"`
		QuietCores float64         `json:"busy_cores_before"`
		Leaders    []int           `json:"leaders_per_node,omitempty"`
		Result     json.RawMessage `json:"result"`
	}{"throughput", sys.name, run, name, cpu, wall.Seconds(), l0, load1(), perNode, clientCPU, other, quiet, leaders, raw})
	ack := ""
	if res.Ack != nil {
		ack = fmt.Sprintf(", ack p99 %.2f ms", res.Ack.P99)
	}
	t.Logf("%s run %d %s: %.0f records/s%s, server CPU %.2f cores %s, client %.2f, other work %.2f", sys.name, run, name,
		res.RecordsPerSec, ack, cpu/wall.Seconds(), fmt.Sprintf("%.2f", perNode), clientCPU/wall.Seconds(), other)
	return res, perNode, clientCPU, wall
}

// leaderCounts counts, per node, the partitions of topic it leads.
func (tp *throughputRun) leaderCounts(ctx context.Context, t *testing.T, pc *perfCluster, topic string) []int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(pc.KafkaAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		t.Fatalf("metadata for %s: %v", topic, err)
	}
	counts := make([]int, pc.Size())
	for _, p := range md.Topics[topic].Partitions {
		if i, err := pc.indexOf(p.Leader); err == nil {
			counts[i]++
		}
	}
	return counts
}

func sum(vs []float64) float64 {
	var s float64
	for _, v := range vs {
		s += v
	}
	return s
}
