package chaos

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// maxExamples bounds how many violations a Result lists; it still counts all.
const maxExamples = 20

// Result is the outcome of one check.
type Result struct {
	Name       string
	Checked    int      // how many items the check looked at
	Violations int      // how many violations it found
	Examples   []string // the first violations, described
	// Note says something that is neither a pass nor a violation, such
	// as a check that could not finish.
	Note string
}

// OK reports whether the check found no violation.
func (r Result) OK() bool { return r.Violations == 0 }

func (r *Result) violate(format string, args ...any) {
	r.Violations++
	if len(r.Examples) < maxExamples {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

// String is one line for a pass, or a line plus the listed violations.
func (r Result) String() string {
	var b strings.Builder
	if r.OK() {
		fmt.Fprintf(&b, "%-26s ok (%d checked)", r.Name, r.Checked)
	} else {
		fmt.Fprintf(&b, "%-26s FAIL: %d violations (%d checked)", r.Name, r.Violations, r.Checked)
	}
	if r.Note != "" {
		fmt.Fprintf(&b, "; %s", r.Note)
	}
	for _, e := range r.Examples {
		fmt.Fprintf(&b, "\n    %s", e)
	}
	if r.Violations > len(r.Examples) {
		fmt.Fprintf(&b, "\n    ... and %d more", r.Violations-len(r.Examples))
	}
	return b.String()
}

type offsetKey struct {
	partition int32
	offset    int64
}

func (k offsetKey) String() string { return fmt.Sprintf("%d@%d", k.partition, k.offset) }

// CheckNoLostAcks checks that every acknowledged record is in the final read
// at the offset it was acknowledged with, holding the same value. Records
// past the point where the final read of their partition stopped are lost
// too (they could not be read back), but are counted apart in Note, since
// an unreadable partition and a hole in the log are different failures.
func CheckNoLostAcks(acks []Ack, final []Read) Result {
	r := Result{Name: "no-lost-acks", Checked: len(acks)}
	read := make(map[offsetKey][]string, len(final))
	readTo := make(map[int32]int64)
	for _, f := range final {
		k := offsetKey{f.Partition, f.Offset}
		if !slices.Contains(read[k], f.Value) {
			read[k] = append(read[k], f.Value)
		}
		readTo[f.Partition] = max(readTo[f.Partition], f.Offset+1)
	}
	beyond := 0
	for _, a := range acks {
		k := offsetKey{a.Partition, a.Offset}
		got := read[k]
		switch {
		case len(got) == 0 && a.Offset >= readTo[a.Partition]:
			beyond++
			r.violate("acked %s = %q was not read back: the final read of partition %d stopped at offset %d",
				k, a.Value, a.Partition, readTo[a.Partition])
		case len(got) == 0:
			r.violate("acked %s = %q is missing from the final read", k, a.Value)
		case !slices.Contains(got, a.Value):
			r.violate("acked %s = %q, but the final read has %q there", k, a.Value, got)
		}
	}
	if beyond > 0 {
		r.Note = fmt.Sprintf("%d of the violations lie past where the final read of their partition stopped", beyond)
	}
	return r
}

// CheckOneValuePerOffset checks that no two different values were ever seen
// at one partition and offset, across the producers' acknowledgements and
// every read.
func CheckOneValuePerOffset(acks []Ack, reads ...[]Read) Result {
	r := Result{Name: "one-value-per-offset"}
	type seen struct {
		value, source string
		reported      bool
	}
	at := make(map[offsetKey]*seen)
	observe := func(k offsetKey, v, source string) {
		r.Checked++
		s, ok := at[k]
		if !ok {
			at[k] = &seen{value: v, source: source}
			return
		}
		if s.value != v && !s.reported {
			s.reported = true
			r.violate("%s holds %q (%s) and %q (%s)", k, s.value, s.source, v, source)
		}
	}
	for _, a := range acks {
		observe(offsetKey{a.Partition, a.Offset}, a.Value, "ack")
	}
	for i, rs := range reads {
		src := fmt.Sprintf("read set %d", i+1)
		for _, x := range rs {
			observe(offsetKey{x.Partition, x.Offset}, x.Value, src)
		}
	}
	return r
}

// CheckNoDuplicates checks that each value appears at most once in the final
// read: at one partition and offset (reading the same offset twice is fine).
func CheckNoDuplicates(final []Read) Result {
	r := Result{Name: "no-duplicates", Checked: len(final)}
	first := make(map[string]offsetKey, len(final))
	for _, f := range final {
		k := offsetKey{f.Partition, f.Offset}
		if prev, ok := first[f.Value]; ok && prev != k {
			r.violate("%q at %s and at %s", f.Value, prev, k)
			continue
		}
		first[f.Value] = k
	}
	return r
}

// CheckNoPhantoms checks that every value read was written by a producer,
// to the partition it was read from: by one of the plain producers
// (attempts) or in one of the transactional producer's transactions (txns),
// whatever became of the transaction (CheckTransactions judges whether it
// should be visible).
func CheckNoPhantoms(attempts []Attempt, txns []Txn, reads ...[]Read) Result {
	r := Result{Name: "no-phantom-values"}
	sentTo := make(map[string]int32, len(attempts))
	for _, a := range attempts {
		sentTo[a.Value] = a.Partition
	}
	for _, t := range txns {
		for _, x := range t.Records {
			sentTo[x.Value] = x.Partition
		}
	}
	for _, rs := range reads {
		for _, x := range rs {
			r.Checked++
			p, ok := sentTo[x.Value]
			switch {
			case !ok:
				r.violate("%s holds %q, which no producer wrote", offsetKey{x.Partition, x.Offset}, x.Value)
			case p != x.Partition:
				r.violate("%s holds %q, which was written to partition %d", offsetKey{x.Partition, x.Offset}, x.Value, p)
			}
		}
	}
	return r
}

// CheckProducerOrder checks that, within each partition, each producer's
// values sit at offsets in the order the producer wrote them: offsets
// increase with the sequence number. The transactional producer counts as
// one more producer, whose values are ordered by transaction, then by record
// within it: it runs one transaction at a time, and every record of a
// transaction it got as far as acknowledged before it ended. It uses the
// acknowledgements (txns' included) and the final read together.
func CheckProducerOrder(acks []Ack, txns []Txn, final []Read) Result {
	r := Result{Name: "producer-order"}
	txnAcks := TxnAcks(txns)
	value := make(map[offsetKey]string, len(final)+len(acks)+len(txnAcks))
	for _, a := range acks {
		value[offsetKey{a.Partition, a.Offset}] = a.Value
	}
	for _, a := range txnAcks {
		value[offsetKey{a.Partition, a.Offset}] = a.Value
	}
	for _, f := range final {
		k := offsetKey{f.Partition, f.Offset}
		if _, ok := value[k]; !ok {
			value[k] = f.Value
		}
	}
	const transactional = -1 // the transactional producer's stream
	type stream struct {
		partition int32
		producer  int
	}
	type entry struct {
		offset   int64
		seq, sub int64 // (sequence number, 0) or (transaction, record)
		value    string
	}
	streams := make(map[stream][]entry)
	for k, v := range value {
		if p, seq, ok := ParseProducerValue(v); ok {
			s := stream{k.partition, p}
			streams[s] = append(streams[s], entry{k.offset, seq, 0, v})
		} else if txn, i, ok := ParseTxnValue(v); ok {
			s := stream{k.partition, transactional}
			streams[s] = append(streams[s], entry{k.offset, txn, int64(i), v})
		}
		// Otherwise not ours; CheckNoPhantoms reports it.
	}
	keys := make([]stream, 0, len(streams))
	for s := range streams {
		keys = append(keys, s)
	}
	slices.SortFunc(keys, func(a, b stream) int {
		return cmp.Or(cmp.Compare(a.partition, b.partition), cmp.Compare(a.producer, b.producer))
	})
	for _, s := range keys {
		es := streams[s]
		slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.offset, b.offset) })
		r.Checked += len(es)
		for i := 1; i < len(es); i++ {
			if cmp.Or(cmp.Compare(es[i].seq, es[i-1].seq), cmp.Compare(es[i].sub, es[i-1].sub)) <= 0 {
				r.violate("partition %d: %s at offset %d comes after %s at offset %d",
					s.partition, es[i].value, es[i].offset, es[i-1].value, es[i-1].offset)
			}
		}
	}
	return r
}

