package chaos

// Cluster performance measurements (make bench-cluster): throughput and
// latency of a 3-node RF=3 cluster beside a single node, leader failover
// time and the time a restarted or wiped node takes to catch up. They start
// real weir processes through Cluster, print what they measure and write it
// to -perf.out; they assert nothing about time. Without -perf (or
// WEIR_PERF=1) they skip, so `go test ./...` never runs them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	perfRun        = flag.Bool("perf", false, "run the TestPerf* cluster measurements against real weir processes (make bench-cluster)")
	perfBin        = flag.String("perf.bin", "", "weir binary to measure (default: go build ./cmd/weir)")
	perfOut        = flag.String("perf.out", "", "directory for results.jsonl, report.md and kept node logs (default: a new temp dir)")
	perfRuns       = flag.Int("perf.runs", 3, "repetitions of every measurement; tables show medians with [min..max]")
	perfDuration   = flag.Duration("perf.duration", 10*time.Second, "measured time of each throughput and latency phase")
	perfWarmup     = flag.Duration("perf.warmup", time.Second, "unmeasured time before each throughput and latency phase")
	perfRate       = flag.Int("perf.rate", 5000, "records/s of the latency phase (linger 0)")
	perfPartitions = flag.String("perf.partitions", "1,12", "partition counts of the throughput phases")
	perfSystems    = flag.String("perf.systems", "single,raft1,cluster3", "systems of TestPerfThroughput, in run order")
	perfKills      = flag.Int("perf.kills", 10, "partition leader kills per run of TestPerfFailover")
	perfCatchUp    = flag.Int64("perf.catchup-bytes", 1<<30, "bytes of record values TestPerfCatchUp writes while a node is down")
	perfQuiet      = flag.Duration("perf.quiet", 5*time.Minute, "how long to wait, before each measurement, for other work on the machine to stop")
	perfKeep       = flag.Bool("perf.keep", false, "keep every run's node logs in -perf.out (by default only those of failed runs)")
)

// perfEnv is what every TestPerf* shares: the binary, the output directory
// and the results file.
type perfEnv struct {
	bin string
	out string

	mu struct {
		sync.Mutex
		results *os.File
	}
}

var (
	perfOnce   sync.Once
	perfShared *perfEnv
	perfErr    error
)

// perfSetup skips unless measurements were asked for, then builds (once)
// what the tests share.
func perfSetup(t *testing.T) *perfEnv {
	t.Helper()
	if !*perfRun && os.Getenv("WEIR_PERF") != "1" {
		t.Skip("cluster performance measurements; enable with -perf or WEIR_PERF=1 (make bench-cluster)")
	}
	perfOnce.Do(func() { perfShared, perfErr = newPerfEnv() })
	if perfErr != nil {
		t.Fatal(perfErr)
	}
	return perfShared
}

