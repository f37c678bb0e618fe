#!/bin/bash
# nc_bench.sh - dmta-nc against a kernel-socket client, same bytes, same
# kernel server, same run.
#
# Usage: bench/nc/nc_bench.sh [BUILD_DIR [BYTES [ROUNDS [CONNS]]]]
#   (default build-rel, 1 GiB, 3 rounds, 10000 connections of 4 KiB)
#
# A kernel sink in the lab namespace listens on 0.0.0.0; dmta-nc reaches it
# over its DPDK port (198.18.0.1, af_packet on a veth), the kernel client
# (socat, in the root namespace) over the management veth (198.19.0.1).
# Both send generated data (dmta-nc --bytes; socat reads /dev/zero), so
# neither reads a file. Rounds alternate; each line gives seconds and
# Mbit/s. Then dmta-nc opens CONNS connections of 4 KiB (connections per
# second from its summary). Uses the shared lab (tools/lab up).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build-rel}
bytes=${2:-1073741824}
rounds=${3:-3}
conns=${4:-10000}
export DMTA_BUILD=$build
lab=$top/tools/lab
sink=$top/tests/lab/nc/nc_sink.py
"$lab" up >/dev/null || exit 1
conf=$("$lab" conf)
tmp=$(mktemp -d)
sp=
trap '[ -n "$sp" ] && kill $sp 2>/dev/null; rm -rf "$tmp"' EXIT

sink_start() {
	ip netns exec dmta-lab /usr/bin/python3 "$sink" sink 0.0.0.0 "$1" 600 >"$tmp/sink" &
	sp=$!
	until grep -q listening "$tmp/sink" 2>/dev/null; do sleep 0.1; done
}
sink_stop() {
	kill $sp
	wait $sp 2>/dev/null
	sp=
	sed -n 's/.*bytes=\([0-9]*\).*/\1/p' "$tmp/sink"
}
now() { date +%s.%N; }

echo "bytes=$bytes rounds=$rounds build=$build load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
	sink_start 19101
	t0=$(now)
	"$build/tools/nc/dmta-nc" -q -c "$conf" --bytes "$bytes" 198.18.0.1 19101 </dev/null
	rc=$?
	t1=$(now)
	got=$(sink_stop)
	echo "round $r dmta-nc: rc=$rc received=$got secs=$(echo "$t1 - $t0" | bc)" \
		"mbit_s=$(echo "scale=1; $bytes * 8 / ($t1 - $t0) / 1000000" | bc)"
	sink_start 19102
	t0=$(now)
	head -c "$bytes" /dev/zero | socat -u -b 65536 STDIN TCP:198.19.0.1:19102
	rc=$?
	t1=$(now)
	got=$(sink_stop)
	echo "round $r kernel : rc=$rc received=$got secs=$(echo "$t1 - $t0" | bc)" \
		"mbit_s=$(echo "scale=1; $bytes * 8 / ($t1 - $t0) / 1000000" | bc)"
done
# dmta-nc's own wall time includes EAL start-up (about 0.3 s); its summary
# gives the transfer alone: run once more with the summary.
sink_start 19103
"$build/tools/nc/dmta-nc" -c "$conf" --bytes "$bytes" 198.18.0.1 19103 </dev/null 2>&1 |
	grep summary
sink_stop >/dev/null
sink_start 19104
"$build/tools/nc/dmta-nc" -c "$conf" --connections "$conns" --bytes 4096 --time-wait 1s \
	198.18.0.1 19104 2>&1 | grep summary
kill $sp
wait $sp 2>/dev/null
sp=
echo "kernel sink: $(tail -1 "$tmp/sink")"
