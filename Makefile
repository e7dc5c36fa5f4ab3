# Weir build and test entry points. `make test` is the full suite CI runs.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: test build vet fuzz cross race interop kgo-suite chaos as-examples bench-transforms

build:
	$(GO) build -o bin/weir ./cmd/weir

# The full test suite: unit, crash, client-compatibility and process tests.
test:
	$(GO) mod download
	$(GO) test -count=1 -timeout 15m ./...

# Clients from other ecosystems: librdkafka (Debian kcat) and kafkajs (npm).
# Installs them, then runs the interop tests, which fail rather than skip.
interop:
	command -v kcat >/dev/null || (apt-get install -y kcat || (apt-get update && apt-get install -y kcat))
	cd test/interop && npm ci --no-audit --no-fund
	WEIR_INTEROP=1 $(GO) test -count=1 -run Interop ./internal/server
	$(MAKE) as-examples
	WEIR_AS=1 $(GO) test -count=1 -run AssemblyScript ./internal/transform

# Transform modules in a second language: the AssemblyScript SDK's examples
# (npm installs the compiler), built into sdk/assemblyscript/build.
as-examples:
	cd sdk/assemblyscript && npm ci --no-audit --no-fund && npm run build

# Transform costs: per record for Go and AssemblyScript map modules, module
# start from the compile cache, a deployed filter's throughput beside
# plain produce, and lazy views' fetch rate beside the topic's
# (docs/benchmarks.md).
bench-transforms: as-examples
	WEIR_AS=1 $(GO) test -run '^$$' -bench 'Map200B' -benchtime 3000x ./internal/transform
	$(GO) test -run '^$$' -bench 'ColdStart' -benchtime 20x ./internal/transform
	WEIR_TRANSFORM_BENCH=1 $(GO) test -count=1 -run TestDeployedFilterThroughput -v ./internal/cli/transform
	WEIR_TRANSFORM_BENCH=1 WEIR_TRANSFORM_BENCH_MODULE=sdk/assemblyscript/build/prefix.wasm $(GO) test -count=1 -run TestDeployedFilterThroughput -v ./internal/cli/transform
	WEIR_TRANSFORM_BENCH=1 $(GO) test -count=1 -run TestViewFetchThroughput -v ./internal/cli/transform

# franz-go's own integration test suite against a fresh weir serve
# (about 5 minutes; KGO_RECORDS, KGO_TIMEOUT; extra flags via KGO_ARGS).
kgo-suite:
	scripts/kgo-suite.sh $(KGO_ARGS)

vet:
	$(GO) vet ./...

race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

# Short runs of every fuzz target (FUZZTIME per target).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./internal/record -run '^$$' -fuzz FuzzValidate -fuzztime $(FUZZTIME)
	$(GO) test ./internal/kafka -run '^$$' -fuzz FuzzDecodeRequest -fuzztime $(FUZZTIME)
	$(GO) test ./internal/storage -run '^$$' -fuzz FuzzRecover -fuzztime $(FUZZTIME) -fuzzminimizetime 10x
	$(GO) test ./internal/config -run '^$$' -fuzz FuzzApplyYAML -fuzztime $(FUZZTIME)
	$(GO) test ./internal/cli/consume -run '^$$' -fuzz FuzzTemplate -fuzztime $(FUZZTIME)
	$(GO) test ./internal/replication/transport -run '^$$' -fuzz FuzzDecodeFrames -fuzztime $(FUZZTIME)
	$(GO) test ./internal/replication/transport -run '^$$' -fuzz FuzzReadHello -fuzztime $(FUZZTIME)
	$(GO) test ./internal/cluster -run '^$$' -fuzz FuzzApplyCommand -fuzztime $(FUZZTIME)
	$(GO) test ./internal/transform -run '^$$' -fuzz FuzzDecodeOutput -fuzztime $(FUZZTIME)
	$(GO) test ./internal/transform -run '^$$' -fuzz FuzzDecodeRedpandaPayload -fuzztime $(FUZZTIME)
	$(GO) test ./internal/transform -run '^$$' -fuzz FuzzRecordTable -fuzztime $(FUZZTIME)
	$(GO) test ./internal/transform -run '^$$' -fuzz FuzzAddStopChecks -fuzztime $(FUZZTIME)
	$(GO) test ./sdk/go/transform -run '^$$' -fuzz FuzzProcess -fuzztime $(FUZZTIME)
	$(GO) test ./sdk/go/transform -run '^$$' -fuzz FuzzConfigure -fuzztime $(FUZZTIME)

# Cross-compile the binary for every supported platform.
cross:
	GOOS=linux GOARCH=amd64 $(GO) build -o /dev/null ./cmd/weir
	GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./cmd/weir
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -o /dev/null ./cmd/weir
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/weir
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/weir

# Fault-injection run (internal/chaos): real weir processes with proxied
# node-to-node links; kills, pauses, partitions, slow links and torn segment
# tails, one at a time, then safety checks. Replay with CHAOS_ARGS=-chaos.seed=N.
CHAOS_DURATION ?= 30m
CHAOS_INTERVAL ?= 20s
.PHONY: chaos
chaos:
	$(GO) test ./internal/chaos -run TestChaos -chaos -chaos.duration=$(CHAOS_DURATION) -chaos.interval=$(CHAOS_INTERVAL) -timeout 0 -v $(CHAOS_ARGS)

.PHONY: bench bench-compare bench-cluster

# Go micro-benchmarks beside the hot code; compare runs with benchstat.
bench:
	$(GO) test -run '^$$' -bench . ./internal/...

# Weir side by side with kfake (fsync per batch) and NATS JetStream on this
# machine; takes a few minutes. BENCH_DURATION (seconds, default 10) and
# BENCH_RUNS (default 3) tune it; see scripts/bench-compare.sh.
bench-compare:
	scripts/bench-compare.sh

# A 3-node RF=3 cluster on this machine: throughput and latency beside a
# single node, leader failover after kill -9, catch-up of 1 GiB; about 15
# minutes. BENCH_RUNS, BENCH_KILLS, BENCH_CATCHUP_MIB, ...: see
# scripts/bench-cluster.sh.
bench-cluster:
	scripts/bench-cluster.sh
