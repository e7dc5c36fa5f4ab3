// Package chaos is a fault-injection harness in the style of Jepsen. It starts
// N real `weir serve` processes on 127.0.0.1 and puts a TCP proxy on every
// directed node-to-node RPC link, so that one link can be cut, slowed or cut
// one way without touching the others. While a Kafka workload runs against the
// cluster it kills, pauses, partitions and corrupts nodes, one fault at a time
// with recovery in between, then checks the recorded history for safety
// violations: lost acknowledged writes, two values at one offset, duplicates,
// reordering, committed offsets or high watermarks that go backwards,
// controller metadata operations that are not linearizable, and
// transactions that are not atomic (aborted data visible to read_committed
// readers, committed data missing, half of a transaction visible).
//
// The pieces:
//
//   - Proxy: one directed link, switchable between pass, blackhole and slow.
//   - Cluster: the processes, their ports and data directories, the N×(N-1)
//     proxies, and the faults (Kill, Pause, Partition, OneWay, Slow,
//     TearTail, ...).
//   - Workload: idempotent acks=all producers, a transactional producer that
//     aborts some of its transactions, a read_committed consumer group, a
//     high watermark observer, a controller metadata client and a final
//     reader, all recording into a History.
//   - Check* functions: pure checks over a History, each returning a Result.
//   - PlanFaults and Nemesis: which faults to inject and how to undo them.
//
// TestChaos (run with -chaos or WEIR_CHAOS=1, or `make chaos`) ties them
// together. The harness talks to brokers only over the Kafka protocol, HTTP and
// signals; it imports nothing of the broker.
package chaos
