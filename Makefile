GO ?= go
BIN ?= bin/overlay

.PHONY: build test vet fuzz bench clean

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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
