#!/usr/bin/env bash
# tunlab: the overlay interface (overlay peer --tun) with real programs, in
# network namespaces behind NAT routers (root). See tunlab/README.md.
#
#   tunlab/run.sh BIN            the checks (CI: make tun-check)
#   MEASURE=1 tunlab/run.sh BIN  also the measurements of docs/tun.md
#
# Every namespace is called otk-*; all are deleted on exit, failure included.
set -Eeuo pipefail

BIN=$(realpath "${1:?usage: run.sh OVERLAY-BINARY}")
MEASURE=${MEASURE:-0}
DIR=$(mktemp -d /tmp/otk-tunlab.XXXXXX)
NS=(otk-inet otk-relay otk-ra otk-a otk-rb otk-b otk-rc otk-c)
PIDS=()
FAILED=0
PASSED=0

log() { printf '%s tunlab: %s\n' "$(date -u +%T)" "$*" >&2; }

cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for ns in "${NS[@]}"; do
		# Whatever still runs in a namespace (a program a check left) goes first.
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
		rm -rf "/etc/netns/$ns"
	done
	if [ "$rc" != 0 ] || [ "$FAILED" != 0 ]; then
		for f in "$DIR"/*.log "$DIR"/*.json "$DIR"/*.out; do [ -f "$f" ] && { echo "--- $f (last 30 lines)"; tail -30 "$f"; }; done
	fi
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'log "line $LINENO: \"$BASH_COMMAND\" failed"' ERR
trap 'exit 130' INT TERM

nsx() { local ns=$1; shift; ip netns exec "otk-$ns" "$@"; }

check() { # check NAME CMD...: run a check, count it
	local name=$1; shift
	if "$@"; then PASSED=$((PASSED + 1)); log "ok   $name"; else FAILED=$((FAILED + 1)); log "FAIL $name"; fi
}

# --- the lab ----------------------------------------------------------------
# otk-inet routes 7.9.0.0/16 between the relay and three NAT routers; A sits
# behind a symmetric NAT (random port per flow: never punched), B and C
# behind cone NATs that drop unsolicited packets, as home routers do (B-C
# hole-punches to a direct connection).
for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; ip netns add "$ns"; nsx "${ns#otk-}" ip link set lo up; done
nsx inet sysctl -qw net.ipv4.ip_forward=1
veth() { # veth NS-A IF-A NS-B IF-B
	ip -n "otk-$1" link add "$2" type veth peer name "$4" netns "otk-$3"
	ip -n "otk-$1" link set "$2" up
	ip -n "otk-$3" link set "$4" up
}
veth inet otk-i0 relay eth0
ip -n otk-inet addr add 7.9.0.254/24 dev otk-i0
ip -n otk-relay addr add 7.9.0.1/24 dev eth0
ip -n otk-relay route add default via 7.9.0.254
i=1
for s in a b c; do
	veth inet "otk-i$i" "r$s" wan
	ip -n otk-inet addr add "7.9.$i.254/24" dev "otk-i$i"
	ip -n "otk-r$s" addr add "7.9.$i.1/24" dev wan
	ip -n "otk-r$s" route add default via "7.9.$i.254"
	veth "r$s" lan "$s" eth0
	ip -n "otk-r$s" addr add "10.9.$i.1/24" dev lan
	ip -n "otk-$s" addr add "10.9.$i.2/24" dev eth0
	ip -n "otk-$s" route add default via "10.9.$i.1"
	nsx "r$s" sysctl -qw net.ipv4.ip_forward=1
	masq=(-t nat -A POSTROUTING -o wan -j MASQUERADE)
	[ "$s" = a ] && masq+=(--random-fully)
	nsx "r$s" iptables "${masq[@]}"
	for chain in FORWARD INPUT; do
		nsx "r$s" iptables -A "$chain" -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
		nsx "r$s" iptables -A "$chain" -i wan -j DROP
	done
	i=$((i + 1))
done

# --- the overlay ---------------------------------------------------------------
start() { # start NS NAME ARGS...: run the binary in a namespace, logging to DIR/NAME.log
	local ns=$1 name=$2; shift 2
	ip netns exec "otk-$ns" "$BIN" "$@" >"$DIR/$name.log" 2>&1 &
	PIDS+=($!)
}
wait_for() { # wait_for SECONDS DESC CMD...
	local until=$((SECONDS + $1)) desc=$2; shift 2
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $until ] || { log "timed out waiting for $desc"; return 1; }
		sleep 0.2
	done
}
start relay relay relay --data "$DIR/relay" --api 127.0.0.1:7400 --no-dht --network otk \
	--listen /ip4/0.0.0.0/tcp/4100 --listen /ip4/0.0.0.0/udp/4100/quic-v1 --addr-file "$DIR/relay.addrs"
wait_for 30 "relay address file" test -s "$DIR/relay.addrs"
RELAY=$(grep '/ip4/7.9.0.1/tcp/4100' "$DIR/relay.addrs" | head -1)
declare -A ID
for s in a b c; do
	mkdir -p "$DIR/$s"
	ID[$s]=$("$BIN" id --key "$DIR/$s/identity.key")
	start "$s" "$s" peer --data "$DIR/$s" --no-dht --network otk --relay "$RELAY" --tun --tun-mtu "${TUN_MTU:-16000}"
done
for s in a b c; do wait_for 30 "peer $s reserved on the relay" nsx "$s" "$BIN" health; done
for s in a b c; do wait_for 10 "peer $s's interface" nsx "$s" ip -o addr show dev overlay0; done

# Until the lab lets them (below), B's and C's routers cannot reach each
# other: B-C starts relayed.
block() { # block -I|-D: cut B's and C's routers off each other, or not
	nsx inet iptables "$1" FORWARD -s 7.9.2.1 -d 7.9.3.1 -j DROP
	nsx inet iptables "$1" FORWARD -s 7.9.3.1 -d 7.9.2.1 -j DROP
}
block -I

# Each member learns the others (a handshake: the peer book then lists
# them with their overlay addresses).
nsx a "$BIN" ping --count 1 "${ID[b]}" >/dev/null
nsx b "$BIN" ping --count 1 "${ID[c]}" >/dev/null
addr() { # addr FROM-NS PEER v4|v6
	nsx "$1" "$BIN" peers --json | jq -r --arg id "$2" --arg f "ipv${3#v}" '.[] | select(.peer_id == $id) | .[$f] // empty'
}
has_addr() { [ -n "$(addr "$1" "$2" v4)" ]; }
wait_for 10 "B in A's peers with an overlay address" has_addr a "${ID[b]}"
wait_for 10 "C in B's peers with an overlay address" has_addr b "${ID[c]}"
B4=$(addr a "${ID[b]}" v4); B6=$(addr a "${ID[b]}" v6); C4=$(addr b "${ID[c]}" v4)
A4=$(nsx a ip -4 -o addr show dev overlay0 | awk '{print $4}' | cut -d/ -f1)
log "A ${ID[a]} $A4; B ${ID[b]} $B4 $B6; C ${ID[c]} $C4"
path() { nsx "$1" "$BIN" peers --json | jq -r --arg id "$2" '.[] | select(.peer_id == $id) | .path'; }

# --- servers on B and C -----------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -f "$DIR/client_key"
ssh-keygen -q -t ed25519 -N '' -f "$DIR/host_key"
cat >"$DIR/sshd_config" <<CONF
Port 2222
HostKey $DIR/host_key
AuthorizedKeysFile $DIR/client_key.pub
PidFile none
UsePAM no
PermitRootLogin yes
StrictModes no
UseDNS no
CONF
mkdir -p /run/sshd
SSH=(ssh -i "$DIR/client_key" -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o GSSAPIAuthentication=no -o ConnectTimeout=20 -o LogLevel=ERROR)
head -c 1000000 /dev/urandom >"$DIR/www.bin"
for s in b c; do
	ip netns exec "otk-$s" /usr/sbin/sshd -D -e -f "$DIR/sshd_config" >"$DIR/sshd-$s.log" 2>&1 &
	PIDS+=($!)
	ip netns exec "otk-$s" python3 -m http.server 8080 --bind '::' --directory "$DIR" >"$DIR/http-$s.log" 2>&1 &
	PIDS+=($!)
	ip netns exec "otk-$s" iperf3 -s -p 5201 >"$DIR/iperf-$s.log" 2>&1 &
	PIDS+=($!)
done
wait_for 30 "servers on B" nsx b sh -c 'ss -ltn | grep -q ":5201" && ss -ltn | grep -q ":8080" && ss -ltn | grep -q ":2222"'

# --- checks: A-B, relayed only ----------------------------------------------
check "A-B relayed only" test "$(path a "${ID[b]}")" = relayed
check "ping A->B over the interface (IPv4)" nsx a ping -c 3 -i 0.2 -W 5 "$B4"
check "ping A->B over the interface (IPv6)" nsx a ping -6 -c 3 -i 0.2 -W 5 "$B6"
curl_ok() { nsx a curl -sf --max-time 20 -o "$DIR/got.bin" "http://$1/www.bin" && cmp -s "$DIR/got.bin" "$DIR/www.bin"; }
check "curl A->B, 1 MB over HTTP" curl_ok "$B4:8080"
check "curl A->B over IPv6" curl_ok "[$B6]:8080"
# Names: each node answers DNS for NAME.overlay and PEERID.overlay on its
# interface address; `ip netns exec` puts /etc/netns/NS/resolv.conf in
# place of the host's, so A's programs resolve through A's node.
mkdir -p /etc/netns/otk-a
echo "nameserver $A4" >/etc/netns/otk-a/resolv.conf
check "ping A->B by name (PEERID.overlay)" nsx a ping -c 2 -i 0.2 -W 5 "${ID[b]}.overlay"
check "curl A->B by name" curl_ok "${ID[b]}.overlay:8080"
ssh_ok() { [ "$(nsx a "${SSH[@]}" "root@$B4" 'echo hello from $(hostname -I | wc -w) addrs; exit 0' | cut -d' ' -f1-2)" = "hello from" ]; }
check "ssh A->B with a command" ssh_ok
iperf_ok() { # iperf_ok FROM TO-ADDR SECONDS OUT
	nsx "$1" iperf3 -c "$2" -p 5201 -t "$3" -J >"$4" 2>&1 && [ "$(jq -r '.end.sum_received.bytes' "$4")" -gt 0 ]
}
check "iperf3 A->B relayed" iperf_ok a "$B4" 3 "$DIR/iperf-ab.json"
unreach_ok() { # ping to a non-member overlay address: ICMP unreachable at once, no hang
	local out; out=$(nsx a ping -c 1 -W 5 100.64.0.99 2>&1 || true)
	grep -q 'Unreachable' <<<"$out"
}
check "non-member address: ICMP unreachable" unreach_ok
tcp_refused_ok() { # a TCP connect to a non-member fails at once
	local t0=$SECONDS
	! nsx a curl -s --max-time 10 http://100.64.0.99:8080/ >/dev/null 2>&1 && [ $((SECONDS - t0)) -lt 5 ]
}
check "non-member address: TCP connect fails fast" tcp_refused_ok

# --- B-C: a TCP transfer and an ssh session across relayed -> direct ---------
# While blocked, the hole punch fails and B-C stays relayed. The node
# punches again (1 s, 5 s, 35 s after a failed punch); once the block is
# gone the next punch succeeds and the path moves, under the transfer.
check "B-C relayed while blocked" test "$(path b "${ID[c]}")" = relayed
nsx b iperf3 -c "$C4" -p 5201 -t 25 -i 5 -J >"$DIR/iperf-bc.json" 2>&1 &
IPERF=$!
nsx b "${SSH[@]}" "root@$C4" 'for i in $(seq 1 25); do echo tick $i; sleep 1; done' >"$DIR/ssh-bc.out" 2>&1 &
SSHP=$!
sleep 5
block -D
check "B-C goes direct under the transfer" wait_for 18 "B-C direct" sh -c "[ \"\$(ip netns exec otk-b $BIN peers --json | jq -r --arg id ${ID[c]} '.[] | select(.peer_id == \$id) | .path')\" = direct ]"
iperf_moved_ok() { wait "$IPERF" && [ "$(jq -r '.end.sum_received.bytes' "$DIR/iperf-bc.json")" -gt 0 ] && ! jq -e '.error' "$DIR/iperf-bc.json" >/dev/null; }
check "iperf3 B->C survives relayed -> direct" iperf_moved_ok
ssh_moved_ok() { wait "$SSHP" && [ "$(grep -c '^tick' "$DIR/ssh-bc.out")" = 25 ]; }
check "ssh session B->C survives relayed -> direct" ssh_moved_ok

# --- measurements (MEASURE=1; docs/tun.md) -----------------------------------
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
cpu() { # cpu PID: user+system seconds so far
	awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"
}
measure() { # measure FROM TO-NS TO-ID TO-ADDR LABEL
	local from=$1 tons=$2 id=$3 to=$4 label=$5 pf pt c0 c1 d0 d1
	pf=$(pidof_ns "$from"); pt=$(pidof_ns "$tons")
	nsx "$from" "$BIN" perf --json --upload 1073741824 --download 0 "$id" >"$DIR/perf-$label.json" 2>"$DIR/perf-$label.err" ||
		log "overlay perf $label failed: $(cat "$DIR/perf-$label.err")"
	c0=$(cpu "$pf"); d0=$(cpu "$pt")
	nsx "$from" iperf3 -c "$to" -p 5201 -t 10 -J >"$DIR/iperf-$label.json" || log "iperf3 $label failed: $(jq -r .error "$DIR/iperf-$label.json")"
	c1=$(cpu "$pf"); d1=$(cpu "$pt")
	local gb; gb=$(jq -r '.end.sum_received.bytes / 1e9' "$DIR/iperf-$label.json")
	# Round trips: ping over the interface and overlay ping on the same
	# path, in alternating rounds (a loaded machine drifts within a minute),
	# 40 each a round, 20 ms apart; the medians of all rounds.
	local ping_p50 oping_p50 r
	: >"$DIR/ping-$label.out"
	: >"$DIR/oping-$label.txt"
	for r in $(seq "${PING_ROUNDS:-5}"); do
		nsx "$from" ping -c 40 -i 0.02 "$to" >>"$DIR/ping-$label.out"
		nsx "$from" "$BIN" ping --json --count 40 --interval 20ms "$id" | jq -r '.rtts_ns[]? / 1e6' >>"$DIR/oping-$label.txt" ||
			log "overlay ping $label failed"
	done
	ping_p50=$(sed -n 's/.*time=\([0-9.]*\) ms/\1/p' "$DIR/ping-$label.out" | median)
	oping_p50=$(median <"$DIR/oping-$label.txt")
	printf 'measure %-8s iperf3 %s Mbit/s (sender %s); overlay perf %s; CPU s/GB sender %s receiver %s; ping p50 %s ms; overlay ping p50 %s ms; added %s ms; load %s\n' \
		"$label" "$(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$DIR/iperf-$label.json")" \
		"$(jq -r '.end.sum_sent.bits_per_second / 1e6 | floor' "$DIR/iperf-$label.json")" \
		"$(jq -c . "$DIR/perf-$label.json")" \
		"$(awk -v a="$c0" -v b="$c1" -v g="$gb" 'BEGIN{printf "%.2f", (b-a)/g}')" \
		"$(awk -v a="$d0" -v b="$d1" -v g="$gb" 'BEGIN{printf "%.2f", (b-a)/g}')" \
		"$ping_p50" "$oping_p50" "$(awk -v a="$ping_p50" -v b="$oping_p50" 'BEGIN{printf "%+.3f", a-b}')" \
		"$(cut -d' ' -f1-3 /proc/loadavg)"
}
pidof_ns() { # the overlay peer's PID in namespace otk-NS
	for p in $(ip netns pids "otk-$1"); do
		if [ "$(readlink "/proc/$p/exe")" = "$BIN" ]; then echo "$p"; return 0; fi
	done
	return 1
}
if [ "$MEASURE" = 1 ]; then
	measure a b "${ID[b]}" "$B4" relayed
	measure b c "${ID[c]}" "$C4" direct
fi

# --- a relay restart under an open connection (A-B has only the relay) -----
RELAY_ARGS=(relay --data "$DIR/relay" --api 127.0.0.1:7400 --no-dht --network otk
	--listen /ip4/0.0.0.0/tcp/4100 --listen /ip4/0.0.0.0/udp/4100/quic-v1)
nsx a iperf3 -c "$B4" -p 5201 -t 20 -i 5 -J >"$DIR/iperf-restart.json" 2>&1 &
IPERF=$!
nsx a "${SSH[@]}" "root@$B4" 'for i in $(seq 1 20); do echo tick $i; sleep 1; done' >"$DIR/ssh-restart.out" 2>&1 &
SSHP=$!
sleep 5
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
log "relay stopped; starting it again"
sleep 1
start relay relay2 "${RELAY_ARGS[@]}"
iperf_restart_ok() { wait "$IPERF" && [ "$(jq -r '.end.sum_received.bytes' "$DIR/iperf-restart.json")" -gt 0 ] && ! jq -e '.error' "$DIR/iperf-restart.json" >/dev/null; }
check "iperf3 A->B survives a relay restart" iperf_restart_ok
ssh_restart_ok() { wait "$SSHP" && [ "$(grep -c '^tick' "$DIR/ssh-restart.out")" = 20 ]; }
check "ssh session A->B survives a relay restart" ssh_restart_ok

# --- cleanup on stop ----------------------------------------------------------
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null || true # peer A: SIGTERM
check "interface gone when the node stops" sh -c '! ip netns exec otk-a ip link show overlay0 >/dev/null 2>&1'

echo "tunlab: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
