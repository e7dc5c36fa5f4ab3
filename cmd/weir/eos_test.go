package main_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	eosRecords = 20_000
	eosGroup   = "eos"
	eosTxnID   = "eos-transform"
	eosPerTxn  = 100
)

// TestExactlyOnceAcrossKills runs a transactional consume-transform-produce
// loop (franz-go's GroupTransactSession: read_committed input, output and
// input offsets committed in one transaction) against `weir serve`, kills
// the broker with SIGKILL twice while the loop runs and restarts it on the
// same directory and ports. Afterwards a read_committed reader of the output
// must see every input record transformed exactly once, and the group's
// offsets must be stable and at the end of the input.
//
// The first kill lands in the most delicate window: the broker has staged
// the transaction's offsets (TxnOffsetCommit answered) and the client has
// not yet sent EndTxn. The second lands wherever the loop happens to be.
func TestExactlyOnceAcrossKills(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("kill -9 and restart semantics are tested on Unix only")
	}
	if testing.Short() {
		t.Skip("builds and runs the weir binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildWeir(ctx, t, t.TempDir())
	// The client rides the crash out: after the restart it answers its
	// held TxnOffsetCommit and commits the transaction.
	t.Run("client-survives", func(t *testing.T) { runExactlyOnce(ctx, t, bin, false) })
	// The client hangs across the crash and a replacement takes its
	// transactional id: the hung transaction is aborted (fenced), and its
	// staged offsets must be dropped with it.
	t.Run("zombie-fenced", func(t *testing.T) {
		runExactlyOnce(ctx, t, bin, true)
	})
}

func runExactlyOnce(ctx context.Context, t *testing.T, bin string, zombie bool) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(ctx, t, bin, dataDir, "", "")
	defer func() { srv.stop(t) }()

	adm := kadm.NewClient(newFranz(t, kgo.SeedBrokers(srv.kafka)))
	defer adm.Close()
	for _, topic := range []string{"in", "out"} {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	p := newFranz(t, kgo.SeedBrokers(srv.kafka), kgo.DefaultProduceTopic("in"))
	batch := make([]*kgo.Record, 0, 1000)
	for i := range eosRecords {
		batch = append(batch, &kgo.Record{Value: []byte(strconv.Itoa(i))})
		if len(batch) == cap(batch) {
			if err := p.ProduceSync(ctx, batch...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	p.Close()

	// The crash hook: once armed, the next successful TxnOffsetCommit
	// response is held, before the client sees it, until resume.
	loopCtx, stopLoops := context.WithCancel(ctx)
	var armed atomic.Bool
	atCrashPoint, resume := make(chan struct{}), make(chan struct{})
	hook := txnOffsetCommitHook{fire: func() {
		if !armed.CompareAndSwap(true, false) {
			return
		}
		close(atCrashPoint)
		select {
		case <-resume:
		case <-loopCtx.Done():
		}
	}}
	var wg sync.WaitGroup
	defer func() {
		stopLoops()
		wg.Wait()
	}()
	startLoop := func(l *eosLoop) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run(loopCtx, t, srv.kafka, hook)
		}()
	}
	first := &eosLoop{name: "first", once: zombie}
	startLoop(first)
	loops := []*eosLoop{first}
	describe := func() string {
		s := ""
		for _, l := range loops {
			s += l.String() + "; "
		}
		return s
	}

	committed := func(ctx context.Context) (int64, error) {
		offs, err := adm.FetchOffsets(ctx, eosGroup)
		if err != nil {
			return -1, err
		}
		var sum int64
		var firstErr error
		offs.Each(func(o kadm.OffsetResponse) {
			switch {
			case o.Topic != "in":
			case o.Err != nil:
				firstErr = o.Err
			case o.At > 0:
				sum += o.At
			}
		})
		return sum, firstErr
	}
	poll := func(what string, cond func(sum int64) bool) {
		t.Helper()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			sum, _ := committed(ctx)
			if cond(sum) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("timed out waiting until %s (input committed: %d; %s)\n%s", what, sum, describe(), srv.log())
			case <-tick.C:
			}
		}
	}
	restart := func() {
		srv.kill(t)
		srv = startServer(ctx, t, bin, dataDir, srv.kafka, srv.http)
	}

	poll("a third of the input is committed", func(sum int64) bool { return sum >= eosRecords/3 })
	armed.Store(true)
	select {
	case <-atCrashPoint:
	case <-ctx.Done():
		t.Fatalf("no TxnOffsetCommit after arming (%s)", describe())
	}
	first.mu.Lock()
	commitsBeforeCrash := first.commits // first is held inside End
	first.mu.Unlock()
	restart()
	if zombie {
		// franz-go initializes its producer id lazily, at the first
		// produce; an application replacing a hung instance fences it
		// at start, as Java's initTransactions does.
		fenced := make(chan struct{})
		replacement := &eosLoop{name: "replacement", beforeFirst: func(ctx context.Context) error {
			err := fenceTransactionalID(ctx, srv.kafka, eosTxnID)
			close(fenced)
			return err
		}}
		loops = append(loops, replacement)
		startLoop(replacement)
		select {
		case <-fenced:
		case <-ctx.Done():
			t.Fatal("the replacement did not start")
		}
	}
	close(resume)

	poll("two thirds of the input are committed", func(sum int64) bool { return sum >= 2*eosRecords/3 })
	restart()
	poll("all input is committed", func(sum int64) bool { return sum == eosRecords })
	stopLoops()
	wg.Wait()
	t.Logf("loops: %s", describe())
	if zombie && (first.commits != commitsBeforeCrash || len(first.errs) == 0) {
		t.Errorf("the fenced instance went on: %s", first)
	}

	// The commits are stable (no transaction holds them) and durable.
	for round := range 2 {
		sum, err := committed(kadm.RequireStable(ctx))
		if err != nil || sum != eosRecords {
			t.Fatalf("round %d: stable committed offsets sum to %d (%v), want %d", round, sum, err, eosRecords)
		}
		if round == 0 {
			srv.stop(t)
			srv = startServer(ctx, t, bin, dataDir, srv.kafka, srv.http)
		}
	}

	// A non-transactional record at the end of each output partition: a
	// read_committed reader gets it only once every transaction before it
	// is decided, so reading up to it reads everything.
	const sentinel = "end"
	p = newFranz(t, kgo.SeedBrokers(srv.kafka), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for part := range int32(3) {
		if err := p.ProduceSync(ctx, &kgo.Record{Topic: "out", Partition: part, Value: []byte(sentinel)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	c := newFranz(t, kgo.SeedBrokers(srv.kafka), kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer c.Close()
	seen := make([]int, eosRecords)
	ends := 0
	for ends < 3 {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read output: %v (sentinels seen: %d)", err, ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			if v == sentinel {
				ends++
				return
			}
			i, err := strconv.Atoi(v[:max(len(v)-1, 0)])
			if err != nil || v[len(v)-1] != '!' || i < 0 || i >= eosRecords {
				t.Fatalf("unexpected output %q at %d/%d", v, r.Partition, r.Offset)
			}
			seen[i]++
		})
	}
	var dup, missing []int
	for i, n := range seen {
		switch {
		case n == 0:
			missing = append(missing, i)
		case n > 1:
			dup = append(dup, i)
		}
	}
	if len(dup) > 0 || len(missing) > 0 {
		t.Fatalf("output not exactly once: %d duplicated (e.g. %v), %d missing (e.g. %v); loops: %s",
			len(dup), dup[:min(len(dup), 5)], len(missing), missing[:min(len(missing), 5)], describe())
	}
}

func newFranz(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// fenceTransactionalID bumps id's producer epoch with InitProducerID, which
// aborts the transaction the previous holder left open.
func fenceTransactionalID(ctx context.Context, addr, id string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = 60_000
	req.ProducerID, req.ProducerEpoch = -1, -1
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}

// txnOffsetCommitHook calls fire when a TxnOffsetCommit response has been
// read without error, before the client processes it.
type txnOffsetCommitHook struct{ fire func() }

func (h txnOffsetCommitHook) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.TxnOffsetCommit) && err == nil {
		h.fire()
	}
}

// eosLoop reads `in` and writes each value with "!" appended to `out`, in
// transactions of up to eosPerTxn records. A session that fails is closed
// and replaced, as an application would, unless once is set.
type eosLoop struct {
	name        string
	once        bool
	beforeFirst func(context.Context) error

	mu                                  sync.Mutex
	sessions, commits, aborts, produced int
	errs                                []string
}

func (l *eosLoop) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%s: %d sessions, %d commits, %d aborts, %d records produced, errors %q",
		l.name, l.sessions, l.commits, l.aborts, l.produced, l.errs)
}