// CheckTransactions checks the transactional producer's transactions against
// what read_committed readers saw: the consumer group's reads (consumed) and
// the final read.
//
//   - No record of an aborted transaction is visible, to either.
//   - Every record of a committed transaction is in the final read.
//   - A transaction whose commit had an unknown outcome is all or nothing:
//     if any of its records was visible to either, all of them are in the
//     final read.
//
// A transaction counts as one violation however many of its records are
// wrong. Records missing only because the final read of their partition
// stopped short are counted apart in Note, as in CheckNoLostAcks.
func CheckTransactions(txns []Txn, consumed, final []Read) Result {
	r := Result{Name: "transactions"}
	type where struct{ consumed, final []offsetKey }
	seen := make(map[string]*where)
	at := func(v string) *where {
		w, ok := seen[v]
		if !ok {
			w = &where{}
			seen[v] = w
		}
		return w
	}
	readTo := make(map[int32]int64)
	for _, x := range consumed {
		if _, _, ok := ParseTxnValue(x.Value); ok {
			w := at(x.Value)
			if k := (offsetKey{x.Partition, x.Offset}); !slices.Contains(w.consumed, k) {
				w.consumed = append(w.consumed, k)
			}
		}
	}
	for _, x := range final {
		readTo[x.Partition] = max(readTo[x.Partition], x.Offset+1)
		if _, _, ok := ParseTxnValue(x.Value); ok {
			w := at(x.Value)
			if k := (offsetKey{x.Partition, x.Offset}); !slices.Contains(w.final, k) {
				w.final = append(w.final, k)
			}
		}
	}
	visible := func(v string) string { // how v was seen, or ""
		w := seen[v]
		if w == nil {
			return ""
		}
		var parts []string
		if len(w.final) > 0 {
			parts = append(parts, fmt.Sprintf("in the final read at %v", w.final))
		}
		if len(w.consumed) > 0 {
			parts = append(parts, fmt.Sprintf("consumed at %v", w.consumed))
		}
		return strings.Join(parts, " and ")
	}
	beyond := 0
	for _, t := range txns {
		r.Checked++
		var shown, missing []string
		short := false // some record is missing only past where its partition's final read stopped
		for _, x := range t.Records {
			if how := visible(x.Value); how != "" {
				shown = append(shown, x.Value+" "+how)
			}
			if w := seen[x.Value]; w == nil || len(w.final) == 0 {
				desc := fmt.Sprintf("%s (to partition %d", x.Value, x.Partition)
				if x.Offset >= 0 {
					desc += fmt.Sprintf(", acked at %d", x.Offset)
					if x.Offset >= readTo[x.Partition] {
						short = true
						desc += fmt.Sprintf(", past the final read's end at %d", readTo[x.Partition])
					}
				}
				missing = append(missing, desc+")")
			}
		}
		name := fmt.Sprintf("transaction %d (%s", t.ID, t.Outcome)
		if t.EndErr != "" {
			name += ": " + t.EndErr
		}
		name += ")"
		switch t.Outcome {
		case TxnAborted:
			if len(shown) > 0 {
				r.violate("%s: %d of %d records visible to read_committed: %s",
					name, len(shown), len(t.Records), strings.Join(shown, ", "))
			}
		case TxnCommitted:
			if len(missing) > 0 {
				if short {
					beyond++
				}
				r.violate("%s: %d of %d records missing from the final read: %s",
					name, len(missing), len(t.Records), strings.Join(missing, ", "))
			}
		default:
			if len(shown) > 0 && len(missing) > 0 {
				if short {
					beyond++
				}
				r.violate("%s is partial: visible: %s; missing from the final read: %s",
					name, strings.Join(shown, ", "), strings.Join(missing, ", "))
			}
		}
	}
	if beyond > 0 {
		r.Note = fmt.Sprintf("%d of the violations involve records past where the final read of their partition stopped", beyond)
	}
	return r
}

