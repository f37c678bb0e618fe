#!/bin/bash
# idle_cpu.sh - CPU time dmtad (backend = kernel) burns while its SMTP
# sessions sit idle, for each dmtad binary given (default: the build's).
#
# usage: bench/stats/idle_cpu.sh [DMTAD...]
#
# In a private network namespace: smtp-sink on 127.0.0.1, 20 messages
# delivered over up to 10 sessions that then stay idle (idle_timeout 60s);
# then the daemon's user+system CPU time over 5 s of idleness is read from
# /proc/PID/stat, and dmta-queue stats shows the sessions it holds.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${DMTA_BUILD:-$TOP/build}
NS=dmta-t-stats-$$
TMP=$(mktemp -d /tmp/dmta-idle-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" /usr/sbin/smtp-sink -u root -c 127.0.0.1:2525 64 >"$TMP/sink.log" 2>&1 &
PIDS+=($!)
sleep 0.5
[ $# -gt 0 ] || set -- "$BUILD/core/dmtad"
hz=$(getconf CLK_TCK)
for bin in "$@"; do
	rm -rf "$TMP/spool"
	cat >"$TMP/dmta.conf" <<CONF
[spool]
path = $TMP/spool
[dns]
servers = 127.0.0.1:1
[routes]
sink.test = 127.0.0.1:2525
[delivery]
backend = kernel
[smtp]
helo_name = dmta.test
idle_timeout = 60s
CONF
	for i in $(seq 1 20); do
		printf '{"from":"a@dmta.test","to":["r%d@sink.test"],"data":"Subject: %d\\r\\n\\r\\nhi\\r\\n"}\n' "$i" "$i"
	done | "$BUILD/tools/queue/dmta-inject" -q -c "$TMP/dmta.conf"
	ip netns exec "$NS" "$bin" -c "$TMP/dmta.conf" >"$TMP/dmtad.log" 2>&1 &
	pid=$!
	PIDS+=($pid)
	for _ in $(seq 1 100); do
		n=$("$BUILD/tools/queue/dmta-queue" -c "$TMP/dmta.conf" --json stats | sed 's/.*"messages":\([0-9]*\),"recipients".*/\1/')
		[ "$n" = 0 ] && break
		sleep 0.1
	done
	sleep 1
	t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	sleep 5
	t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	sessions=$("$BUILD/tools/queue/dmta-queue" -c "$TMP/dmta.conf" stats | grep '^worker 0:' || echo "worker 0: (no view)")
	kill "$pid"
	wait "$pid" || true
	echo "$bin: $(( (t1 - t0) * 1000 / hz )) ms CPU in 5 s idle; $sessions"
done
