package topics

// Encode is the envelope encoder, for tests that publish through a raw
// gossipsub.
func Encode(session, seq uint64, data []byte) []byte {
	return envelope{session: session, seq: seq, data: data}.encode()
}

// Thresholds for tests.
const GraylistThreshold = graylistThreshold
