//go:build !race

package tunnel_test

// transferSize is what TestLargeTransferBothWays moves each way (less
// under the race detector, race_test.go).
const transferSize = 256 << 20
