GO ?= go
BIN ?= bin/overlay

.PHONY: build test vet fuzz bench clean testnet testnet-check testnet-down

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/overlay

vet:
	$(GO) vet ./...

# The test command README shows and CI runs.
test: vet
	$(GO) test -race -count=1 -timeout 25m ./...

# A short run of every fuzz target beyond its seed corpus.
fuzz:
	$(GO) test ./protocol -run '^$$' -fuzz FuzzDecodeHello -fuzztime 30s
	$(GO) test ./protocol -run '^$$' -fuzz FuzzReadFrame -fuzztime 30s
	$(GO) test ./protocol -run '^$$' -fuzz FuzzReadMsgFrame -fuzztime 30s
	$(GO) test ./protocol -run '^$$' -fuzz FuzzOpenPeerRecord -fuzztime 30s
	$(GO) test ./protocol -run '^$$' -fuzz FuzzDecodeRefusal -fuzztime 30s

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin

# The container testnet (docker-compose.yml, README "Testnet"): 2 relays,
# 3 private peers, 1 public peer. COMPOSE is `docker compose` if it answers,
# else `docker-compose`.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
TESTNET = $(COMPOSE) -p overlay-testnet -f docker-compose.yml

# Build the binary and the image, start the net, wait until every node is healthy.
testnet: build
	docker build --target testnet -t overlay-testnet:local .
	$(TESTNET) up -d
	COMPOSE="$(COMPOSE)" $(GO) run ./testnet/check -wait

# End-to-end checks against the running net; prints a summary table.
# CHECK_FLAGS: see `go run ./testnet/check -h` (bounds of the waits).
testnet-check:
	COMPOSE="$(COMPOSE)" $(GO) run ./testnet/check $(CHECK_FLAGS)

# Stop the net and remove its containers, networks and volumes.
testnet-down:
	$(TESTNET) --profile intruder down -v --remove-orphans