// CheckCommitsMonotonic checks that a group's committed offset never moved
// backwards in any partition, in the order the commits were observed.
func CheckCommitsMonotonic(commits []Commit) Result {
	r := Result{Name: "commits-monotonic", Checked: len(commits)}
	last := make(map[int32]Commit)
	for _, c := range commits {
		if prev, ok := last[c.Partition]; ok && c.Offset < prev.Offset {
			r.violate("partition %d: committed offset went from %d to %d at %s",
				c.Partition, prev.Offset, c.Offset, c.At.Format(time.StampMilli))
		}
		if prev, ok := last[c.Partition]; !ok || c.Offset >= prev.Offset {
			last[c.Partition] = c
		}
	}
	return r
}

// CheckWatermarksMonotonic checks that no partition's high watermark was
// ever reported lower than an earlier report.
func CheckWatermarksMonotonic(marks []Watermark) Result {
	r := Result{Name: "high-watermark-monotonic", Checked: len(marks)}
	last := make(map[int32]Watermark)
	for _, m := range marks {
		if prev, ok := last[m.Partition]; ok && m.Offset < prev.Offset {
			r.violate("partition %d: high watermark went from %d (leader epoch %d) to %d (leader epoch %d) at %s",
				m.Partition, prev.Offset, prev.LeaderEpoch, m.Offset, m.LeaderEpoch, m.At.Format(time.StampMilli))
		}
		if prev, ok := last[m.Partition]; !ok || m.Offset >= prev.Offset {
			last[m.Partition] = m
		}
	}
	return r
}

