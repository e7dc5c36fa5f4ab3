package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ack(p int32, o int64, v string) Ack { return Ack{Partition: p, Offset: o, Value: v} }
func rd(p int32, o int64, v string) Read { return Read{Partition: p, Offset: o, Value: v} }

// expect fails the test unless r passes (violations == 0) or fails with
// exactly the given number of violations, each example containing want.
func expect(t *testing.T, r Result, violations int, want string) {
	t.Helper()
	if r.Violations != violations {
		t.Fatalf("%s: %d violations, want %d\n%s", r.Name, r.Violations, violations, r)
	}
	if r.OK() != (violations == 0) {
		t.Fatalf("%s: OK() = %v with %d violations", r.Name, r.OK(), violations)
	}
	for _, e := range r.Examples {
		if !strings.Contains(e, want) {
			t.Fatalf("%s: violation %q does not mention %q", r.Name, e, want)
		}
	}
}

func TestCheckNoLostAcks(t *testing.T) {
	acks := []Ack{ack(0, 0, "p0-0"), ack(0, 1, "p0-1"), ack(1, 0, "p1-0")}
	final := []Read{rd(0, 0, "p0-0"), rd(0, 1, "p0-1"), rd(1, 0, "p1-0"), rd(1, 1, "p1-1")}
	expect(t, CheckNoLostAcks(acks, final), 0, "")

	// p0-1 is gone from the middle of partition 0; at 1@0 another value
	// took p1-0's place; partition 2 could not be read past offset 1.
	acks = append(acks, ack(2, 1, "p3-3"))
	lossy := []Read{rd(0, 0, "p0-0"), rd(0, 2, "p1-2"), rd(1, 0, "p2-9"), rd(2, 0, "p3-1")}
	r := CheckNoLostAcks(acks, lossy)
	expect(t, r, 3, "acked")
	if !strings.Contains(r.Examples[0], "missing") || !strings.Contains(r.Examples[1], "p2-9") ||
		!strings.Contains(r.Examples[2], "stopped at offset 1") {
		t.Fatalf("unexpected descriptions:\n%s", r)
	}
	if r.Checked != 4 || !strings.Contains(r.Note, "1 of the violations") {
		t.Fatalf("checked %d, note %q", r.Checked, r.Note)
	}
}

func TestCheckOneValuePerOffset(t *testing.T) {
	acks := []Ack{ack(0, 0, "p0-0"), ack(0, 1, "p0-1")}
	consumed := []Read{rd(0, 0, "p0-0"), rd(0, 0, "p0-0"), rd(0, 1, "p0-1")}
	final := []Read{rd(0, 0, "p0-0"), rd(0, 1, "p0-1"), rd(0, 2, "p1-0")}
	expect(t, CheckOneValuePerOffset(acks, consumed, final), 0, "")

	// The consumer saw a different value at 0@1 than was acked, and the
	// final read disagrees with the consumer at 0@2; each offset counts once.
	consumed = []Read{rd(0, 1, "p3-3"), rd(0, 2, "p1-0"), rd(0, 1, "p3-4")}
	final = []Read{rd(0, 2, "p1-1")}
	r := CheckOneValuePerOffset(acks, consumed, final)
	expect(t, r, 2, "holds")
	if !strings.Contains(r.Examples[0], "(ack)") || !strings.Contains(r.Examples[1], "read set 2") {
		t.Fatalf("sources not named:\n%s", r)
	}
}

func TestCheckNoDuplicates(t *testing.T) {
	// Reading one offset twice is not a duplicate.
	expect(t, CheckNoDuplicates([]Read{rd(0, 0, "p0-0"), rd(0, 0, "p0-0"), rd(1, 0, "p0-1")}), 0, "")
	// The same value at two offsets, and in two partitions, is.
	r := CheckNoDuplicates([]Read{rd(0, 0, "p0-0"), rd(0, 1, "p0-0"), rd(1, 0, "p0-1"), rd(2, 0, "p0-1")})
	expect(t, r, 2, "p0-")
}

