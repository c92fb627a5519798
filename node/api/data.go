package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
)

// bodyData returns a request's payload: data_base64 when set, else the
// text field. A bad data_base64 is answered with 400 here, and ok is false.
func bodyData(w http.ResponseWriter, text, b64 string) (data []byte, ok bool) {
	if b64 == "" {
		return []byte(text), true
	}
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		WriteError(w, http.StatusBadRequest, fmt.Errorf("bad data_base64: %w", err))
		return nil, false
	}
	return data, true
}