type metaInput struct {
	kind  MetaKind
	topic string
}

// metaModel is the sequential specification of the controller's topic set,
// one topic at a time (the history is partitioned by topic): the state is
// whether the topic exists.
//
// An ambiguous create or delete is given a return time after every other
// operation, so the checker may place it anywhere from its invocation on; it
// always applies when placed. Placing it last, after every observation, is
// the same as it never happening, so "maybe happened" needs no second state.
var metaModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byTopic := make(map[string][]porcupine.Operation)
		var topics []string
		for _, op := range history {
			t := op.Input.(metaInput).topic
			if _, ok := byTopic[t]; !ok {
				topics = append(topics, t)
			}
			byTopic[t] = append(byTopic[t], op)
		}
		out := make([][]porcupine.Operation, 0, len(topics))
		for _, t := range topics {
			out = append(out, byTopic[t])
		}
		return out
	},
	Init: func() any { return false },
	Step: func(state, input, output any) (bool, any) {
		exists := state.(bool)
		res := output.(MetaResult)
		switch input.(metaInput).kind {
		case MetaCreate:
			switch res {
			case MetaOK:
				return !exists, true
			case MetaAlreadyExists:
				return exists, exists
			case MetaAmbiguous:
				return true, true
			}
		case MetaDelete:
			switch res {
			case MetaOK:
				return exists, false
			case MetaUnknownTopic:
				return !exists, exists
			case MetaAmbiguous:
				return true, false
			}
		case MetaDescribe:
			switch res {
			case MetaOK:
				return exists, exists
			case MetaUnknownTopic:
				return !exists, exists
			}
		}
		return false, exists
	},
	Hash: func(state any) uint64 {
		if state.(bool) {
			return 1
		}
		return 0
	},
	DescribeOperation: func(input, output any) string {
		in := input.(metaInput)
		return fmt.Sprintf("%s(%s) -> %s", in.kind, in.topic, output.(MetaResult))
	},
	DescribeState: func(state any) string {
		if state.(bool) {
			return "exists"
		}
		return "absent"
	},
}

