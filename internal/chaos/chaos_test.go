package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	chaosRun      = flag.Bool("chaos", false, "run TestChaos: a fault-injection run against real weir processes")
	chaosDuration = flag.Duration("chaos.duration", 3*time.Minute, "how long TestChaos injects faults")
	chaosInterval = flag.Duration("chaos.interval", 20*time.Second, "time from one fault to the next; each fault is held for half of it, then healed")
	chaosNodes    = flag.Int("chaos.nodes", 3, "nodes in the cluster")
	chaosSeed     = flag.Uint64("chaos.seed", 0, "seed for the fault schedule and choices (0: from the clock; printed to replay)")
	chaosBin      = flag.String("chaos.bin", "", "weir binary to run (default: go build ./cmd/weir)")
)

// faultRecord is one injected fault and its recovery.
type faultRecord struct {
	kind      FaultKind
	desc      string
	injected  time.Time
	healed    time.Time // recovery began
	ready     time.Time // every node ready again
	recovery  string
	injectErr error
	outage    Outage
}

// TestChaos runs the workload against a real cluster while injecting one
// fault at a time, then checks the history. See the package documentation.
func TestChaos(t *testing.T) {
	if !*chaosRun && os.Getenv("WEIR_CHAOS") != "1" {
		t.Skip("fault-injection run; enable with -chaos or WEIR_CHAOS=1 (make chaos)")
	}
	duration, interval, nodes := *chaosDuration, *chaosInterval, *chaosNodes
	if nodes < 2 {
		t.Fatalf("-chaos.nodes=%d: need at least 2", nodes)
	}
	if interval < 2*time.Second {
		t.Fatalf("-chaos.interval=%v: too short to fault and recover", interval)
	}
	seed := *chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos seed %d: replay this schedule with -chaos.seed=%d", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	bin := *chaosBin
	if bin == "" {
		bin = buildWeir(t)
	}
	runDir := runDirectory(t)

	c, err := NewCluster(ClusterConfig{
		Binary:    bin,
		Dir:       runDir,
		Nodes:     nodes,
		ExtraArgs: []string{"--auto-create-topics=false", "--group-initial-rebalance-delay=0s"},
		Logf:      t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllReady(startCtx); err != nil {
		t.Fatalf("cluster did not become ready: %v", err)
	}

	w := NewWorkload(WorkloadConfig{
		Brokers:           c.KafkaAddrs(),
		ReplicationFactor: int16(min(3, nodes)),
		Seed:              rng.Uint64(),
		Logf:              t.Logf,
	})
	cfg := w.Config()
	if err := w.CreateTopic(startCtx); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	if !waitFor(startCtx, func() bool { _, acked, _ := w.Counts(); return acked > 0 }) {
		t.Fatalf("no write was acknowledged on a healthy cluster; client errors: %v", w.Errors())
	}

	nem := &Nemesis{Cluster: c, Rng: rng, Topic: cfg.Topic, Partitions: cfg.Partitions}
	plan := PlanFaults(rng, max(1, int(duration/interval)))
	t.Logf("fault plan: %v", plan)
	hold := interval / 2
	runStart := time.Now()
	var faults []*faultRecord
	killedAll, killAllTries, recovered := false, 0, true
	for i := 0; ; i++ {
		elapsed := time.Since(runStart)
		if elapsed >= duration && (killedAll || killAllTries >= 2) {
			break
		}
		var kind FaultKind
		switch {
		case !killedAll && killAllTries < 2 && (i >= len(plan) || elapsed+interval >= duration):
			// A run whose cycles took longer than planned still
			// gets its one all-nodes kill, in the last slot.
			kind = FaultKillAll
		case i < len(plan):
			kind = plan[i]
		default:
			kind = RegularFaults()[rng.IntN(len(RegularFaults()))]
		}
		if kind == FaultKillAll {
			if killedAll {
				kind = RegularFaults()[rng.IntN(len(RegularFaults()))]
			} else {
				killAllTries++
			}
		}
		cycleStart := time.Now()
		f := runFault(t, c, nem, kind, hold)
		faults = append(faults, f)
		killedAll = killedAll || (f.kind == FaultKillAll && f.injectErr == nil)
		if f.ready.IsZero() {
			recovered = false
			break
		}
		pause(ctx, time.Until(cycleStart.Add(interval)))
	}
	faultEnd := time.Now()

	// Let the healed cluster take writes for a moment, then stop.
	pause(ctx, 5*time.Second)
	w.Stop()
	workloadEnd := time.Now()
	readCtx, cancelRead := context.WithTimeout(ctx, 60*time.Second)
	readErr := w.ReadAll(readCtx)
	cancelRead()
	h := w.History()

	for i, f := range faults {
		until := workloadEnd
		if i+1 < len(faults) {
			until = faults[i+1].injected
		}
		f.outage = Unavailability(h.Acks, f.injected, until, cfg.Partitions)
	}
	results := []Result{
		// Transactional records are not acknowledged writes in the
		// sense of no-lost-acks (an aborted one must not be read
		// back); CheckTransactions judges them.
		CheckNoLostAcks(h.Acks, h.Final),
		CheckOneValuePerOffset(slices.Concat(h.Acks, TxnAcks(h.Txns)), h.Consumed, h.Final),
		CheckNoDuplicates(h.Final),
		CheckNoPhantoms(h.Attempts, h.Txns, h.Consumed, h.Final),
		CheckProducerOrder(h.Acks, h.Txns, h.Final),
		CheckTransactions(h.Txns, h.Consumed, h.Final),
		CheckCommitsMonotonic(h.Commits),
		CheckWatermarksMonotonic(h.Watermarks),
		CheckMetaLinearizable(h.MetaOps, 2*time.Minute, filepath.Join(runDir, "linearizability")),
	}
	t.Log(summary(seed, nodes, faultEnd.Sub(runStart), interval, h, faults, results, w.Errors(), c.Crashes(), readErr))

	injected := 0
	for _, f := range faults {
		if f.injectErr == nil {
			injected++
		}
	}
	if need := RequiredFaults(duration, interval); injected < need {
		t.Errorf("injected %d faults; a %v run at %v intervals needs at least %d", injected, duration, interval, need)
	}
	if !killedAll {
		t.Error("the all-nodes kill never happened")
	}
	if !recovered {
		t.Error("the cluster did not recover from a fault (see the fault list)")
	}
	if len(h.Acks) == 0 {
		t.Error("no write was acknowledged")
	}
	if readErr != nil {
		t.Errorf("final read: %v", readErr)
	}
	if crashes := c.Crashes(); len(crashes) > 0 {
		t.Errorf("nodes exited on their own: %v", crashes)
	}
	for _, r := range results {
		if !r.OK() {
			t.Errorf("%s: %d violations", r.Name, r.Violations)
		}
	}
	if t.Failed() {
		if err := writeHistory(runDir, h); err != nil {
			t.Logf("write history: %v", err)
		}
	}
}

// writeHistory saves the recorded history for a failed run: history.json
// with everything, and meta-ops.txt with the metadata operations in
// invocation order, one a line.
func writeHistory(dir string, h History) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "history.json"), b, 0o644); err != nil {
		return err
	}
	ops := slices.Clone(h.MetaOps)
	slices.SortStableFunc(ops, func(a, b MetaOp) int { return cmp.Compare(a.Call, b.Call) })
	var lines strings.Builder
	for _, op := range ops {
		lines.WriteString(op.String())
		lines.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(dir, "meta-ops.txt"), []byte(lines.String()), 0o644)
}

