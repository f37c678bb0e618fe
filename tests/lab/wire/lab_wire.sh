#!/usr/bin/env bash
# lab_wire.sh - dmta-wire between two namespaces, measured with ping and TCP.
#
# Usage: lab_wire.sh PATH/TO/dmta-wire
#
# Topology (private to this run, removed on exit):
#   ns X: x0 198.18.5.1/24 <-veth-> w0 [ns W: dmta-wire] w1 <-veth-> y0 198.18.5.2/24 :ns Y
# Offloads (TSO/GSO/GRO) are off on all four ends, except in check 8 which
# turns TSO/GSO on at the senders to exercise the wire's segmentation;
# transmit checksum offload stays on, so the wire's checksum completion is
# exercised by every TCP segment.
#
# Checks, each with its tolerance:
#   - a bad spec exits 64 with one line;
#   - no impairment: ping works, RTT < 10 ms;
#   - delay=20ms: ping RTT avg in [39, 50] ms, min >= 39 ms;
#   - loss=5% (both ways): ping loss over 1000 pings at 2 ms in [5, 15] %
#     (expected 1 - 0.95^2 = 9.75 %, sd 0.94 %); the wire's own a2b counter
#     lost/rx in [3, 7] %;
#   - duplicate=10%: ping reports DUPs; reorder=30%,delay=5ms: the wire
#     counts reordered frames and ping still gets its replies;
#   - b2a.loss=0%,loss=10%: the wire's a2b counter loses 12..50 of ~300,
#     its b2a counter none;
#   - rate=20mbit: TCP goodput of 4 MiB within 14..20.5 Mbit/s;
#   - loss=5%,delay=20ms,jitter=10ms,reorder=1%,duplicate=1%,corrupt=0.1%:
#     a TCP transfer of $BYTES arrives with a matching sha256;
#   - TSO/GSO on at the senders: super-frames cut into segments, 4 MiB of
#     TCP intact across loss=1%,delay=5ms;
#   - mtu=1280,icmp=off: pings of 1400 bytes with DF are lost without a
#     word (too_big counted, no ICMP); pings of 1200 bytes pass;
#   - mtu=1280,icmp=198.18.5.254: the kernel's TCP learns the path MTU
#     from the wire's ICMP (its route cache says mtu 1280) and 1 MiB
#     arrives intact;
#   - SIGUSR1 prints counters; SIGTERM: exit status 0 and counters printed.
set -u
WIRE=$(readlink -f "$1")
TAG=dmta-t-wire-$$
X=$TAG-x W=$TAG-w Y=$TAG-y
TMP=$(mktemp -d /tmp/$TAG.XXXXXX)
BYTES=${WIRE_LAB_BYTES:-8388608}
WPID=
SPID=
fails=0
start=$(date +%s)

cleanup() {
	[ -n "$WPID" ] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
	for ns in $X $W $Y; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "ok: $*"; }
bad() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# Bad spec: exit 64, one line.
out=$("$WIRE" --a x --b y --spec 'loss=150%' 2>&1)
rc=$?
if [ $rc = 64 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ]; then
	ok "bad spec: exit 64: $out"
else
	bad "bad spec: got exit $rc and '$out', want 64 and one line"
fi

set -e
for ns in $X $W $Y; do ip netns add "$ns"; done
ip link add x0 netns $X type veth peer name w0 netns $W
ip link add w1 netns $W type veth peer name y0 netns $Y
ip -n $X addr add 198.18.5.1/24 dev x0
ip -n $Y addr add 198.18.5.2/24 dev y0
for pair in "$X x0" "$W w0" "$W w1" "$Y y0"; do
	set -- $pair
	ip -n "$1" link set "$2" up
	ip netns exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
	ip -n "$1" link set lo up
done
set +e