// metaOperations turns recorded metadata operations into porcupine's form.
// Definite failures changed nothing and ambiguous reads observed nothing, so
// both are left out; ambiguous writes return after everything else.
func metaOperations(ops []MetaOp) []porcupine.Operation {
	var end int64
	for _, op := range ops {
		end = max(end, int64(op.Call), int64(op.Return))
	}
	var out []porcupine.Operation
	for _, op := range ops {
		if op.Result == MetaFailed || (op.Result == MetaAmbiguous && op.Kind == MetaDescribe) {
			continue
		}
		ret := int64(op.Return)
		if op.Result == MetaAmbiguous {
			ret = end + 1
		}
		out = append(out, porcupine.Operation{
			ClientId: op.Client,
			Input:    metaInput{kind: op.Kind, topic: op.Topic},
			Call:     int64(op.Call),
			Output:   op.Result,
			Return:   ret,
		})
	}
	return out
}

// CheckMetaLinearizable checks that the controller's topic operations are
// linearizable against a set of topic names, one topic at a time. A check
// that does not finish within timeout (per topic; 0 means no limit) is
// reported in Note as inconclusive, not as a violation. If vizDir is not
// empty, a failing topic's history is drawn into vizDir/<topic>.html.
func CheckMetaLinearizable(ops []MetaOp, timeout time.Duration, vizDir string) Result {
	history := metaOperations(ops)
	r := Result{Name: "metadata-linearizable", Checked: len(history)}
	var unknown []string
	for _, part := range metaModel.Partition(history) {
		topic := part[0].Input.(metaInput).topic
		res, info := porcupine.CheckOperationsVerbose(metaModel, part, timeout)
		switch res {
		case porcupine.Illegal:
			msg := fmt.Sprintf("topic %s: %d operations admit no linearization", topic, len(part))
			if vizDir != "" {
				path := filepath.Join(vizDir, topic+".html")
				if err := os.MkdirAll(vizDir, 0o755); err == nil {
					if err := porcupine.VisualizePath(metaModel, info, path); err == nil {
						msg += "; see " + path
					}
				}
			}
			r.violate("%s", msg)
		case porcupine.Unknown:
			unknown = append(unknown, topic)
		}
	}
	if len(unknown) > 0 {
		r.Note = fmt.Sprintf("inconclusive for %s: the search did not finish within %v", strings.Join(unknown, ", "), timeout)
	}
	return r
}

// Outage is how long writes were unavailable after a fault.
type Outage struct {
	// FirstAck is the time from the fault until the first acknowledgement
	// of a record sent at or after it, to any partition.
	FirstAck time.Duration
	// AllPartitions is the time until every partition had acknowledged such
	// a record.
	AllPartitions time.Duration
	// Recovered and AllRecovered are false when no such acknowledgement
	// arrived before the end of the window; the durations are then lower
	// bounds, the whole window.
	Recovered, AllRecovered bool
}

// Unavailability measures the write outage after a fault injected at `at`,
// looking at acknowledgements that arrived before `until`.
func Unavailability(acks []Ack, at, until time.Time, partitions int32) Outage {
	o := Outage{FirstAck: until.Sub(at), AllPartitions: until.Sub(at)}
	first := make(map[int32]time.Time, partitions)
	var earliest time.Time
	for _, a := range acks {
		if a.Sent.Before(at) || !a.Acked.Before(until) {
			continue
		}
		if t, ok := first[a.Partition]; !ok || a.Acked.Before(t) {
			first[a.Partition] = a.Acked
		}
		if earliest.IsZero() || a.Acked.Before(earliest) {
			earliest = a.Acked
		}
	}
	if !earliest.IsZero() {
		o.Recovered = true
		o.FirstAck = earliest.Sub(at)
	}
	if int32(len(first)) >= partitions && partitions > 0 {
		o.AllRecovered = true
		var latest time.Time
		for _, t := range first {
			if t.After(latest) {
				latest = t
			}
		}
		o.AllPartitions = latest.Sub(at)
	}
	return o
}

// Percentile returns the q-quantile (0 < q <= 1) of ds by nearest rank, or
// 0 for no durations.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
