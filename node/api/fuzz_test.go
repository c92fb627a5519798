package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/overlay-net/overlay/node/api"
)

// FuzzReadJSON feeds every control API request body type arbitrary bytes,
// capped as the server caps them: the answer is a decoded request or a 400
// or 413 with a JSON error, never a panic; what is accepted is one valid
// JSON value and nothing after it.
func FuzzReadJSON(f *testing.F) {
	for _, s := range []string{
		`{"peer":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","data":"hi","timeout":"5s"}`,
		`{"peer":"x","data_base64":"AAEC/w=="}`,
		`{"target":"/ip4/127.0.0.1/tcp/1/p2p/x","count":3,"interval":"10ms"}`,
		`{"target":"x","upload_bytes":18446744073709551615,"download_bytes":1}`,
		`{"name":"web","target":"127.0.0.1:80","allow":["a","b"]}`,
		`{"listen":"8080","peer":"x","service":"web"}`,
		`{"a":1} trailing`, `{"a":1}{"b":2}`, `null`, `[]`, `"str"`, `{"count":1e999}`,
		`{"data":"\ud800"}`, "{\"data\":\"\xff\"}", ``, `{`, ` `,
	} {
		f.Add([]byte(s))
	}
	targets := []func() any{
		func() any { return new(api.SendRequest) }, func() any { return new(api.PingRequest) },
		func() any { return new(api.PerfRequest) }, func() any { return new(api.ConnectRequest) },
		func() any { return new(api.ExposeRequest) }, func() any { return new(api.ForwardRequest) },
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mk := range targets {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(data))
			r.Body = http.MaxBytesReader(rec, r.Body, api.MaxBody)
			v := mk()
			if api.ReadJSON(rec, r, v) {
				if !json.Valid(data) {
					t.Fatalf("accepted %q into %T, which is not one valid JSON value", data, v)
				}
				continue
			}
			var eb api.ErrorBody
			if (rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge) ||
				json.Unmarshal(rec.Body.Bytes(), &eb) != nil || eb.Error == "" {
				t.Fatalf("refused %q into %T with %d %q; want 400 or 413 with a JSON error", data, v, rec.Code, rec.Body)
			}
		}
	})
}