func newPerfEnv() (*perfEnv, error) {
	out := *perfOut
	if out == "" {
		d, err := os.MkdirTemp("", "weir-bench-cluster-")
		if err != nil {
			return nil, err
		}
		out = d
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	e := &perfEnv{bin: *perfBin, out: out}
	if e.bin == "" {
		e.bin = filepath.Join(out, "weir")
		cmd := exec.Command("go", "build", "-o", e.bin, "github.com/weir-dev/weir/cmd/weir")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/weir: %w\n%s", err, b)
		}
	}
	f, err := os.OpenFile(filepath.Join(out, "results.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	e.mu.results = f
	return e, nil
}

// record appends one JSON line to results.jsonl.
func (e *perfEnv) record(t *testing.T, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode result: %v", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.mu.results.Write(append(b, '\n')); err != nil {
		t.Fatalf("write result: %v", err)
	}
}

// report prints a section of the report and appends it to report.md.
func (e *perfEnv) report(t *testing.T, title, body string) {
	t.Helper()
	section := fmt.Sprintf("## %s\n\n%s\n", title, body)
	t.Logf("\n%s", section)
	e.mu.Lock()
	defer e.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(e.out, "report.md"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("open report: %v", err)
		return
	}
	defer f.Close()
	if _, err := io.WriteString(f, section+"\n"); err != nil {
		t.Errorf("write report: %v", err)
	}
}

// perfCluster is one system under measurement: a Cluster whose nodes talk
// to each other directly. The harness's proxies stay in place but idle,
// because --rpc-dial-map= at the end of the command line replaces the map
// that routes node-to-node traffic through them; the proxies' byte counts
// prove it when the cluster stops.
type perfCluster struct {
	*Cluster
	dir string // removed by stop
	out string // where stop keeps node logs
}

// startPerfCluster starts nodes weir processes and waits until all are
// ready. extra is appended to every command line. A node that finds one
// of its ports taken (free when picked, then grabbed by some other
// process's connection) makes it try again with new ports, twice at most;
// the node's log is the only place that says so.
func (e *perfEnv) startPerfCluster(t *testing.T, name string, nodes int, extra ...string) *perfCluster {
	t.Helper()
	for attempt := 1; ; attempt++ {
		pc, portTaken, err := e.tryStartPerfCluster(t, name, nodes, extra)
		switch {
		case err == nil:
			return pc
		case portTaken && attempt < 3:
			t.Logf("%s: a port was taken before a node bound it; starting again on new ports", name)
		default:
			t.Fatalf("%s did not become ready: %v", name, err)
		}
	}
}

func (e *perfEnv) tryStartPerfCluster(t *testing.T, name string, nodes int, extra []string) (*perfCluster, bool, error) {
	t.Helper()
	dir, err := os.MkdirTemp("", "weir-perf-"+name+"-")
	if err != nil {
		return nil, false, err
	}
	c, err := NewCluster(ClusterConfig{
		Binary:    e.bin,
		Dir:       dir,
		Nodes:     nodes,
		ExtraArgs: append([]string{"--rpc-dial-map=", "--auto-create-topics=false"}, extra...),
		Logf:      t.Logf,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, false, err
	}
	pc := &perfCluster{Cluster: c, dir: dir, out: e.out}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = c.StartAll()
	if err == nil {
		err = c.WaitAllReady(ctx)
	}
	if err == nil {
		return pc, false, nil
	}
	portTaken := false
	for i := range c.Size() {
		portTaken = portTaken || strings.Contains(c.LogTail(i, 4096), "address already in use")
	}
	if portTaken {
		c.Close()
		os.RemoveAll(dir)
	} else {
		pc.stop(t)
	}
	return nil, portTaken, err
}

// stop kills every node and removes the data, keeping the node logs in
// -perf.out when a node crashed, the test failed or -perf.keep asks. It
// reports crashes and traffic that went through a proxy.
func (pc *perfCluster) stop(t *testing.T) {
	t.Helper()
	crashes := pc.Crashes()
	pc.Close()
	for i := range pc.Size() {
		for j := range pc.Size() {
			if i != j && pc.Proxy(i, j).BytesForwarded() > 0 {
				t.Errorf("%d bytes went through the proxy n%d->n%d: the nodes did not dial each other directly",
					pc.Proxy(i, j).BytesForwarded(), i+1, j+1)
			}
		}
	}
	for _, c := range crashes {
		t.Errorf("node crash: %s", c)
	}
	if len(crashes) > 0 || t.Failed() || *perfKeep {
		keep := filepath.Join(pc.out, "kept-"+filepath.Base(pc.dir))
		if err := os.MkdirAll(keep, 0o755); err == nil {
			logs, _ := filepath.Glob(filepath.Join(pc.dir, "node-*.log"))
			for _, l := range logs {
				if b, err := os.ReadFile(l); err == nil {
					os.WriteFile(filepath.Join(keep, filepath.Base(l)), b, 0o644)
				}
			}
			t.Logf("node logs kept in %s", keep)
		}
	}
	os.RemoveAll(pc.dir)
}

// pids lists the process ids of the running nodes.
func (pc *perfCluster) pids() []int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var out []int
	for _, p := range pc.mu.procs {
		if p != nil {
			out = append(out, p.cmd.Process.Pid)
		}
	}
	return out
}

// brokers is every node's Kafka address, comma-separated.
func (pc *perfCluster) brokers() string { return strings.Join(pc.KafkaAddrs(), ",") }

// clkTck is USER_HZ, the unit of /proc/PID/stat times; 100 on every Linux
// architecture Go supports.
const clkTck = 100

// cpuSeconds is the user+system CPU time the processes used so far; a
// process that is gone counts nothing.
func cpuSeconds(pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces; the
		// fields after it start with the state (field 3), so utime
		// (field 14) and stime (15) are the 12th and 13th.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		k, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks += u + k
	}
	return float64(ticks) / clkTck
}

// load1 is the 1-minute load average: well above what a measurement puts
// on the two cores means something else ran on the machine.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