func TestCheckNoPhantoms(t *testing.T) {
	attempts := []Attempt{{Value: "p0-0", Partition: 0}, {Value: "p0-1", Partition: 1}}
	txns := []Txn{
		txn(0, TxnCommitted, trec("t0-0", 2, 0), trec("t0-1", 3, 0)),
		txn(1, TxnAborted, trec("t1-0", 2, 1)),
	}
	expect(t, CheckNoPhantoms(attempts, txns, []Read{rd(0, 0, "p0-0"), rd(2, 0, "t0-0")},
		[]Read{rd(1, 5, "p0-1"), rd(3, 0, "t0-1"), rd(2, 1, "t1-0")}), 0, "")

	r := CheckNoPhantoms(attempts, txns, []Read{rd(0, 0, "garbage"), rd(0, 1, "p0-1")})
	expect(t, r, 2, "holds")
	if !strings.Contains(r.Examples[0], "no producer") || !strings.Contains(r.Examples[1], "partition 1") {
		t.Fatalf("unexpected descriptions:\n%s", r)
	}
	// A transactional-looking value no transaction wrote is a phantom,
	// and so is one read from the wrong partition.
	r = CheckNoPhantoms(attempts, txns, []Read{rd(2, 5, "t7-0"), rd(4, 0, "t0-1")})
	expect(t, r, 2, "holds")
	if !strings.Contains(r.Examples[0], "no producer") || !strings.Contains(r.Examples[1], "partition 3") {
		t.Fatalf("unexpected descriptions:\n%s", r)
	}
}

func TestCheckProducerOrder(t *testing.T) {
	// Two producers interleaved in partition 0, each in order; the acks
	// and the final read agree.
	acks := []Ack{ack(0, 0, "p0-0"), ack(0, 2, "p0-12")}
	final := []Read{rd(0, 0, "p0-0"), rd(0, 1, "p1-0"), rd(0, 2, "p0-12"), rd(0, 3, "p1-12"), rd(1, 0, "p0-1")}
	expect(t, CheckProducerOrder(acks, nil, final), 0, "")

	// p1-24 landed before p1-12 in partition 0.
	final = []Read{rd(0, 0, "p1-24"), rd(0, 1, "p1-12"), rd(0, 2, "p0-0")}
	r := CheckProducerOrder(nil, nil, final)
	expect(t, r, 1, "p1-12 at offset 1 comes after p1-24 at offset 0")

	// An ack alone can reveal reordering the final read lacks (the value
	// at offset 5 was lost, which another check reports).
	r = CheckProducerOrder([]Ack{ack(3, 5, "p2-7")}, nil, []Read{rd(3, 4, "p2-9")})
	expect(t, r, 1, "partition 3")

	// The transactional producer is one more stream, ordered by
	// transaction and then record, interleaved with the others; its
	// aborted records count by their acknowledgements.
	txns := []Txn{
		txn(3, TxnCommitted, trec("t3-0", 0, 1), trec("t3-1", 1, 0), trec("t3-2", 0, 2)),
		txn(4, TxnAborted, trec("t4-0", 0, 4)),
		txn(5, TxnCommitted, trec("t5-0", 0, 6)),
	}
	final = []Read{rd(0, 0, "p0-0"), rd(0, 1, "t3-0"), rd(0, 2, "t3-2"), rd(0, 3, "p0-12"), rd(0, 6, "t5-0"),
		rd(1, 0, "t3-1")}
	expect(t, CheckProducerOrder(nil, txns, final), 0, "")

	// Within a transaction, and across transactions.
	txns = []Txn{
		txn(3, TxnCommitted, trec("t3-0", 0, 2), trec("t3-1", 0, 1)),
		txn(4, TxnAborted, trec("t4-0", 0, 0)),
	}
	r = CheckProducerOrder(nil, txns, nil)
	expect(t, r, 2, "partition 0: t3-")
	if !strings.Contains(r.Examples[0], "t3-1 at offset 1 comes after t4-0 at offset 0") {
		t.Fatalf("unexpected descriptions:\n%s", r)
	}
}