// runFault injects one fault, holds it, then restores the cluster and waits
// for every node to be ready.
func runFault(t *testing.T, c *Cluster, nem *Nemesis, kind FaultKind, hold time.Duration) *faultRecord {
	t.Helper()
	f := &faultRecord{kind: kind, injected: time.Now()}
	injectCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	f.desc, f.injectErr = nem.Inject(injectCtx, kind)
	cancel()
	if f.injectErr != nil {
		t.Logf("fault %s: could not inject: %v (%s)", kind, f.injectErr, f.desc)
	} else {
		t.Logf("fault %s: %s", kind, f.desc)
	}
	pause(context.Background(), hold)
	f.healed = time.Now()
	restoreCtx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rec, err := c.Restore(restoreCtx)
	f.recovery = rec
	if err != nil {
		t.Logf("recovery from %s (%s) failed: %v", kind, rec, err)
		return f
	}
	f.ready = time.Now()
	t.Logf("recovered in %v: %s", f.ready.Sub(f.healed).Round(time.Millisecond), rec)
	return f
}

func summary(seed uint64, nodes int, ran, interval time.Duration, h History, faults []*faultRecord,
	results []Result, clientErrors map[string]int, crashes []string, readErr error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n=== chaos summary: seed %d, %d nodes, faults for %v at %v intervals\n",
		seed, nodes, ran.Round(time.Second), interval)
	fmt.Fprintf(&b, "records: %d attempted, %d acknowledged, %d failed; %d consumed by the group; %d in the final read\n",
		len(h.Attempts), len(h.Acks), h.Failed, len(h.Consumed), len(h.Final))
	b.WriteString(txnSummary(h.Txns))
	if readErr != nil {
		fmt.Fprintf(&b, "final read: %v\n", readErr)
	}

	byKind := make(map[FaultKind]int)
	var first, all []time.Duration
	notRecovered := 0
	for _, f := range faults {
		if f.injectErr != nil {
			continue
		}
		byKind[f.kind]++
		first = append(first, f.outage.FirstAck)
		all = append(all, f.outage.AllPartitions)
		if !f.outage.AllRecovered {
			notRecovered++
		}
	}
	kinds := make([]string, 0, len(byKind))
	for k, n := range byKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	fmt.Fprintf(&b, "faults: %d injected (%s)\n", len(first), strings.Join(kinds, ", "))
	fmt.Fprintf(&b, "write unavailability, fault to first acks=all write sent after it: p50 %v, max %v\n",
		Percentile(first, 0.5).Round(time.Millisecond), Percentile(first, 1).Round(time.Millisecond))
	fmt.Fprintf(&b, "until every partition took such a write: p50 %v, max %v", Percentile(all, 0.5).Round(time.Millisecond),
		Percentile(all, 1).Round(time.Millisecond))
	if notRecovered > 0 {
		fmt.Fprintf(&b, " (%d faults: some partition took none before the next fault; counted as the whole gap)", notRecovered)
	}
	b.WriteString("\n")
	for i, f := range faults {
		status := fmt.Sprintf("first write %v, all partitions %v", f.outage.FirstAck.Round(time.Millisecond),
			f.outage.AllPartitions.Round(time.Millisecond))
		switch {
		case f.injectErr != nil:
			status = "NOT INJECTED: " + f.injectErr.Error()
		case f.ready.IsZero():
			status += "; DID NOT RECOVER"
		default:
			status += fmt.Sprintf("; ready %v after heal", f.ready.Sub(f.healed).Round(time.Millisecond))
		}
		fmt.Fprintf(&b, "  %2d. %-22s %s: %s\n", i+1, f.kind, f.desc, status)
	}

	results = slices.Clone(results)
	metaCounts := make(map[string]int)
	for _, op := range h.MetaOps {
		metaCounts[op.Kind.String()+" "+op.Result.String()]++
	}
	var metas []string
	for k, n := range metaCounts {
		metas = append(metas, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(metas)
	fmt.Fprintf(&b, "metadata operations: %d (%s)\n", len(h.MetaOps), strings.Join(metas, ", "))
	fmt.Fprintf(&b, "observations: %d commits, %d high watermarks\n", len(h.Commits), len(h.Watermarks))

	if len(clientErrors) > 0 {
		type count struct {
			msg string
			n   int
		}
		var cs []count
		for m, n := range clientErrors {
			cs = append(cs, count{m, n})
		}
		slices.SortFunc(cs, func(a, b count) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.msg, b.msg)) })
		b.WriteString("client errors (most frequent):\n")
		for _, c := range cs[:min(len(cs), 10)] {
			fmt.Fprintf(&b, "  %6d  %s\n", c.n, c.msg)
		}
		// The transactional producer's errors are few beside the
		// others, but say what its transactions went through.
		var txnErrs []count
		for _, c := range cs[min(len(cs), 10):] {
			if strings.HasPrefix(c.msg, "txn ") {
				txnErrs = append(txnErrs, c)
			}
		}
		if len(txnErrs) > 0 {
			b.WriteString("transactional producer errors (most frequent, beyond those above):\n")
			for _, c := range txnErrs[:min(len(txnErrs), 5)] {
				fmt.Fprintf(&b, "  %6d  %s\n", c.n, c.msg)
			}
		}
	}
	for _, c := range crashes {
		fmt.Fprintf(&b, "CRASH: %s\n", c)
	}
	b.WriteString("checks:\n")
	for _, r := range results {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	return b.String()
}

