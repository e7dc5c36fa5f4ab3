package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ClusterConfig describes a cluster of weir processes.
type ClusterConfig struct {
	// Binary is the path of a built weir binary.
	Binary string
	// Dir is the run directory: each node keeps its data in
	// Dir/node-<id>/data and writes its output to Dir/node-<id>.log.
	Dir string
	// Nodes is how many nodes to run (at least 1).
	Nodes int
	// ExtraArgs are appended to every node's `weir serve` command line.
	ExtraArgs []string
	// Env, if not empty, is added to the harness's environment for every
	// node ("KEY=value" entries).
	Env []string
	// Logf, if set, receives a line per process start and exit.
	Logf func(format string, args ...any)
}

// NodeInfo is where one node listens and keeps its files.
type NodeInfo struct {
	ID        int32 // broker id: index + 1
	KafkaAddr string
	HTTPAddr  string
	RPCAddr   string
	DataDir   string
	LogPath   string
}

// Cluster runs N weir processes on 127.0.0.1 with a fault-injecting proxy on
// every directed node-to-node RPC link. Node i reaches node j only through
// Proxy(i, j), so cutting that proxy cuts exactly the traffic i sends to j.
// Nodes are named by index (0..N-1) in the API and by broker id (index+1)
// in descriptions.
//
// Lock order: Cluster.mu, then a Proxy's.
type Cluster struct {
	cfg     ClusterConfig
	nodes   []NodeInfo
	proxies [][]*Proxy // proxies[i][j] carries i -> j; nil when i == j
	waits   sync.WaitGroup

	mu struct {
		sync.Mutex
		procs    []*process // nil while a node is stopped
		paused   []bool
		crashes  []string // exits nobody asked for
		starts   []int
		isClosed bool
	}
}

// process is one run of one node.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	err    error         // the exit status; read after exited is closed
	killed bool          // guarded by Cluster.mu: the harness killed it
}

// NewCluster allocates ports, creates the run directories and starts the
// proxies. It starts no process; call StartAll.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("cluster: need at least one node, have %d", cfg.Nodes)
	}
	if cfg.Binary == "" || cfg.Dir == "" {
		return nil, errors.New("cluster: Binary and Dir are required")
	}
	ports, err := freePorts(3 * cfg.Nodes)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg}
	for i := range cfg.Nodes {
		id := int32(i + 1)
		n := NodeInfo{
			ID:        id,
			KafkaAddr: ports[3*i],
			HTTPAddr:  ports[3*i+1],
			RPCAddr:   ports[3*i+2],
			DataDir:   filepath.Join(cfg.Dir, fmt.Sprintf("node-%d", id), "data"),
			LogPath:   filepath.Join(cfg.Dir, fmt.Sprintf("node-%d.log", id)),
		}
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		c.nodes = append(c.nodes, n)
	}
	c.mu.procs = make([]*process, cfg.Nodes)
	c.mu.paused = make([]bool, cfg.Nodes)
	c.mu.starts = make([]int, cfg.Nodes)
	c.proxies = make([][]*Proxy, cfg.Nodes)
	for i := range cfg.Nodes {
		c.proxies[i] = make([]*Proxy, cfg.Nodes)
		for j := range cfg.Nodes {
			if i == j {
				continue
			}
			p, err := NewProxy(c.nodes[j].RPCAddr)
			if err != nil {
				c.Close()
				return nil, err
			}
			c.proxies[i][j] = p
		}
	}
	return c, nil
}

// freePorts picks n distinct free loopback addresses by listening on port 0.
// All listeners stay open until every port is picked, so they differ; a
// port can still be taken by someone else before the node binds it, which
// on a quiet machine is rare enough.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// Size is the number of nodes.
func (c *Cluster) Size() int { return len(c.nodes) }

// Node describes node i.
func (c *Cluster) Node(i int) NodeInfo { return c.nodes[i] }

// Proxy is the link from node i to node j.
func (c *Cluster) Proxy(i, j int) *Proxy { return c.proxies[i][j] }

// KafkaAddrs lists every node's Kafka address.
func (c *Cluster) KafkaAddrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.KafkaAddr
	}
	return out
}

