package proxy_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/overlay-net/overlay/node/tun/proxy"
)

func TestReadGreeting(t *testing.T) {
	cases := []struct {
		in   []byte
		want error
	}{
		{[]byte{5, 1, 0}, nil},
		{[]byte{5, 2, 2, 0}, nil},
		{[]byte{5, 1, 2}, proxy.ErrNoMethod},
		{[]byte{5, 0}, proxy.ErrNoMethod},
		{[]byte{4, 1, 0}, proxy.ErrVersion},
		{[]byte{5, 3, 0}, errAny}, // short
		{nil, errAny},
	}
	for _, c := range cases {
		err := proxy.ReadGreeting(bytes.NewReader(c.in))
		if c.want == errAny && err == nil || c.want != errAny && !errors.Is(err, c.want) && err != c.want {
			t.Errorf("greeting %v: err %v, want %v", c.in, err, c.want)
		}
	}
}

var errAny = errors.New("any error")

func TestReadRequest(t *testing.T) {
	name := []byte("alice.overlay")
	domain := append(append([]byte{5, 1, 0, 3, byte(len(name))}, name...), 0, 80)
	cases := []struct {
		in   []byte
		host string
		port uint16
		rep  int // -1: no error; 0: an error with no reply; else the reply code
	}{
		{domain, "alice.overlay", 80, -1},
		{[]byte{5, 1, 0, 1, 100, 64, 0, 1, 0x1f, 0x90}, "100.64.0.1", 8080, -1},
		{append(append([]byte{5, 1, 0, 4}, bytes.Repeat([]byte{0}, 15)...), 1, 0, 22), "::1", 22, -1},
		{[]byte{5, 2, 0, 1, 1, 2, 3, 4, 0, 1}, "", 0, proxy.RepCommandNotSupp}, // BIND
		{[]byte{5, 3, 0, 1, 1, 2, 3, 4, 0, 1}, "", 0, proxy.RepCommandNotSupp}, // UDP ASSOCIATE
		{[]byte{5, 1, 0, 9, 1, 2, 3, 4, 0, 1}, "", 0, proxy.RepAddrTypeNotSupp},
		{[]byte{5, 1, 0, 3, 0, 0, 80}, "", 0, proxy.RepHostUnreachable},
		{[]byte{5, 1, 0, 3, 200, 'a'}, "", 0, 0}, // short name
		{[]byte{5, 1, 0, 1, 1, 2}, "", 0, 0},
		{[]byte{4, 1, 0, 1, 1, 2, 3, 4, 0, 1}, "", 0, 0},
	}
	for _, c := range cases {
		req, err := proxy.ReadRequest(bytes.NewReader(c.in))
		var re *proxy.RequestError
		switch {
		case c.rep == -1 && err != nil:
			t.Errorf("request %v: %v", c.in, err)
		case c.rep == -1 && (req.Host != c.host || req.Port != c.port):
			t.Errorf("request %v: %s:%d, want %s:%d", c.in, req.Host, req.Port, c.host, c.port)
		case c.rep == 0 && (err == nil || errors.As(err, &re)):
			t.Errorf("request %v: err %v, want a plain error", c.in, err)
		case c.rep > 0 && (!errors.As(err, &re) || int(re.Rep) != c.rep):
			t.Errorf("request %v: err %v, want reply %d", c.in, err, c.rep)
		}
	}
}
