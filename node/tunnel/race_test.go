//go:build race

package tunnel_test

// transferSize is what TestLargeTransferBothWays moves each way under the
// race detector, which makes copying many times slower; without it the
// test moves the full 256 MiB (norace_test.go).
const transferSize = 32 << 20