func trec(v string, p int32, o int64) TxnRecord { return TxnRecord{Value: v, Partition: p, Offset: o} }

func txn(id int64, outcome TxnOutcome, recs ...TxnRecord) Txn {
	return Txn{ID: id, Outcome: outcome, Records: recs}
}

func TestCheckTransactions(t *testing.T) {
	txns := []Txn{
		txn(0, TxnCommitted, trec("t0-0", 0, 0), trec("t0-1", 1, 0), trec("t0-2", 0, 1)),
		txn(1, TxnAborted, trec("t1-0", 0, 3), trec("t1-1", 2, 0)),
		// An abort after a failed produce: one record never acked.
		{ID: 2, Outcome: TxnAborted, ProduceFailed: true,
			Records: []TxnRecord{trec("t2-0", 1, 2), {Value: "t2-1", Partition: 1, Offset: -1, Err: "timeout"}}},
		txn(3, TxnUnknown, trec("t3-0", 0, 5), trec("t3-1", 2, 2)), // took effect
		txn(4, TxnUnknown, trec("t4-0", 0, 8), trec("t4-1", 2, 4)), // did not
	}
	consumed := []Read{rd(0, 0, "t0-0"), rd(0, 0, "t0-0"), rd(0, 5, "t3-0")}
	final := []Read{
		rd(0, 0, "t0-0"), rd(0, 1, "t0-2"), rd(0, 5, "t3-0"), rd(0, 10, "p0-0"),
		rd(1, 0, "t0-1"), rd(1, 4, "p1-0"),
		rd(2, 2, "t3-1"), rd(2, 6, "p2-0"),
	}
	r := CheckTransactions(txns, consumed, final)
	expect(t, r, 0, "")
	if r.Checked != len(txns) {
		t.Fatalf("checked %d, want %d", r.Checked, len(txns))
	}

	cases := []struct {
		name     string
		consumed []Read
		final    []Read
		want     []string // one violation each, in transaction order
		note     string
	}{
		{"aborted record in the final read",
			consumed, append(final[:len(final):len(final)], rd(2, 0, "t1-1")),
			[]string{"transaction 1 (aborted): 1 of 2 records visible to read_committed: t1-1 in the final read at [2@0]"}, ""},
		{"aborted record consumed by the group",
			append(consumed[:len(consumed):len(consumed)], rd(1, 2, "t2-0")), final,
			[]string{"transaction 2 (aborted): 1 of 2 records visible to read_committed: t2-0 consumed at [1@2]"}, ""},
		{"committed record missing",
			consumed, without(final, "t0-2"),
			[]string{"transaction 0 (committed): 1 of 3 records missing from the final read: t0-2 (to partition 0, acked at 1)"}, ""},
		{"unknown transaction partially visible",
			consumed, append(without(final, "t3-1"), rd(2, 4, "t4-1")),
			[]string{"transaction 3 (unknown) is partial", "transaction 4 (unknown) is partial: visible: t4-1 in the final read at [2@4]; missing from the final read: t4-0 (to partition 0, acked at 8)"}, ""},
		{"unknown transaction seen by the group only",
			consumed, without(final, "t3-0"),
			[]string{"transaction 3 (unknown) is partial: visible: t3-0 consumed at [0@5], t3-1 in the final read at [2@2]; missing from the final read: t3-0 (to partition 0, acked at 5)"}, ""},
		{"final read stopped short",
			nil, []Read{rd(0, 0, "t0-0"), rd(1, 0, "t0-1"), rd(2, 2, "t3-1"), rd(0, 5, "t3-0")},
			[]string{"t0-2 (to partition 0, acked at 1)"}, ""},
		{"final read stopped short before the commit's records",
			nil, []Read{rd(1, 0, "t0-1")},
			[]string{"t0-0 (to partition 0, acked at 0, past the final read's end at 0)"}, "1 of the violations"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := CheckTransactions(txns, tc.consumed, tc.final)
			if r.Violations != len(tc.want) {
				t.Fatalf("%d violations, want %d\n%s", r.Violations, len(tc.want), r)
			}
			for i, w := range tc.want {
				if !strings.Contains(r.Examples[i], w) {
					t.Fatalf("violation %q does not mention %q", r.Examples[i], w)
				}
			}
			if !strings.Contains(r.Note, tc.note) || (tc.note == "") != (r.Note == "") {
				t.Fatalf("note %q, want %q", r.Note, tc.note)
			}
		})
	}
}

