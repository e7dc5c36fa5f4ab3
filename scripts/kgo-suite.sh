#!/usr/bin/env bash
# Run franz-go's own integration test suite (github.com/twmb/franz-go/pkg/kgo)
# against a fresh `weir serve`, as the client's authors run it against Kafka.
#
# Usage: scripts/kgo-suite.sh [extra go test flags, e.g. -run 'TestGroup']
# Environment:
#   KGO_RECORDS   records per test (default 50000, as the issue asks)
#   KGO_TIMEOUT   go test -timeout (default 20m)
#   KGO_KEEP      keep the temp dir (server log, data) when set
# The module comes from the Go module proxy at the version in go.mod; its
# source is copied into a temp dir (the module cache is read-only) and
# nothing of it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=$(go list -m -f '{{.Version}}' github.com/twmb/franz-go)
WORK=$(mktemp -d -t weir-kgo-suite.XXXXXX)
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  if [ -z "${KGO_KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

go build -o "$WORK/weir" ./cmd/weir
KPORT=$(free_port); HPORT=$(free_port)
# Groups rebalance at once in tests (no initial delay), as in Kafka's test setups.
"$WORK/weir" serve --data-dir "$WORK/data" --kafka-addr "127.0.0.1:$KPORT" --http-addr "127.0.0.1:$HPORT" \
  --group-initial-rebalance-delay 0 --log-level warn >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$HPORT/readyz" >/dev/null && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
  sleep 0.05
done

SRC=$(go env GOMODCACHE)/github.com/twmb/franz-go@$VERSION
if [ ! -d "$SRC" ]; then
  (cd "$WORK" && go mod download -json "github.com/twmb/franz-go@$VERSION" >/dev/null)
fi
cp -r "$SRC" "$WORK/franz-go"
chmod -R u+w "$WORK/franz-go"
(cd "$WORK/franz-go/pkg/kgo" && go test -c -o "$WORK/kgo.test" .)

echo "running franz-go $VERSION kgo integration tests against weir on 127.0.0.1:$KPORT" >&2
set +e
(cd "$WORK/franz-go/pkg/kgo" && KGO_SEEDS="127.0.0.1:$KPORT" KGO_TEST_RF=1 KGO_TEST_RECORDS="${KGO_RECORDS:-50000}" \
  KGO_LOG_LEVEL=none "$WORK/kgo.test" -test.timeout "${KGO_TIMEOUT:-20m}" "$@")
status=$?
set -e
if [ $status -ne 0 ]; then
  echo "--- weir server log (last 50 lines)" >&2
  tail -50 "$WORK/server.log" >&2
fi
exit $status
