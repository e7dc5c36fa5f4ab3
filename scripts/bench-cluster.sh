#!/usr/bin/env bash
# Measure a 3-node RF=3 Weir cluster on this machine: produce throughput and
# latency beside a single node (and a one-node Raft cluster), partition
# leader failover after kill -9, and how long a restarted or wiped follower
# takes to catch up with 1 GiB. The measurements are the TestPerf* tests of
# internal/chaos, which start real weir processes on 127.0.0.1 with random
# free ports; they print Markdown tables and assert nothing about time.
#
# Usage: scripts/bench-cluster.sh        (or: make bench-cluster)
# Environment:
#   BENCH_RUNS          repetitions of every measurement (default 3)
#   BENCH_DURATION      seconds measured per throughput/latency phase (default 10)
#   BENCH_WARMUP        seconds run before measuring (default 1)
#   BENCH_RATE          records/s of the latency phase (default 5000)
#   BENCH_PARTITIONS    partition counts of the throughput phases (default 1,12)
#   BENCH_KILLS         leader kills per failover run (default 10)
#   BENCH_CATCHUP_MIB   MiB written while a follower is down (default 1024)
#   BENCH_TESTS         which tests, a go test -run pattern (default ^TestPerf)
#   BENCH_OUT           directory for report.md, results.jsonl, test.log and
#                       machine.txt (default: a new temp dir)
#
# Takes about 15 minutes with the defaults. Run nothing else meanwhile: the
# client and all three nodes share the machine's cores.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-3}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-1}
RATE=${BENCH_RATE:-5000}
PARTITIONS=${BENCH_PARTITIONS:-1,12}
KILLS=${BENCH_KILLS:-10}
CATCHUP_MIB=${BENCH_CATCHUP_MIB:-1024}
TESTS=${BENCH_TESTS:-^TestPerf}
OUT=${BENCH_OUT:-$(mktemp -d -t weir-bench-cluster.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/report.md" "$OUT/results.jsonl"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "building weir into $OUT"
CGO_ENABLED=0 go build -o "$OUT/weir" ./cmd/weir
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	go version -m "$OUT/weir" | awk '$1 == "build" && $2 ~ /^vcs\./ {print $2}'
	echo "go: $(go version)"
	echo "cpu: $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "kernel: $(uname -r)"
	echo "load before: $(cat /proc/loadavg)"
} >"$OUT/machine.txt"

log "measuring ($RUNS runs, ${DURATION}s phases, $KILLS kills per run, $CATCHUP_MIB MiB catch-up)"
if ! go test ./internal/chaos -run "$TESTS" -count=1 -timeout 0 -v -perf \
	-perf.bin "$OUT/weir" -perf.out "$OUT" -perf.runs "$RUNS" \
	-perf.duration "${DURATION}s" -perf.warmup "${WARMUP}s" -perf.rate "$RATE" \
	-perf.partitions "$PARTITIONS" -perf.kills "$KILLS" \
	-perf.catchup-bytes $((CATCHUP_MIB * 1024 * 1024)) 2>&1 | tee "$OUT/test.log"; then
	log "FAILED; see $OUT/test.log (node logs of failed runs: $OUT/kept-*)"
	exit 1
fi
echo
cat "$OUT/report.md"
log "report: $OUT/report.md; raw results: $OUT/results.jsonl; machine: $OUT/machine.txt"
