#!/usr/bin/env bash
# tunlab/userspace.sh: the userspace mode (--tun userspace) next to a kernel
# interface (--tun), in one network namespace (root): a relay, a kernel-mode
# member K and a userspace-mode member U, both WebSocket-only and so relayed.
# Checks that the two modes interoperate: U reaches K's HTTP server through
# its SOCKS5 proxy by name (curl --socks5-hostname), K reaches a service U
# accepts (--tun-accept), and K's DNS server names U.
#
#   tunlab/userspace.sh BIN
#
# The namespace is called otu-lab and is deleted on exit, failure included.
set -Eeuo pipefail

BIN=$(realpath "${1:?usage: userspace.sh OVERLAY-BINARY}")
NS=otu-lab
DIR=$(mktemp -d /tmp/otu-lab.XXXXXX)
PIDS=()
FAILED=0
PASSED=0

log() { printf '%s userspace lab: %s\n' "$(date -u +%T)" "$*" >&2; }
cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
	ip netns del "$NS" 2>/dev/null || true
	if [ "$rc" != 0 ] || [ "$FAILED" != 0 ]; then
		for f in "$DIR"/*.log; do [ -f "$f" ] && { echo "--- $f (last 20 lines)"; tail -20 "$f"; }; done
	fi
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nsx() { ip netns exec "$NS" "$@"; }
check() {
	local name=$1; shift
	if "$@"; then PASSED=$((PASSED + 1)); log "ok   $name"; else FAILED=$((FAILED + 1)); log "FAIL $name"; fi
}
wait_for() { # wait_for SECONDS DESC CMD...
	local until=$((SECONDS + $1)) desc=$2; shift 2
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $until ] || { log "timed out waiting for $desc"; return 1; }
		sleep 0.2
	done
}
start() { # start NAME ARGS...: the binary in the namespace, logging to DIR/NAME.log
	local name=$1; shift
	nsx "$BIN" "$@" >"$DIR/$name.log" 2>&1 &
	PIDS+=($!)
}

ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
nsx ip link set lo up

start relay relay --data "$DIR/relay" --api off --no-dht --network otu \
	--listen /ip4/127.0.0.1/tcp/4100/ws --addr-file "$DIR/relay.addrs"
wait_for 30 "relay address file" test -s "$DIR/relay.addrs"
RELAY=$(head -1 "$DIR/relay.addrs")
for m in k u; do mkdir -p "$DIR/$m"; done
KID=$("$BIN" id --key "$DIR/k/identity.key")
UID_=$("$BIN" id --key "$DIR/u/identity.key")
start k peer --data "$DIR/k" --api 127.0.0.1:7401 --no-dht --network otu --ws-only --relay "$RELAY" --tun
start u peer --data "$DIR/u" --api 127.0.0.1:7402 --no-dht --network otu --ws-only --relay "$RELAY" \
	--tun userspace --socks5 127.0.0.1:1080 --http-proxy 127.0.0.1:8080 --tun-accept 9090
for api in 7401 7402; do wait_for 30 "member on $api reserved" nsx "$BIN" health --api "127.0.0.1:$api"; done
wait_for 10 "K's interface" nsx ip -o addr show dev overlay0
K4=$(nsx ip -4 -o addr show dev overlay0 | awk '{print $4}' | cut -d/ -f1)
log "K $KID $K4; U $UID_"

echo "hello from K" >"$DIR/k.txt"
echo "hello from U's host" >"$DIR/u.txt"
nsx python3 -m http.server 8000 --bind "$K4" --directory "$DIR" >"$DIR/http-k.log" 2>&1 &
PIDS+=($!)
nsx python3 -m http.server 9090 --bind 127.0.0.1 --directory "$DIR" >"$DIR/http-u.log" 2>&1 &
PIDS+=($!)
wait_for 60 "the HTTP servers" nsx sh -c 'ss -ltn | grep -q ":8000" && ss -ltn | grep -q ":9090"'

socks_ok() { [ "$(nsx curl -sf --max-time 30 --socks5-hostname 127.0.0.1:1080 "http://$KID.overlay:8000/k.txt")" = "hello from K" ]; }
check "U -> K by name through SOCKS5 (curl --socks5-hostname)" socks_ok
http_ok() { [ "$(nsx curl -sf --max-time 30 -x http://127.0.0.1:8080 "http://$KID.overlay:8000/k.txt")" = "hello from K" ]; }
check "U -> K by name through the HTTP proxy" http_ok
U4=$(nsx "$BIN" peers --api 127.0.0.1:7401 --json | jq -r --arg id "$UID_" '.[] | select(.peer_id == $id) | .ipv4 // empty')
accept_ok() { [ -n "$U4" ] && [ "$(nsx curl -sf --max-time 30 "http://$U4:9090/u.txt")" = "hello from U's host" ]; }
check "K -> U's accepted port over the interface" accept_ok
dns_ok() { [ "$(nsx dig +short +time=5 @"$K4" "$UID_.overlay" A)" = "$U4" ]; }
if command -v dig >/dev/null; then check "K's DNS server names U" dns_ok; else log "skip DNS check: no dig (dnsutils)"; fi
refused_ok() { ! nsx curl -s --max-time 10 --socks5-hostname 127.0.0.1:1080 "http://nobody.overlay/" >/dev/null 2>&1; }
check "an unknown name is refused" refused_ok

log "$PASSED passed, $FAILED failed"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
