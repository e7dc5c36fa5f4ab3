# Weir build and test entry points. `make test` is the full suite CI runs.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: test build vet fuzz cross race

build:
	$(GO) build -o bin/weir ./cmd/weir

# The full test suite: unit, crash, client-compatibility and process tests.
test:
	$(GO) mod download
	$(GO) test -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...

race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

# Short runs of every fuzz target (FUZZTIME per target).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./internal/record -run '^$$' -fuzz FuzzValidate -fuzztime $(FUZZTIME)
	$(GO) test ./internal/kafka -run '^$$' -fuzz FuzzDecodeRequest -fuzztime $(FUZZTIME)

# Cross-compile the binary for every supported platform.
cross:
	GOOS=linux GOARCH=amd64 $(GO) build -o /dev/null ./cmd/weir
	GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./cmd/weir
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -o /dev/null ./cmd/weir
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/weir
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/weir