# start_wire SPEC: run dmta-wire in W, wait for its pidfile (readiness).
start_wire() {
	rm -f "$TMP/wire.pid"
	ip netns exec $W "$WIRE" --a w0 --b w1 --seed 7 --spec "$1" \
		--pidfile "$TMP/wire.pid" 2>"$TMP/wire.log" &
	WPID=$!
	for _ in $(seq 100); do
		[ -s "$TMP/wire.pid" ] && return 0
		kill -0 $WPID 2>/dev/null || break
		sleep 0.05
	done
	bad "dmta-wire did not become ready with spec '$1'"
	cat "$TMP/wire.log"
	return 1
}

# stop_wire: SIGTERM, expect exit 0 and the counters in the log.
stop_wire() {
	kill -TERM $WPID
	wait $WPID
	rc=$?
	WPID=
	if [ $rc != 0 ]; then
		bad "dmta-wire exited $rc on SIGTERM, want 0"
		cat "$TMP/wire.log"
	fi
	grep -q 'a2b: rx=' "$TMP/wire.log" || bad "no counters printed at exit"
}

# counter DIR NAME: a counter from the last stats line of the log.
counter() {
	grep "$1: rx=" "$TMP/wire.log" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# rtt FIELD: min/avg/max from ping's summary (field 1, 2, 3).
rtt() { sed -n 's|.*= \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\)/.*|\1 \2 \3|p' "$TMP/ping" | cut -d' ' -f"$1"; }

px() { ip netns exec $X ping "$@" 198.18.5.2 >"$TMP/ping" 2>&1; }

# 1. No impairment.
start_wire none && {
	px -c 20 -i 0.01 -W 1
	if grep -q ' 0% packet loss' "$TMP/ping" && awk "BEGIN{exit !($(rtt 2) < 10)}"; then
		ok "none: 0% loss, rtt avg $(rtt 2) ms"
	else
		bad "none: want 0% loss and rtt < 10 ms"
		cat "$TMP/ping"
	fi
	stop_wire
}

# 2. Delay.
start_wire delay=20ms && {
	px -c 20 -i 0.05 -W 1
	mn=$(rtt 1) avg=$(rtt 2)
	if [ -n "$avg" ] && awk "BEGIN{exit !($mn >= 39 && $avg >= 39 && $avg <= 50)}"; then
		ok "delay=20ms: rtt min $mn avg $avg ms (want min >= 39, avg 39..50)"
	else
		bad "delay=20ms: got rtt min '$mn' avg '$avg', want min >= 39, avg 39..50"
		cat "$TMP/ping"
	fi
	stop_wire
}

# 3. Loss.
start_wire loss=5% && {
	px -c 1000 -i 0.002 -W 1
	loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$TMP/ping")
	stop_wire
	rx=$(counter a2b rx) lost=$(counter a2b lost)
	if [ -n "$loss" ] && awk "BEGIN{exit !($loss >= 5 && $loss <= 15)}"; then
		ok "loss=5%: ping loss $loss% over 1000 (want 5..15, expected 9.75)"
	else
		bad "loss=5%: got ping loss '$loss'%, want 5..15"
		tail -3 "$TMP/ping"
	fi
	if [ -n "$rx" ] && [ "$rx" -gt 0 ] && awk "BEGIN{p=100*$lost/$rx; exit !(p >= 3 && p <= 7)}"; then
		ok "loss=5%: wire a2b lost $lost of $rx"
	else
		bad "loss=5%: wire a2b lost '$lost' of '$rx', want 3..7%"
	fi
}

# 4. Duplication: ping reports DUPs.
start_wire duplicate=10% && {
	px -c 200 -i 0.005 -W 1
	dups=$(sed -n 's/.*+\([0-9]*\) duplicates.*/\1/p' "$TMP/ping")
	if grep -q 'DUP!' "$TMP/ping" && [ -n "$dups" ] && [ "$dups" -ge 10 ]; then
		ok "duplicate=10%: ping reports $dups duplicates over 200 (expected ~38)"
	else
		bad "duplicate=10%: got '$dups' duplicates, want >= 10 and DUP! lines"
		tail -3 "$TMP/ping"
	fi
	stop_wire
}

# 5. Reordering: the wire reorders, nothing is lost.
start_wire reorder=30%,delay=5ms && {
	px -c 200 -i 0.002 -W 1
	stop_wire
	re=$(counter a2b reordered)
	if grep -q ' 0% packet loss' "$TMP/ping" && [ -n "$re" ] && [ "$re" -ge 30 ]; then
		ok "reorder=30%: a2b reordered $re of 200, no loss"
	else
		bad "reorder=30%: got reordered '$re' (want >= 30) and: $(tail -2 "$TMP/ping" | head -1)"
	fi
}

# 6. Per-direction override: only a2b loses frames.
start_wire b2a.loss=0%,loss=10% && {
	px -c 300 -i 0.002 -W 1
	stop_wire
	la=$(counter a2b lost) lb=$(counter b2a lost) ra=$(counter a2b rx)
	if [ -n "$la" ] && [ "$lb" = 0 ] && [ "$la" -ge 12 ] && [ "$la" -le 50 ]; then
		ok "b2a.loss=0%,loss=10%: a2b lost $la of $ra, b2a lost 0"
	else
		bad "b2a.loss=0%,loss=10%: a2b lost '$la' of '$ra' (want 12..50), b2a lost '$lb' (want 0)"
	fi
}

# tcp_xfer BYTES: socat from X to Y; sets src (sender status), secs, same.
tcp_xfer() {
	head -c "$1" /dev/urandom >"$TMP/in"
	rm -f "$TMP/out"
	timeout 70 ip netns exec $Y socat -u TCP-LISTEN:5001,bind=198.18.5.2,reuseaddr \
		CREATE:"$TMP/out" &
	SPID=$!
	sleep 0.3
	t0=$(date +%s.%N)
	timeout 60 ip netns exec $X socat -u OPEN:"$TMP/in" TCP:198.18.5.2:5001
	src=$?
	wait $SPID
	t1=$(date +%s.%N)
	SPID=
	secs=$(awk "BEGIN{printf \"%.2f\", $t1 - $t0}")
	a=$(sha256sum <"$TMP/in" | cut -d' ' -f1)
	b=$(sha256sum <"$TMP/out" 2>/dev/null | cut -d' ' -f1)
	same=0
	[ "$a" = "$b" ] && same=1
}

# 7. Rate limit: TCP goodput under rate=20mbit (queue 50ms, the default).
start_wire rate=20mbit && {
	tcp_xfer 4194304
	stop_wire
	mbit=$(awk "BEGIN{printf \"%.1f\", 4194304 * 8 / $secs / 1e6}")
	if [ $src = 0 ] && [ $same = 1 ] && awk "BEGIN{exit !($mbit >= 14 && $mbit <= 20.5)}"; then
		ok "rate=20mbit: 4 MiB in ${secs}s = $mbit Mbit/s goodput (want 14..20.5)"
	else
		bad "rate=20mbit: got $mbit Mbit/s (want 14..20.5), sender exit $src, sha256 same=$same"
	fi
	grep 'a2b: rx=' "$TMP/wire.log" | tail -1
}

# 8. Super-frames: with TSO/GSO on at both senders, the wire cuts them
# into MSS-sized segments (each impaired on its own) and TCP still works.
for e in "$X x0" "$Y y0"; do
	set -- $e
	ip netns exec "$1" ethtool -K "$2" tso on gso on >/dev/null 2>&1
done
start_wire loss=1%,delay=5ms && {
	tcp_xfer 4194304
	stop_wire
	cut=$(grep 'a2b: rx=' "$TMP/wire.log" | tail -1 | sed -n 's/.*tso_cut=\([0-9]*\).*/\1/p')
	ov=$(counter a2b oversize)
	if [ $src = 0 ] && [ $same = 1 ] && [ -n "$cut" ] && [ "$cut" -gt 0 ] && [ "$ov" = 0 ]; then
		ok "tso on: 4 MiB intact in ${secs}s, $cut super-frames cut, none refused"
		grep "rx=" "$TMP/wire.log" | tail -2
	else
		bad "tso on: sender exit $src, same=$same, tso_cut '$cut' (want > 0), oversize '$ov' (want 0)"
		grep 'rx=\|warn' "$TMP/wire.log"
	fi
}
for e in "$X x0" "$Y y0"; do
	set -- $e
	ip netns exec "$1" ethtool -K "$2" tso off gso off >/dev/null 2>&1
done

# 9. TCP across everything at once; sha256 must match.
SPEC='loss=5%,delay=20ms,jitter=10ms,reorder=1%,duplicate=1%,corrupt=0.1%'
start_wire "$SPEC" && {
	tcp_xfer "$BYTES"
	kill -USR1 $WPID
	sleep 0.2
	stop_wire
	if [ $src = 0 ] && [ $same = 1 ]; then
		ok "tcp $BYTES bytes across $SPEC: sha256 match in ${secs}s"
	else
		bad "tcp across $SPEC: sender exit $src, sha256 same=$same"
	fi
	[ "$(grep -c 'a2b: rx=' "$TMP/wire.log")" -ge 2 ] || bad "SIGUSR1 printed no counters"
	grep 'a2b: rx=\|b2a: rx=' "$TMP/wire.log" | tail -2
	for k in lost reordered duplicated delayed; do
		v=$(counter a2b $k)
		[ -n "$v" ] && [ "$v" -gt 0 ] || bad "tcp: a2b $k is '$v', want > 0"
	done
	fx=$(grep 'a2b: rx=' "$TMP/wire.log" | tail -1 | sed -n 's/.*csum_fixed=\([0-9]*\).*/\1/p')
	[ -n "$fx" ] && [ "$fx" -gt 0 ] && ok "checksums completed in software: $fx frames"
}

# 10. A hop with a smaller MTU: silent first (a black hole), then with ICMP
# "fragmentation needed" from a router address, which the kernel's TCP
# obeys (RFC 1191).
start_wire mtu=1280,icmp=off && {
	px -c 3 -i 0.2 -W 1 -M do -s 1400
	big=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$TMP/ping")
	px -c 3 -i 0.2 -W 1 -M do -s 1200
	small=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$TMP/ping")
	stop_wire
	tb=$(counter a2b too_big) ic=$(counter a2b icmp_sent)
	if [ "$big" = 0 ] && [ "$small" = 3 ] && [ "$tb" = 3 ] && [ "$ic" = 0 ]; then
		ok "mtu=1280,icmp=off: 1400-byte pings lost ($tb too_big, no ICMP), 1200-byte pings pass"
	else
		bad "mtu=1280,icmp=off: got $big/3 big and $small/3 small pings back, too_big '$tb'" \
			"icmp_sent '$ic'; want 0, 3, 3, 0"
	fi
}
start_wire mtu=1280,icmp=198.18.5.254 && {
	tcp_xfer 1048576
	stop_wire
	tb=$(counter a2b too_big) ic=$(counter a2b icmp_sent)
	route=$(ip -n $X route get 198.18.5.2)
	if [ $src = 0 ] && [ $same = 1 ] && [ "${tb:-0}" -ge 1 ] && [ "$ic" = "$tb" ] &&
		echo "$route" | grep -q 'mtu 1280'; then
		ok "mtu=1280: 1 MiB intact in ${secs}s, $tb too big, $ic ICMP; route: $(echo $route)"
	else
		bad "mtu=1280: sender exit $src, same=$same, too_big '$tb' icmp_sent '$ic'" \
			"(want >= 1 and equal), route '$(echo $route)' (want mtu 1280)"
	fi
}

echo "elapsed $(($(date +%s) - start))s, $fails failure(s)"
[ $fails = 0 ]