// createTopic creates a topic and waits until every partition has a
// leader and rf replicas in sync, so a measurement starts on a healthy
// cluster.
func createTopic(ctx context.Context, brokers []string, topic string, partitions int32, rf int16) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		_, err := adm.CreateTopic(ctx, partitions, rf, nil, topic)
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			break
		}
		if !pause(ctx, 200*time.Millisecond) {
			return fmt.Errorf("create topic %s: %w", topic, errors.Join(err, ctx.Err()))
		}
	}
	var last string
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			td := md.Topics[topic]
			ok := td.Err == nil && int32(len(td.Partitions)) == partitions
			for _, p := range td.Partitions {
				ok = ok && p.Err == nil && p.Leader >= 0 && len(p.ISR) == int(rf)
			}
			if ok {
				return nil
			}
			last = fmt.Sprintf("%+v", td.Partitions.Sorted())
		} else {
			last = err.Error()
		}
		if !pause(ctx, 100*time.Millisecond) {
			return fmt.Errorf("topic %s not healthy (every partition led, %d in sync): %w; last metadata: %s", topic, rf, ctx.Err(), last)
		}
	}
}

// nodeClients holds one client per node that talks to that node only, for
// questions only it can answer (its log's size, its view of a partition).
type nodeClients []*kgo.Client

func newNodeClients(c *Cluster) (nodeClients, error) {
	var out nodeClients
	for _, addr := range c.KafkaAddrs() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTimeout(time.Second))
		if err != nil {
			out.close()
			return nil, err
		}
		out = append(out, cl)
	}
	return out, nil
}

func (n nodeClients) close() {
	for _, cl := range n {
		cl.Close()
	}
}

// request sends req to node i and nowhere else, without retries.
func (n nodeClients) request(ctx context.Context, i int, req kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return n[i].SeedBrokers()[0].Request(ctx, req)
}

// partitionView is node i's answer to Metadata for one partition.
func (n nodeClients) partitionView(ctx context.Context, i int, topic string, partition int32) (leader int32, isr []int32, err error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	r, err := n.request(ctx, i, req)
	if err != nil {
		return -1, nil, err
	}
	for _, t := range r.(*kmsg.MetadataResponse).Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return -1, nil, err
		}
		for _, p := range t.Partitions {
			if p.Partition == partition {
				return p.Leader, p.ISR, kerr.ErrorForCode(p.ErrorCode)
			}
		}
	}
	return -1, nil, fmt.Errorf("node %d does not know %s-%d", i+1, topic, partition)
}