func (l *eosLoop) note(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
}

func (l *eosLoop) run(ctx context.Context, t *testing.T, addr string, hook kgo.Hook) {
	if l.beforeFirst != nil {
		if err := l.beforeFirst(ctx); err != nil {
			l.note(func() { l.errs = append(l.errs, err.Error()) })
			return
		}
	}
	for ctx.Err() == nil {
		err := l.session(ctx, addr, hook)
		if err != nil && ctx.Err() == nil {
			l.note(func() { l.errs = append(l.errs, err.Error()) })
			t.Logf("%s: transact session ended: %v", l.name, err)
		}
		if l.once {
			return
		}
	}
}

func (l *eosLoop) session(ctx context.Context, addr string, hook kgo.Hook) error {
	s, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(addr), kgo.WithHooks(hook),
		kgo.TransactionalID(eosTxnID), kgo.ConsumerGroup(eosGroup), kgo.ConsumeTopics("in"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DefaultProduceTopic("out"), kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return err
	}
	defer s.Close()
	l.note(func() { l.sessions++ })
	for {
		fs := s.PollRecords(ctx, eosPerTxn)
		if ctx.Err() != nil {
			return nil
		}
		if fs.IsClientClosed() {
			return errors.New("client closed")
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		var produceErr atomic.Value
		fs.EachRecord(func(r *kgo.Record) {
			out := &kgo.Record{Value: append([]byte(string(r.Value)), '!')}
			s.Produce(ctx, out, func(_ *kgo.Record, err error) {
				if err != nil {
					produceErr.Store(err)
				}
			})
		})
		// End flushes, commits the offsets of what was polled and ends the
		// transaction; it aborts if any of that failed or the group
		// rebalanced meanwhile, and rewinds to the committed offsets.
		committed, err := s.End(ctx, kgo.TryCommit)
		if err != nil {
			return fmt.Errorf("end: %w", err)
		}
		l.note(func() {
			if committed {
				l.commits++
				l.produced += fs.NumRecords()
			} else {
				l.aborts++
			}
		})
		if e, _ := produceErr.Load().(error); e != nil && committed {
			return fmt.Errorf("a transaction committed although a produce failed: %w", e)
		}
	}
}