func (c *Cluster) name(i int) string { return "n" + strconv.Itoa(int(c.nodes[i].ID)) }

func (c *Cluster) check(i int) error {
	if i < 0 || i >= len(c.nodes) {
		return fmt.Errorf("cluster: no node %d (have %d)", i, len(c.nodes))
	}
	return nil
}

func (c *Cluster) logf(format string, args ...any) {
	if c.cfg.Logf != nil {
		c.cfg.Logf(format, args...)
	}
}

// Args is node i's `weir serve` command line (without the binary).
func (c *Cluster) Args(i int) []string {
	n := c.nodes[i]
	seeds := make([]string, len(c.nodes))
	var dialMap []string
	for j, m := range c.nodes {
		seeds[j] = m.RPCAddr
		if j != i {
			dialMap = append(dialMap, m.RPCAddr+"="+c.proxies[i][j].Addr())
		}
	}
	args := []string{"serve",
		"--node-id", strconv.Itoa(int(n.ID)),
		"--data-dir", n.DataDir,
		"--kafka-addr", n.KafkaAddr,
		"--http-addr", n.HTTPAddr,
		"--rpc-addr", n.RPCAddr,
		"--seeds", strings.Join(seeds, ","),
	}
	if len(dialMap) > 0 {
		args = append(args, "--rpc-dial-map", strings.Join(dialMap, ","))
	}
	return append(args, c.cfg.ExtraArgs...)
}

// Start starts node i, which must not be running. It does not wait for
// readiness; see WaitReady.
func (c *Cluster) Start(i int) error {
	if err := c.check(i); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.isClosed {
		return errors.New("cluster: closed")
	}
	if c.mu.procs[i] != nil {
		return fmt.Errorf("cluster: %s is already running", c.name(i))
	}
	n := c.nodes[i]
	logFile, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open node log: %w", err)
	}
	args := c.Args(i)
	fmt.Fprintf(logFile, "\n=== chaos: start %s at %s: %s %s\n", c.name(i),
		time.Now().Format(time.RFC3339Nano), c.cfg.Binary, strings.Join(args, " "))
	cmd := exec.Command(c.cfg.Binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr()
	if len(c.cfg.Env) > 0 {
		cmd.Env = append(os.Environ(), c.cfg.Env...)
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", c.name(i), err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	c.mu.procs[i] = p
	c.mu.paused[i] = false
	c.mu.starts[i]++
	c.logf("chaos: started %s (pid %d)", c.name(i), cmd.Process.Pid)
	c.waits.Add(1)
	go func() {
		defer c.waits.Done()
		p.err = cmd.Wait()
		logFile.Close()
		c.mu.Lock()
		if c.mu.procs[i] == p {
			c.mu.procs[i] = nil
			c.mu.paused[i] = false
		}
		if !p.killed {
			msg := fmt.Sprintf("%s exited on its own at %s: %v", c.name(i), time.Now().Format(time.StampMilli), p.err)
			c.mu.crashes = append(c.mu.crashes, msg)
			c.logf("chaos: %s", msg)
		}
		c.mu.Unlock()
		close(p.exited)
	}()
	return nil
}

// StartAll starts every node that is not running.
func (c *Cluster) StartAll() error {
	for i := range c.nodes {
		if c.Running(i) {
			continue
		}
		if err := c.Start(i); err != nil {
			return err
		}
	}
	return nil
}

// Running reports whether node i has a live process (paused or not).
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.procs[i] != nil
}

// Paused reports whether node i is stopped with SIGSTOP.
func (c *Cluster) Paused(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.paused[i]
}

// Crashes lists node exits the harness did not cause.
func (c *Cluster) Crashes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.mu.crashes)
}

// Kill sends SIGKILL to node i and waits for it to exit.
func (c *Cluster) Kill(i int) (string, error) {
	if err := c.check(i); err != nil {
		return "", err
	}
	c.mu.Lock()
	p := c.mu.procs[i]
	if p == nil {
		c.mu.Unlock()
		return "", fmt.Errorf("cluster: %s is not running", c.name(i))
	}
	p.killed = true
	c.mu.Unlock()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return "", fmt.Errorf("kill %s: %w", c.name(i), err)
	}
	<-p.exited
	return "kill -9 " + c.name(i), nil
}