// logSize is the size in bytes of node i's replica of a partition, as it
// reports it in DescribeLogDirs: the bytes in its log, whatever their
// commit state. Replicas hold the same bytes, so equal sizes mean equal
// logs.
func (n nodeClients) logSize(ctx context.Context, i int, topic string, partition int32) (int64, error) {
	req := kmsg.NewPtrDescribeLogDirsRequest()
	rt := kmsg.NewDescribeLogDirsRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{partition}
	req.Topics = append(req.Topics, rt)
	r, err := n.request(ctx, i, req)
	if err != nil {
		return 0, err
	}
	for _, d := range r.(*kmsg.DescribeLogDirsResponse).Dirs {
		if err := kerr.ErrorForCode(d.ErrorCode); err != nil {
			return 0, err
		}
		for _, t := range d.Topics {
			for _, p := range t.Partitions {
				if t.Topic == topic && p.Partition == partition {
					return p.Size, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("node %d has no replica of %s-%d", i+1, topic, partition)
}

// ready reports whether node i's /readyz answers 200.
func ready(c *Cluster, i int) bool {
	cl := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := cl.Get("http://" + c.Node(i).HTTPAddr + "/readyz")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// benchResult is the part of `weir bench --format json` the report uses.
type benchResult struct {
	RecordsPerSec float64       `json:"records_per_sec"`
	MBPerSec      float64       `json:"mb_per_sec"`
	Errors        int64         `json:"errors"`
	TotalRecords  int64         `json:"total_records"`
	Ack           *benchLatency `json:"ack_latency_ms"`
	E2E           *benchLatency `json:"e2e_latency_ms"`
}

type benchLatency struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// bench runs `weir bench ARGS --format json` as its own process, as
// make bench-compare does, and decodes its answer. clientCPU is the CPU
// time the client used.
func (e *perfEnv) bench(ctx context.Context, args ...string) (r benchResult, raw json.RawMessage, clientCPU float64, err error) {
	cmd := exec.CommandContext(ctx, e.bin, append([]string{"bench"}, append(args, "--format", "json")...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if cmd.ProcessState != nil {
		clientCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	if err != nil {
		return r, nil, clientCPU, fmt.Errorf("weir bench %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, nil, clientCPU, fmt.Errorf("decode weir bench output %q: %w", out, err)
	}
	return r, json.RawMessage(bytes.TrimSpace(out)), clientCPU, nil
}

// machineBusy is the CPU time, in seconds, every core of the machine has
// spent on anything but idling since boot (/proc/stat).
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return math.NaN()
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return float64(ticks) / clkTck
}

// waitQuiet waits, up to -perf.quiet, until the machine spends less than
// 0.3 of a core on anything (sampled over 2 s), so that a measurement does
// not start while other work runs. It returns the last sample in cores.
func waitQuiet(t *testing.T) float64 {
	t.Helper()
	deadline := time.Now().Add(*perfQuiet)
	for {
		b0, t0 := machineBusy(), time.Now()
		time.Sleep(2 * time.Second)
		busy := (machineBusy() - b0) / time.Since(t0).Seconds()
		if busy < 0.3 || !time.Now().Before(deadline) {
			return busy
		}
		t.Logf("waiting for the machine to quiet down: %.2f cores busy", busy)
	}
}

// stat is a median with its range.
type stat struct {
	n                int
	median, min, max float64
}

func summarize(vs []float64) stat {
	if len(vs) == 0 {
		return stat{median: math.NaN(), min: math.NaN(), max: math.NaN()}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{n: len(s), median: m, min: s[0], max: s[len(s)-1]}
}

func (s stat) String() string {
	if s.n == 0 {
		return "–"
	}
	if s.n == 1 {
		return formatNum(s.median)
	}
	return fmt.Sprintf("%s [%s..%s]", formatNum(s.median), formatNum(s.min), formatNum(s.max))
}

// formatNum renders a number with a precision that suits its size, as the
// bench-compare report does.
func formatNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "–"
	case a >= 1000:
		s := strconv.FormatInt(int64(math.Round(a)), 10)
		var b strings.Builder
		if v < 0 {
			b.WriteByte('-')
		}
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// table collects samples by row and column and prints medians.
type table struct {
	rows []string
	cols []string
	vals map[string]map[string][]float64
}

func newTable(cols ...string) *table {
	return &table{cols: cols, vals: make(map[string]map[string][]float64)}
}

func (tb *table) add(row, col string, v float64) {
	if tb.vals[row] == nil {
		tb.vals[row] = make(map[string][]float64)
		tb.rows = append(tb.rows, row)
	}
	tb.vals[row][col] = append(tb.vals[row][col], v)
}

func (tb *table) median(row, col string) float64 { return summarize(tb.vals[row][col]).median }

// markdown prints the table; ratio, if set, names two columns whose
// medians' quotient gets a last column.
func (tb *table) markdown(ratio [2]string) string {
	var b strings.Builder
	b.WriteString("| metric |")
	rule := "|---|"
	for _, c := range tb.cols {
		b.WriteString(" " + c + " |")
		rule += "---|"
	}
	if ratio[0] != "" {
		fmt.Fprintf(&b, " %s/%s |", ratio[0], ratio[1])
		rule += "---|"
	}
	b.WriteString("\n" + rule + "\n")
	for _, r := range tb.rows {
		b.WriteString("| " + r + " |")
		for _, c := range tb.cols {
			b.WriteString(" " + summarize(tb.vals[r][c]).String() + " |")
		}
		if ratio[0] != "" {
			q := tb.median(r, ratio[0]) / tb.median(r, ratio[1])
			if math.IsNaN(q) || math.IsInf(q, 0) {
				b.WriteString(" – |")
			} else {
				fmt.Fprintf(&b, " %.2fx |", q)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestPerfHelpers checks the report helpers; it runs without -perf.
func TestPerfHelpers(t *testing.T) {
	if s := summarize([]float64{3, 1, 2}); s.median != 2 || s.min != 1 || s.max != 3 {
		t.Fatalf("summarize odd: %+v", s)
	}
	if s := summarize([]float64{4, 1, 2, 3}); s.median != 2.5 {
		t.Fatalf("summarize even: %+v", s)
	}
	for v, want := range map[float64]string{1234567: "1,234,567", -1500: "-1,500", 123.4: "123", 12.34: "12.3", 1.234: "1.23", 0.1234: "0.123"} {
		if got := formatNum(v); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
	tb := newTable("a", "b")
	tb.add("x", "a", 4)
	tb.add("x", "b", 2)
	tb.add("y", "a", 1)
	want := "| metric | a | b | a/b |\n|---|---|---|---|\n| x | 4.00 | 2.00 | 2.00x |\n| y | 1.00 | – | – |\n"
	if got := tb.markdown([2]string{"a", "b"}); got != want {
		t.Fatalf("markdown:\n%s\nwant:\n%s", got, want)
	}
}