// txnSummary is the summary's line about the transactional producer.
func txnSummary(txns []Txn) string {
	var committed, aborted, chosen, afterFailure, unconfirmed, unknown, records, acked int
	var took []time.Duration
	for _, t := range txns {
		if !t.Began.IsZero() && !t.Ended.IsZero() {
			took = append(took, t.Ended.Sub(t.Began))
		}
		switch t.Outcome {
		case TxnCommitted:
			committed++
		case TxnAborted:
			aborted++
			switch {
			case t.ProduceFailed:
				afterFailure++
			case t.ChoseAbort:
				chosen++
			}
			if t.EndErr != "" {
				unconfirmed++
			}
		case TxnUnknown:
			unknown++
		}
		for _, x := range t.Records {
			records++
			if x.Offset >= 0 {
				acked++
			}
		}
	}
	return fmt.Sprintf("transactions: %d (%d committed, %d aborted [%d chosen, %d after a failed produce, %d whose abort returned an error], "+
		"%d unknown); %d transactional records, %d acknowledged; duration p50 %v, max %v\n",
		len(txns), committed, aborted, chosen, afterFailure, unconfirmed, unknown, records, acked,
		Percentile(took, 0.5).Round(time.Millisecond), Percentile(took, 1).Round(time.Millisecond))
}

// buildWeir builds ./cmd/weir into a temporary directory.
func buildWeir(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "weir")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.Command("go", "build", "-o", bin, "github.com/weir-dev/weir/cmd/weir")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/weir: %v\n%s", err, out)
	}
	return bin
}

// runDirectory makes the directory for data and node logs; it is removed
// after a passing run and kept (and named) after a failing one.
func runDirectory(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "weir-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("run directory kept: %s (node logs node-*.log, data node-*/data)", dir)
			return
		}
		os.RemoveAll(dir)
	})
	t.Logf("run directory: %s", dir)
	return dir
}

// waitFor polls cond until it holds or ctx ends: the cluster is real, so
// there is nothing to wait on but its answers.
func waitFor(ctx context.Context, cond func() bool) bool {
	for !cond() {
		if !pause(ctx, 100*time.Millisecond) {
			return cond()
		}
	}
	return true
}