// KillAll sends SIGKILL to every running node at once and waits for them.
func (c *Cluster) KillAll() (string, error) {
	c.mu.Lock()
	var victims []*process
	var names []string
	for i, p := range c.mu.procs {
		if p != nil {
			p.killed = true
			victims = append(victims, p)
			names = append(names, c.name(i))
		}
	}
	c.mu.Unlock()
	var errs []error
	for _, p := range victims {
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, err)
		}
	}
	for _, p := range victims {
		<-p.exited
	}
	return "kill -9 all (" + strings.Join(names, ",") + ")", errors.Join(errs...)
}

// Pause stops node i with SIGSTOP. It keeps its sockets; peers and clients
// see it hang.
func (c *Cluster) Pause(i int) (string, error) {
	if err := c.check(i); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.mu.procs[i]
	if p == nil {
		return "", fmt.Errorf("cluster: %s is not running", c.name(i))
	}
	if err := stopProcess(p.cmd.Process); err != nil {
		return "", fmt.Errorf("pause %s: %w", c.name(i), err)
	}
	c.mu.paused[i] = true
	return "pause (SIGSTOP) " + c.name(i), nil
}

// Resume continues node i after Pause (SIGCONT).
func (c *Cluster) Resume(i int) (string, error) {
	if err := c.check(i); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.mu.procs[i]
	if p == nil {
		return "", fmt.Errorf("cluster: %s is not running", c.name(i))
	}
	if err := continueProcess(p.cmd.Process); err != nil {
		return "", fmt.Errorf("resume %s: %w", c.name(i), err)
	}
	c.mu.paused[i] = false
	return "resume (SIGCONT) " + c.name(i), nil
}

// Partition cuts every link between nodes of different groups, both ways.
// Nodes named in no group form one more group together, so Partition([]int{k})
// isolates node k. Links within a group are left as they are; Heal undoes it.
func (c *Cluster) Partition(groups ...[]int) (string, error) {
	group := make([]int, len(c.nodes))
	for i := range group {
		group[i] = -1
	}
	for g, members := range groups {
		for _, i := range members {
			if err := c.check(i); err != nil {
				return "", err
			}
			if group[i] != -1 {
				return "", fmt.Errorf("cluster: node %d is in two groups", i)
			}
			group[i] = g
		}
	}
	var rest []int
	for i := range group {
		if group[i] == -1 {
			group[i] = len(groups)
			rest = append(rest, i)
		}
	}
	for i := range c.nodes {
		for j := range c.nodes {
			if i != j && group[i] != group[j] {
				c.proxies[i][j].Blackhole()
			}
		}
	}
	all := slices.Clone(groups)
	if len(rest) > 0 {
		all = append(all, rest)
	}
	parts := make([]string, len(all))
	for g, members := range all {
		names := make([]string, len(members))
		for k, i := range members {
			names[k] = c.name(i)
		}
		parts[g] = "{" + strings.Join(names, ",") + "}"
	}
	return "partition " + strings.Join(parts, " | "), nil
}

// OneWay cuts the link from node `from` to node `to` only.
func (c *Cluster) OneWay(from, to int) (string, error) {
	if err := c.checkLink(from, to); err != nil {
		return "", err
	}
	c.proxies[from][to].Blackhole()
	return fmt.Sprintf("one-way partition %s -/-> %s", c.name(from), c.name(to)), nil
}

// Slow delays every chunk on the link from node i to node j by delay.
func (c *Cluster) Slow(i, j int, delay time.Duration) (string, error) {
	if err := c.checkLink(i, j); err != nil {
		return "", err
	}
	c.proxies[i][j].Slow(delay, 0)
	return fmt.Sprintf("slow link %s -> %s (+%v)", c.name(i), c.name(j), delay), nil
}

