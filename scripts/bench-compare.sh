#!/usr/bin/env bash
# Measure Weir side by side with franz-go's kfake (disk + fsync per batch)
# and NATS JetStream (file storage, default sync), on this machine, with the
# same workload and the same client code, and print a Markdown table of
# medians with [min..max] ranges, the ratios Weir/kfake and Weir/JetStream
# and the targets met or missed.
#
# Usage: scripts/bench-compare.sh        (or: make bench-compare)
# Environment:
#   BENCH_DURATION  seconds measured per load phase (default 10)
#   BENCH_RUNS      repetitions of every configuration (default 3)
#   BENCH_WARMUP    seconds run before measuring (default 1)
#   BENCH_RATE      records/s of the end-to-end phase (default 5000)
#   BENCH_OUT       directory for results.jsonl, report.md and server logs
#                   (default: a new temp dir)
#   BENCH_SYSTEMS   which systems to run (default "weir kfake nats")
#
# Workload, the same for all three: 1 KiB records, 1 partition, acks=all,
# idempotent producer, linger 5 ms, 1 producer, BENCH_DURATION seconds;
# then reading everything back from the start; then end-to-end latency at
# BENCH_RATE records/s with linger 0 on a fresh topic. Every run starts a
# fresh server on a fresh temp dir. Server CPU is utime+stime from
# /proc/PID/stat before and after each phase. Runs interleave the systems
# (weir, kfake, nats, weir, ...) so that slow drifts of this shared machine
# spread over all of them.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-1}
RATE=${BENCH_RATE:-5000}
SYSTEMS=${BENCH_SYSTEMS:-weir kfake nats}
OUT=${BENCH_OUT:-$(mktemp -d -t weir-bench-compare.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BIN=$OUT/bin
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
CLK_TCK=$(getconf CLK_TCK)

# Ports kept away from the defaults so that a developer's own broker on
# 9092/9644 does not get measured by mistake.
WEIR_KAFKA=127.0.0.1:29092
WEIR_HTTP=127.0.0.1:29644
KFAKE_PORT=29093
NATS_PORT=29222

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "building into $BIN"
mkdir -p "$BIN"
CGO_ENABLED=0 go build -o "$BIN/weir" ./cmd/weir
# -mod=mod: the peers module points at this checkout (replace ../..) and may
# need its go.sum refreshed after the main module's requirements change.
(cd bench/peers && CGO_ENABLED=0 go build -mod=mod -o "$BIN/" ./cmd/...)

SERVER_PID=
DATA_DIR=
cleanup() {
	if [[ -n $SERVER_PID ]]; then stop_server; fi
}
trap cleanup EXIT INT TERM

cpu_ticks() { # utime + stime of a process, in clock ticks
	awk '{print $14 + $15}' "/proc/$1/stat"
}

# load1 is the 1-minute load average: anything well above what the
# benchmark itself puts on the 2 cores means someone else shared the machine.
load1() { cut -d' ' -f1 /proc/loadavg; }

rss_kb() {
	awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

# alive PID: the process exists and is not a zombie (a server that
# spawnready started is reparented, and not every PID 1 reaps).
alive() {
	[[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# start_server SYSTEM RUN: start a fresh server, record its start line.
start_server() {
	local sys=$1 run=$2 out
	DATA_DIR=$(mktemp -d -t "weir-bench-$sys.XXXXXX")
	case $sys in
	weir)
		out=$("$BIN/spawnready" -http "http://$WEIR_HTTP/readyz" -log "$OUT/$sys-$run.log" -- \
			"$BIN/weir" serve --data-dir "$DATA_DIR" --kafka-addr "$WEIR_KAFKA" \
			--http-addr "$WEIR_HTTP" --log-level warn)
		;;
	kfake)
		out=$("$BIN/spawnready" -tcp "127.0.0.1:$KFAKE_PORT" -log "$OUT/$sys-$run.log" -- \
			"$BIN/kfakeserver" -port "$KFAKE_PORT" -data-dir "$DATA_DIR" -sync)
		;;
	nats)
		out=$("$BIN/spawnready" -tcp "127.0.0.1:$NATS_PORT" -log "$OUT/$sys-$run.log" -- \
			"$BIN/natsserver" -port "$NATS_PORT" -store-dir "$DATA_DIR")
		;;
	esac
	SERVER_PID=${out%% *}
	local ready_ms=${out##* }
	# Idle memory: after a second with no clients.
	sleep 1
	local rss
	rss=$(rss_kb "$SERVER_PID")
	printf '{"system":"%s","run":%d,"phase":"start","ready_ms":%s,"rss_kb":%s,"load1":%s}\n' \
		"$sys" "$run" "$ready_ms" "$rss" "$(load1)" >>"$RESULTS"
	log "$sys run $run: pid $SERVER_PID ready in $ready_ms ms, idle RSS $rss kB"
}

stop_server() {
	local pid=$SERVER_PID
	SERVER_PID=
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 200); do
		alive "$pid" || break
		sleep 0.05
	done
	if alive "$pid"; then
		log "pid $pid did not stop in 10 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$DATA_DIR"
}

# phase SYSTEM RUN NAME CMD...: run one load phase, record its result and
# the server CPU it cost.
phase() {
	local sys=$1 run=$2 name=$3
	shift 3
	local t0 c0 t1 c1 result l0
	l0=$(load1)
	c0=$(cpu_ticks "$SERVER_PID")
	t0=$(date +%s%N)
	if ! result=$("$@" 2>>"$OUT/client-$sys-$run.log"); then
		log "$sys run $run $name failed; see $OUT/client-$sys-$run.log"
		result=${result:-null}
	fi
	t1=$(date +%s%N)
	c1=$(cpu_ticks "$SERVER_PID")
	printf '{"system":"%s","run":%d,"phase":"%s","cpu_ticks":%d,"clk_tck":%d,"wall_ns":%d,"load1_before":%s,"load1_after":%s,"result":%s}\n' \
		"$sys" "$run" "$name" $((c1 - c0)) "$CLK_TCK" $((t1 - t0)) "$l0" "$(load1)" "$result" >>"$RESULTS"
	log "$sys run $run $name: $(printf '%s' "$result" | head -c 160)"
}

kafka_phases() {
	local sys=$1 run=$2 brokers=$3
	local common=(--brokers "$brokers" --format json --record-size 1024 --acks all --idempotent
		--producers 1 --partitions 1 --warmup "${WARMUP}s" --duration "${DURATION}s")
	phase "$sys" "$run" produce "$BIN/weir" bench produce "${common[@]}" --topic bench --linger 5ms
	phase "$sys" "$run" consume "$BIN/weir" bench consume --brokers "$brokers" --format json --topic bench
	phase "$sys" "$run" e2e "$BIN/weir" bench e2e "${common[@]}" --topic bench-e2e --linger 0 --rate "$RATE"
}

nats_phases() {
	local sys=$1 run=$2 url=nats://127.0.0.1:$NATS_PORT
	local common=(-url "$url" -format json -size 1024 -window 4096 -warmup "${WARMUP}s" -duration "${DURATION}s")
	phase "$sys" "$run" produce "$BIN/jsbench" -mode pub "${common[@]}" -stream BENCH -subject bench.data
	phase "$sys" "$run" consume "$BIN/jsbench" -mode sub -url "$url" -format json -stream BENCH
	phase "$sys" "$run" e2e "$BIN/jsbench" -mode e2e "${common[@]}" -stream E2E -subject e2e.data -rate "$RATE"
}

{
	echo "weir commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "go: $(go version)"
	echo "cpu: $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "kernel: $(uname -r)"
} >"$OUT/machine.txt"
log "results in $OUT (duration ${DURATION}s, warmup ${WARMUP}s, $RUNS runs, e2e at $RATE records/s)"
for run in $(seq "$RUNS"); do
	for sys in $SYSTEMS; do
		start_server "$sys" "$run"
		case $sys in
		weir) kafka_phases "$sys" "$run" "$WEIR_KAFKA" ;;
		kfake) kafka_phases "$sys" "$run" "127.0.0.1:$KFAKE_PORT" ;;
		nats) nats_phases "$sys" "$run" ;;
		esac
		stop_server
	done
done

"$BIN/benchreport" "$RESULTS" | tee "$OUT/report.md"
log "raw results: $RESULTS; table: $OUT/report.md"
