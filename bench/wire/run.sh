#!/usr/bin/env bash
# bench/wire/run.sh - dmta-wire's forwarding rate against a kernel bridge,
# side by side in one run, and its CPU use while idle.
#
# Usage: bench/wire/run.sh [BUILD_DIR]   (default: build; a release build
#        gives the fair figure: meson setup build-rel --buildtype=release
#        -Dtests=false && ninja -C build-rel)
#
# Topology (private, removed on exit), as in tests/lab/wire:
#   ns X: x0 198.18.6.1 <-> w0 [ns W: bridge br0 | dmta-wire] w1 <-> y0 198.18.6.2 :ns Y
# For each path, wire-blast sends COUNT UDP datagrams from X as fast as it
# can and counts what reaches Y; the rate is frames received per second
# from the first to the last. Everything is bounded: COUNT frames, 30 s.
set -u
BUILD=$(readlink -f "${1:-build}")
WIRE=$BUILD/tools/wire/dmta-wire
BLAST=$BUILD/tools/wire/wire-blast
COUNT=${COUNT:-500000}
SIZES=${SIZES:-18 1472}
ROUNDS=${ROUNDS:-2}
TAG=dmta-t-wire-$$
X=$TAG-x W=$TAG-w Y=$TAG-y
TMP=$(mktemp -d /tmp/$TAG.XXXXXX)
WPID=

cleanup() {
	[ -n "$WPID" ] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
	for ns in $X $W $Y; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for ns in $X $W $Y; do ip netns add "$ns"; done
ip link add x0 netns $X type veth peer name w0 netns $W
ip link add w1 netns $W type veth peer name y0 netns $Y
ip -n $X addr add 198.18.6.1/24 dev x0
ip -n $Y addr add 198.18.6.2/24 dev y0
for pair in "$X x0" "$W w0" "$W w1" "$Y y0"; do
	set -- $pair
	ip -n "$1" link set "$2" up
	ip netns exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1
done

# measure LABEL SIZE: blast COUNT datagrams of SIZE bytes from X to Y.
measure() {
	ip netns exec $Y "$BLAST" recv 198.18.6.2 9000 30 >"$TMP/rx" &
	local rpid=$!
	for _ in $(seq 50); do grep -q ready "$TMP/rx" && break; sleep 0.05; done
	ip netns exec $X "$BLAST" send 198.18.6.2 9000 "$COUNT" "$2" >"$TMP/tx"
	wait $rpid
	printf '%-28s %5s B  %s; %s\n' "$1" "$2" "$(cat "$TMP/tx")" "$(grep received "$TMP/rx")"
}

# Prime ARP both ways so the first frames are not lost to resolution.
prime() { ip netns exec $X ping -c 2 -i 0.2 -W 1 198.18.6.2 >/dev/null; }

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores, COUNT=$COUNT, build $BUILD"

# start_wire: dmta-wire in W, forwarding unimpaired; waits for the pidfile.
start_wire() {
	rm -f "$TMP/pid"
	ip netns exec $W "$WIRE" --a w0 --b w1 --spec none --pidfile "$TMP/pid" 2>>"$TMP/wire.log" &
	WPID=$!
	for _ in $(seq 100); do [ -s "$TMP/pid" ] && break; sleep 0.05; done
}
stop_wire() {
	kill -TERM $WPID
	wait $WPID
	WPID=
}
cpu() { awk '{print $14 + $15}' /proc/$WPID/stat; }

# Alternate the two paths, ROUNDS times, so load from elsewhere hits both.
for round in $(seq "$ROUNDS"); do
	ip -n $W link add br0 type bridge
	ip -n $W link set w0 master br0
	ip -n $W link set w1 master br0
	ip -n $W link set br0 up
	prime
	for size in $SIZES; do measure "kernel bridge" $size; done
	ip -n $W link del br0

	start_wire
	prime
	for size in $SIZES; do
		c0=$(cpu)
		measure "dmta-wire --spec none" $size
		echo "    dmta-wire CPU during it: $(($(cpu) - c0)) ticks"
	done
	stop_wire
done
grep -E 'a2b: rx=' "$TMP/wire.log" | tail -1

# Idle: CPU ticks (utime + stime) over 10 s of silence, with a 20 ms delay
# line configured, after traffic has passed (timers armed and fired).
hz=$(getconf CLK_TCK)
rm -f "$TMP/pid"
ip netns exec $W "$WIRE" --a w0 --b w1 --spec delay=20ms,jitter=5ms --pidfile "$TMP/pid" 2>>"$TMP/wire.log" &
WPID=$!
for _ in $(seq 100); do [ -s "$TMP/pid" ] && break; sleep 0.05; done
prime
sleep 1
t0=$(cpu)
sleep 10
t1=$(cpu)
echo "dmta-wire idle: $((t1 - t0)) ticks of CPU in 10 s (1 tick = 1/$hz s)"
stop_wire