func (c *Cluster) checkLink(i, j int) error {
	if err := c.check(i); err != nil {
		return err
	}
	if err := c.check(j); err != nil {
		return err
	}
	if i == j {
		return fmt.Errorf("cluster: no link from node %d to itself", i)
	}
	return nil
}

// Heal returns every link to pass.
func (c *Cluster) Heal() string {
	for i := range c.proxies {
		for _, p := range c.proxies[i] {
			if p != nil {
				p.Heal()
			}
		}
	}
	return "heal network"
}

// Restore undoes every fault: heals the network, resumes paused nodes,
// starts stopped (killed or crashed) ones, then waits until every node is
// ready. It describes what it did.
func (c *Cluster) Restore(ctx context.Context) (string, error) {
	done := []string{c.Heal()}
	for i := range c.nodes {
		switch {
		case c.Paused(i):
			d, err := c.Resume(i)
			if err != nil {
				return strings.Join(done, "; "), err
			}
			done = append(done, d)
		case !c.Running(i):
			if err := c.Start(i); err != nil {
				return strings.Join(done, "; "), err
			}
			done = append(done, "start "+c.name(i))
		}
	}
	return strings.Join(done, "; "), c.WaitAllReady(ctx)
}

// WaitReady polls node i's /readyz until it answers 200, the process exits,
// or ctx ends.
func (c *Cluster) WaitReady(ctx context.Context, i int) error {
	if err := c.check(i); err != nil {
		return err
	}
	url := "http://" + c.nodes[i].HTTPAddr + "/readyz"
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		c.mu.Lock()
		p := c.mu.procs[i]
		c.mu.Unlock()
		if p == nil {
			return fmt.Errorf("%s is not running; log tail:\n%s", c.name(i), c.LogTail(i, 2000))
		}
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil); err == nil {
			if resp, err := client.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; log tail:\n%s", c.name(i), ctx.Err(), c.LogTail(i, 2000))
		case <-p.exited:
		case <-tick.C:
		}
	}
}

