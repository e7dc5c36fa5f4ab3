package produce_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/clitest"
	"github.com/weir-dev/weir/internal/config"
	"github.com/weir-dev/weir/internal/server/servertest"
)

var txnSummaryLine = regexp.MustCompile(`^produced (\d+) records? \([^)]+\) to (\S+) in \S+: \d+ records/s, [0-9.]+ MB/s; (\d+ transactions?) committed\n$`)

// readCommitted returns the values a read_committed consumer sees in
// topic, up to a marker record that this produces outside any transaction:
// everything committed before it is visible by then. Markers are left out.
func readCommitted(t *testing.T, addr, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const markers = "--marker-"
	marker := markers + time.Now().Format(time.RFC3339Nano)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(marker)}).FirstErr(); err != nil {
		t.Fatalf("produce the marker: %v", err)
	}
	rc, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []string
	for {
		fs := rc.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read_committed consumer: %v (read %q so far)", err, got)
		}
		for _, r := range fs.Records() {
			switch v := string(r.Value); {
			case v == marker:
				return got
			case !strings.HasPrefix(v, markers):
				got = append(got, v)
			}
		}
	}
}

func TestTransactionalProduce(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "tx", b)

	r := clitest.MustRun(t, "a\nb\nc\n", "produce", "tx", "--transactional-id", "load-1", b)
	if m := txnSummaryLine.FindStringSubmatch(r.Stderr); m == nil || m[1] != "3" || m[2] != "tx" || m[3] != "1 transaction" {
		t.Errorf("summary %q", r.Stderr)
	}
	// The topic ends in the commit marker: consume still sees the end.
	if out := clitest.MustRun(t, "", "consume", "tx", b).Stdout; out != "a\nb\nc\n" {
		t.Errorf("consume printed %q", out)
	}
	if got := strings.Join(readCommitted(t, n.Addr(), "tx"), ","); got != "a,b,c" {
		t.Errorf("read_committed sees %q, want a,b,c", got)
	}

	// --txn-batch commits every N records: 5 records in 3 transactions.
	r = clitest.MustRun(t, "d\ne\nf\ng\nh\n", "produce", "tx", "--transactional-id", "load-1", "--txn-batch", "2", "--format", "json", b)
	var s struct {
		Records         int64  `json:"records"`
		TransactionalID string `json:"transactional_id"`
		Transactions    int64  `json:"transactions_committed"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
		t.Fatalf("decode %q: %v", r.Stdout, err)
	}
	if s.Records != 5 || s.TransactionalID != "load-1" || s.Transactions != 3 {
		t.Errorf("json summary %+v", s)
	}
	// An input that fills its last transaction exactly, and an empty one.
	r = clitest.MustRun(t, "i\nj\n", "produce", "tx", "--transactional-id", "load-2", "--txn-batch", "2", b)
	if m := txnSummaryLine.FindStringSubmatch(r.Stderr); m == nil || m[1] != "2" || m[3] != "1 transaction" {
		t.Errorf("summary of an exactly full transaction %q", r.Stderr)
	}
	r = clitest.MustRun(t, "", "produce", "tx", "--transactional-id", "load-2", b)
	if m := txnSummaryLine.FindStringSubmatch(r.Stderr); m == nil || m[1] != "0" || m[3] != "0 transactions" {
		t.Errorf("summary of empty input %q", r.Stderr)
	}
	if got := strings.Join(readCommitted(t, n.Addr(), "tx"), ","); got != "a,b,c,d,e,f,g,h,i,j" {
		t.Errorf("read_committed sees %q", got)
	}
}

func TestTransactionalProduceFailure(t *testing.T) {
	n := servertest.Start(t, func(c *config.Config) { c.AutoCreateTopics = false })
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "small", "-c", "max.message.bytes=1000", b)
	big := strings.Repeat("x", 2000)

	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		// The broker refuses a record: nothing is committed.
		{"ok\n" + big + "\n", nil, "weir: produce to small[0]: MESSAGE_TOO_LARGE: "},
		// The input breaks off after a record was written: it is aborted.
		{"written\n" + strings.Repeat("y", 700) + "\n", []string{"--max-message-bytes", "600"}, "weir: read stdin: line 2 is longer than --max-message-bytes (600 bytes); transaction aborted, nothing committed"},
		// Only the transaction that failed is aborted.
		{"first\n" + big + "\n", []string{"--txn-batch", "1"}, "weir: produce to small[0]: MESSAGE_TOO_LARGE: "},
	} {
		got := clitest.Fails(t, tc.stdin, append(append([]string{"produce", "small", "--transactional-id", "bad"}, tc.args...), b)...)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("produce %v:\n got %s\nwant %s...", tc.args, got, tc.want)
		}
	}
	got := clitest.Fails(t, "first\n"+big+"\n", "produce", "small", "--transactional-id", "bad", "--txn-batch", "1", b)
	if !strings.HasSuffix(got, "; transaction aborted (1 transaction with 1 record committed before it)") {
		t.Errorf("failure after a committed transaction: %s", got)
	}
	got = clitest.Fails(t, "ok\n"+big+"\n", "produce", "small", "--transactional-id", "bad", b)
	if !strings.HasSuffix(got, "; transaction aborted, nothing committed") {
		t.Errorf("failure in the only transaction: %s", got)
	}
	// read_committed consumers see only the transactions that committed;
	// the aborted record is in the log for read_uncommitted ones.
	if got := strings.Join(readCommitted(t, n.Addr(), "small"), ","); got != "first,first" {
		t.Errorf("read_committed sees %q, want first,first", got)
	}
	if out := clitest.MustRun(t, "", "consume", "small", b).Stdout; !strings.Contains(out, "written\n") {
		t.Errorf("read_uncommitted does not see the aborted record: %q", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--txn-batch", "5"}, "weir: --txn-batch needs --transactional-id"},
		{[]string{"--transactional-id", "x", "--txn-batch", "-1"}, "weir: --txn-batch must be 0 (one transaction) or more, not -1"},
		{[]string{"--transactional-id", "x", "--acks", "1"}, `weir: --transactional-id needs --acks all, not "1"`},
	} {
		got := clitest.Fails(t, "a\n", append(append([]string{"produce", "small"}, tc.args...), b)...)
		if got != tc.want {
			t.Errorf("produce %v:\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}
}