// without returns the reads minus those holding value v.
func without(reads []Read, v string) []Read {
	var out []Read
	for _, x := range reads {
		if x.Value != v {
			out = append(out, x)
		}
	}
	return out
}

func TestTxnValues(t *testing.T) {
	if v := TxnValue(12, 3); v != "t12-3" {
		t.Fatalf("TxnValue = %q", v)
	}
	if n, i, ok := ParseTxnValue("t12-3"); !ok || n != 12 || i != 3 {
		t.Fatalf("parse: %d %d %v", n, i, ok)
	}
	for _, bad := range []string{"", "t", "t3", "p3-4", "t-4", "t3-", "t3-x", "t-1-2", "t1--2"} {
		if _, _, ok := ParseTxnValue(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, _, ok := ParseProducerValue(TxnValue(1, 2)); ok {
		t.Error("a transactional value parses as a producer value")
	}
	if _, _, ok := ParseTxnValue(ProducerValue(1, 2)); ok {
		t.Error("a producer value parses as a transactional value")
	}
	acks := TxnAcks([]Txn{
		txn(0, TxnAborted, trec("t0-0", 1, 7), TxnRecord{Value: "t0-1", Partition: 2, Offset: -1}),
		txn(1, TxnCommitted, trec("t1-0", 3, 0)),
	})
	if len(acks) != 2 || acks[0] != (Ack{Partition: 1, Offset: 7, Value: "t0-0"}) || acks[1].Value != "t1-0" {
		t.Fatalf("TxnAcks = %+v", acks)
	}
}

func TestCheckCommitsMonotonic(t *testing.T) {
	now := time.Now()
	ok := []Commit{{0, 10, now}, {1, 5, now}, {0, 10, now}, {0, 12, now}, {1, 7, now}}
	expect(t, CheckCommitsMonotonic(ok), 0, "")

	bad := []Commit{{0, 10, now}, {1, 5, now}, {0, 8, now}, {0, 9, now}, {1, 7, now}}
	// 10 -> 8 and 10 -> 9 (compared with the highest seen) both go back.
	expect(t, CheckCommitsMonotonic(bad), 2, "partition 0: committed offset went from 10")
}

func TestCheckWatermarksMonotonic(t *testing.T) {
	now := time.Now()
	ok := []Watermark{{0, 3, 1, now}, {0, 3, 1, now}, {0, 9, 2, now}, {1, 0, 1, now}}
	expect(t, CheckWatermarksMonotonic(ok), 0, "")

	bad := []Watermark{{0, 3, 1, now}, {1, 4, 1, now}, {1, 2, 2, now}}
	expect(t, CheckWatermarksMonotonic(bad), 1, "partition 1: high watermark went from 4")
}

// mop builds a metadata operation on the times given in milliseconds.
func mop(client int, kind MetaKind, topic string, call, ret int, res MetaResult) MetaOp {
	return MetaOp{Client: client, Kind: kind, Topic: topic,
		Call: time.Duration(call) * time.Millisecond, Return: time.Duration(ret) * time.Millisecond, Result: res}
}

func TestCheckMetaLinearizable(t *testing.T) {
	cases := []struct {
		name  string
		ops   []MetaOp
		legal bool
	}{
		{"sequential create describe delete describe", []MetaOp{
			mop(0, MetaCreate, "m", 0, 10, MetaOK),
			mop(0, MetaDescribe, "m", 20, 30, MetaOK),
			mop(0, MetaCreate, "m", 31, 32, MetaAlreadyExists),
			mop(0, MetaDelete, "m", 40, 50, MetaOK),
			mop(0, MetaDescribe, "m", 60, 70, MetaUnknownTopic),
			mop(0, MetaDelete, "m", 71, 72, MetaUnknownTopic),
		}, true},
		{"stale read after a completed create", []MetaOp{
			mop(0, MetaCreate, "m", 0, 10, MetaOK),
			mop(1, MetaDescribe, "m", 20, 30, MetaUnknownTopic),
		}, false},
		{"read concurrent with create may miss it", []MetaOp{
			mop(0, MetaCreate, "m", 0, 100, MetaOK),
			mop(1, MetaDescribe, "m", 10, 20, MetaUnknownTopic),
			mop(1, MetaDescribe, "m", 110, 120, MetaOK),
		}, true},
		{"two successful creates without a delete", []MetaOp{
			mop(0, MetaCreate, "m", 0, 10, MetaOK),
			mop(1, MetaCreate, "m", 20, 30, MetaOK),
		}, false},
		{"delete of a topic that never existed", []MetaOp{
			mop(0, MetaDelete, "m", 0, 10, MetaOK),
		}, false},
		{"already-exists for a topic never created", []MetaOp{
			mop(0, MetaCreate, "m", 0, 10, MetaAlreadyExists),
		}, false},
		{"ambiguous create may take effect after it returned", []MetaOp{
			mop(0, MetaCreate, "m", 0, 5, MetaAmbiguous),
			mop(1, MetaDescribe, "m", 10, 20, MetaUnknownTopic),
			mop(1, MetaDescribe, "m", 30, 40, MetaOK),
		}, true},
		{"ambiguous create may never take effect", []MetaOp{
			mop(0, MetaCreate, "m", 0, 5, MetaAmbiguous),
			mop(1, MetaDescribe, "m", 10, 20, MetaUnknownTopic),
			mop(1, MetaCreate, "m", 30, 40, MetaOK),
		}, true},
		{"ambiguous create cannot act before it was invoked", []MetaOp{
			mop(1, MetaDescribe, "m", 0, 5, MetaOK),
			mop(0, MetaCreate, "m", 10, 20, MetaAmbiguous),
		}, false},
		{"ambiguous delete then a create that succeeds", []MetaOp{
			mop(0, MetaCreate, "m", 0, 5, MetaOK),
			mop(0, MetaDelete, "m", 10, 15, MetaAmbiguous),
			mop(1, MetaDescribe, "m", 20, 25, MetaOK),
			mop(1, MetaCreate, "m", 30, 35, MetaOK),
		}, true},
		{"a definite failure changed nothing", []MetaOp{
			mop(0, MetaCreate, "m", 0, 10, MetaFailed),
			mop(1, MetaDescribe, "m", 20, 30, MetaOK),
		}, false},
		{"ambiguous reads are ignored", []MetaOp{
			mop(0, MetaCreate, "m", 0, 10, MetaOK),
			mop(1, MetaDescribe, "m", 20, 30, MetaAmbiguous),
		}, true},
		{"topics are independent", []MetaOp{
			mop(0, MetaCreate, "a", 0, 10, MetaOK),
			mop(1, MetaDescribe, "b", 20, 30, MetaUnknownTopic),
			mop(1, MetaDescribe, "a", 20, 30, MetaOK),
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := CheckMetaLinearizable(tc.ops, 10*time.Second, "")
			if r.OK() != tc.legal {
				t.Fatalf("OK() = %v, want %v\n%s", r.OK(), tc.legal, r)
			}
			if r.Note != "" {
				t.Fatalf("unexpected note: %s", r.Note)
			}
		})
	}
}

func TestCheckMetaLinearizableVisualizesFailures(t *testing.T) {
	dir := t.TempDir()
	r := CheckMetaLinearizable([]MetaOp{
		mop(0, MetaCreate, "meta-1", 0, 10, MetaOK),
		mop(1, MetaDescribe, "meta-1", 20, 30, MetaUnknownTopic),
		mop(1, MetaDescribe, "meta-2", 20, 30, MetaUnknownTopic),
	}, 10*time.Second, dir)
	expect(t, r, 1, "topic meta-1")
	if _, err := os.Stat(filepath.Join(dir, "meta-1.html")); err != nil {
		t.Fatalf("no visualization: %v", err)
	}
}

func TestUnavailability(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	acks := []Ack{
		{Partition: 0, Sent: at(-50), Acked: at(900)}, // sent before the fault: ignored
		{Partition: 1, Sent: at(10), Acked: at(300)},
		{Partition: 0, Sent: at(20), Acked: at(2500)},
		{Partition: 1, Sent: at(30), Acked: at(200)},
	}
	o := Unavailability(acks, at(0), at(10_000), 2)
	if !o.Recovered || o.FirstAck != 200*time.Millisecond {
		t.Fatalf("first ack: %+v", o)
	}
	if !o.AllRecovered || o.AllPartitions != 2500*time.Millisecond {
		t.Fatalf("all partitions: %+v", o)
	}

	// A partition that never came back within the window.
	o = Unavailability(acks, at(0), at(1000), 2)
	if !o.Recovered || o.AllRecovered || o.AllPartitions != time.Second {
		t.Fatalf("partial recovery: %+v", o)
	}
	// Nothing acknowledged after the fault.
	o = Unavailability(acks, at(5000), at(6000), 2)
	if o.Recovered || o.FirstAck != time.Second {
		t.Fatalf("no recovery: %+v", o)
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	for q, want := range map[float64]time.Duration{0.5: 3, 1: 5, 0.01: 1, 0.8: 4} {
		if got := Percentile(ds, q); got != want {
			t.Errorf("p%v = %v, want %v", q, got, want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("empty percentile not 0")
	}
	if ds[0] != 5 {
		t.Error("Percentile sorted its input")
	}
}

func TestProducerValues(t *testing.T) {
	if v := ProducerValue(3, 42); v != "p3-42" {
		t.Fatalf("ProducerValue = %q", v)
	}
	if p, s, ok := ParseProducerValue("p3-42"); !ok || p != 3 || s != 42 {
		t.Fatalf("parse: %d %d %v", p, s, ok)
	}
	for _, bad := range []string{"", "p", "p3", "x3-4", "p-4", "p3-", "p3-x", "p-1-2"} {
		if _, _, ok := ParseProducerValue(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestResultString(t *testing.T) {
	r := Result{Name: "x", Checked: 3}
	if s := r.String(); !strings.Contains(s, "ok (3 checked)") {
		t.Fatalf("passing result: %q", s)
	}
	for i := 0; i < maxExamples+5; i++ {
		r.violate("v%d", i)
	}
	s := r.String()
	if !strings.Contains(s, "FAIL: 25 violations") || !strings.Contains(s, "and 5 more") || len(r.Examples) != maxExamples {
		t.Fatalf("failing result: %q", s)
	}
}

func TestTxnSummary(t *testing.T) {
	s := txnSummary([]Txn{
		txn(0, TxnCommitted, trec("t0-0", 0, 0)),
		{ID: 1, Outcome: TxnAborted, ChoseAbort: true, Records: []TxnRecord{trec("t1-0", 0, 1)}},
		{ID: 2, Outcome: TxnAborted, ProduceFailed: true, EndErr: "x", Records: []TxnRecord{{Value: "t2-0", Offset: -1}}},
		txn(3, TxnUnknown, trec("t3-0", 0, 3)),
	})
	want := "transactions: 4 (1 committed, 2 aborted [1 chosen, 1 after a failed produce, 1 whose abort returned an error], 1 unknown); " +
		"4 transactional records, 3 acknowledged; duration p50 0s, max 0s\n"
	if s != want {
		t.Fatalf("txnSummary = %q, want %q", s, want)
	}
}