// WaitAllReady waits for every node's readiness, in parallel.
func (c *Cluster) WaitAllReady(ctx context.Context) error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.WaitReady(ctx, i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// LogTail returns up to the last n bytes of node i's output.
func (c *Cluster) LogTail(i, n int) string {
	f, err := os.Open(c.nodes[i].LogPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(st.Size()-int64(n), 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	return string(b)
}

// TearTail damages the tail of one partition log on node i, as a torn write
// would, and restarts the node. If the node is running it is killed first.
// It picks a random partition directory under DATA/topics that holds segment
// files and, in its newest segment, either cuts a random 1..4096 bytes off
// the end of the data or flips 1..4 random bytes within the data's last
// 4 KiB. "The data" ends at the last non-zero byte: an active segment is
// zero-padded to a block boundary, and damage to padding alone would test
// nothing.
func (c *Cluster) TearTail(i int, rng *rand.Rand) (string, error) {
	if err := c.check(i); err != nil {
		return "", err
	}
	var desc []string
	if c.Running(i) {
		d, err := c.Kill(i)
		if err != nil {
			return "", err
		}
		desc = append(desc, d)
	}
	d, err := tearTail(c.nodes[i].DataDir, rng)
	if err != nil {
		// Restart the node anyway so the run can go on.
		if serr := c.Start(i); serr != nil {
			err = errors.Join(err, serr)
		}
		return strings.Join(desc, "; "), fmt.Errorf("tear tail on %s: %w", c.name(i), err)
	}
	desc = append(desc, "torn tail on "+c.name(i)+": "+d)
	if err := c.Start(i); err != nil {
		return strings.Join(desc, "; "), err
	}
	return strings.Join(append(desc, "start "+c.name(i)), "; "), nil
}

// tearTail does TearTail's damage under dataDir and describes it.
func tearTail(dataDir string, rng *rand.Rand) (string, error) {
	dirs, err := filepath.Glob(filepath.Join(dataDir, "topics", "*"))
	if err != nil {
		return "", err
	}
	type candidate struct {
		segment string
		end     int64
	}
	var cands []candidate
	for _, d := range dirs {
		segs, _ := filepath.Glob(filepath.Join(d, "*.log"))
		if len(segs) == 0 {
			continue
		}
		slices.Sort(segs) // %020d names sort by base offset
		newest := segs[len(segs)-1]
		end, err := dataEnd(newest)
		if err != nil {
			return "", err
		}
		if end > 0 {
			cands = append(cands, candidate{newest, end})
		}
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("no partition under %s has segment data", dataDir)
	}
	pick := cands[rng.IntN(len(cands))]
	rel, _ := filepath.Rel(dataDir, pick.segment)
	window := min(pick.end, 4096)

	if rng.IntN(2) == 0 {
		cut := 1 + rng.Int64N(window)
		if err := os.Truncate(pick.segment, pick.end-cut); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s truncated by %d bytes (data ended at %d)", rel, cut, pick.end), nil
	}
	f, err := os.OpenFile(pick.segment, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	flips := 1 + rng.IntN(4)
	var at []string
	for range flips {
		pos := pick.end - window + rng.Int64N(window)
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, pos); err != nil {
			return "", err
		}
		b[0] ^= byte(1 + rng.IntN(255))
		if _, err := f.WriteAt(b, pos); err != nil {
			return "", err
		}
		at = append(at, strconv.FormatInt(pos, 10))
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: flipped bytes at %s (data ends at %d)", rel, strings.Join(at, ","), pick.end), nil
}

// dataEnd is the offset just past the last non-zero byte of the file.
func dataEnd(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 64<<10)
	for end := st.Size(); end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for k := len(b) - 1; k >= 0; k-- {
			if b[k] != 0 {
				return start + int64(k) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// admin returns a short-lived admin client seeded with the nodes that can
// answer now (running and not paused). Close the kgo client after use.
func (c *Cluster) admin() (*kadm.Client, *kgo.Client, error) {
	var seeds []string
	c.mu.Lock()
	for i, p := range c.mu.procs {
		if p != nil && !c.mu.paused[i] {
			seeds = append(seeds, c.nodes[i].KafkaAddr)
		}
	}
	c.mu.Unlock()
	if len(seeds) == 0 {
		return nil, nil, errors.New("cluster: no node is up")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DialTimeout(2*time.Second),
		kgo.RequestTimeoutOverhead(3*time.Second), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl, nil
}

// indexOf maps a broker id to a node index.
func (c *Cluster) indexOf(id int32) (int, error) {
	for i, n := range c.nodes {
		if n.ID == id {
			return i, nil
		}
	}
	return -1, fmt.Errorf("cluster: no node has broker id %d", id)
}

// PartitionLeader asks the cluster (Kafka Metadata) which node leads a
// partition. The answer can be stale during a fault.
func (c *Cluster) PartitionLeader(ctx context.Context, topic string, partition int32) (int, error) {
	adm, cl, err := c.admin()
	if err != nil {
		return -1, err
	}
	defer cl.Close()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return -1, fmt.Errorf("metadata for %s: %w", topic, err)
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return -1, fmt.Errorf("metadata for %s: topic missing or failed: %v", topic, td.Err)
	}
	pd, ok := td.Partitions[partition]
	if !ok || pd.Leader < 0 {
		return -1, fmt.Errorf("%s-%d has no leader", topic, partition)
	}
	return c.indexOf(pd.Leader)
}

// ControllerLeader asks the cluster (Kafka Metadata's controller id) which
// node leads the controller.
func (c *Cluster) ControllerLeader(ctx context.Context) (int, error) {
	adm, cl, err := c.admin()
	if err != nil {
		return -1, err
	}
	defer cl.Close()
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return -1, fmt.Errorf("metadata: %w", err)
	}
	if md.Controller < 0 {
		return -1, errors.New("cluster reports no controller")
	}
	return c.indexOf(md.Controller)
}

// Close kills every node, closes the proxies and waits for everything the
// cluster started.
func (c *Cluster) Close() error {
	c.mu.Lock()
	c.mu.isClosed = true
	c.mu.Unlock()
	_, err := c.KillAll()
	c.waits.Wait()
	for i := range c.proxies {
		for _, p := range c.proxies[i] {
			if p != nil {
				p.Close()
			}
		}
	}
	return err
}
