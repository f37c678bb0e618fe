#!/bin/bash
# lab_nc.sh - dmta-nc against the Linux kernel's TCP in the shared lab.
#
# Usage: lab_nc.sh TOOLS_LAB BUILD_DIR SINK_PY CASE [ARGS]
#   bulk BYTES      BYTES from /dev/urandom through stdin to a kernel server
#                   on 198.18.0.1; its sha256 must match the sender's
#   impair BYTES    the same under tools/lab impair (loss 5%, delay 20 ms,
#                   jitter 10 ms, reorder 1%, duplicate 1%), in both
#                   directions: dmta-nc sending, then dmta-nc --listen
#                   receiving from a kernel client
#   many K          K connections at once (tools/lab run dmta-nc), 4 KiB
#                   each; the kernel server must count K and K*4096 bytes,
#                   dmta-nc's summary must show an empty table and every mbuf
#                   back
#   many2 K         the same from two workers (two queue pairs, software flow
#                   steering): both workers open their share, and frames
#                   that land on the other worker's queue are forwarded
#   errors          a closed port (RST: exit 69) and an address that never
#                   answers (ARP fails: exit 75), each within its timeout
#
# The lab (namespace dmta-lab) is brought up if needed and left up; kernel
# peers run inside it with ip netns exec. Everything this script starts is
# stopped on exit, and the impairment is taken out again.
set -u
set -o pipefail
lab=$1
build=$2
sink_py=$3
case_=$4
arg=${5:-}
export DMTA_BUILD=$build
nc=$build/tools/nc/dmta-nc
tmp=$(mktemp -d /tmp/dmta-lab-nc.XXXXXX)
pids=()
impaired=
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "$impaired" ] && "$lab" impair off >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

"$lab" up >/dev/null || fail "tools/lab up"
conf=$("$lab" conf)

# A kernel sink on ADDR PORT for SECONDS; output in $tmp/sink.out.
start_sink() {
	ip netns exec dmta-lab /usr/bin/python3 "$sink_py" sink "$1" "$2" "$3" >"$tmp/sink.out" &
	sink_pid=$!
	pids+=("$sink_pid")
	for _ in $(seq 50); do
		grep -q listening "$tmp/sink.out" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "kernel sink did not start"
}
# Stop the sink (in this shell: wait works only on its own children) and
# leave its last line in $sink_result.
stop_sink() {
	kill "$sink_pid" 2>/dev/null
	wait "$sink_pid" 2>/dev/null
	sink_result=$(tail -1 "$tmp/sink.out")
}
field() { tr ' ' '\n' | sed -n "s/^$1=//p" | tail -1; }
# Wait (10 s at most) until the sink has seen N connections end: then it
# has read every byte they carried.
wait_closed() {
	for _ in $(seq 200); do
		grep -q "^closed=$1 " "$tmp/sink.out" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "lab_nc: the sink saw fewer than $1 connections end" >&2
}

# dmta-nc sends BYTES of random data through stdin; the kernel's sha256 must match.
send_check() {
	local bytes=$1 port=$2 limit=$3 want got rc
	start_sink 198.18.0.1 "$port" "$limit"
	head -c "$bytes" /dev/urandom | tee >(sha256sum | cut -d' ' -f1 >"$tmp/src.sha") |
		timeout "$limit" "$nc" -c "$conf" 198.18.0.1 "$port" >/dev/null 2>"$tmp/nc.err"
	rc=$?
	cat "$tmp/nc.err" >&2
	[ $rc = 0 ] || fail "dmta-nc exited $rc"
	wait_closed 1
	stop_sink
	got=$(echo "$sink_result" | field sha256)
	want=$(cat "$tmp/src.sha")
	echo "sent sha256 $want, kernel received sha256 $got"
	[ -n "$want" ] && [ "$want" = "$got" ] || fail "sha256 differs"
}

# A kernel client sends BYTES to dmta-nc --listen; dmta-nc's stdout must match.
listen_check() {
	local bytes=$1 port=$2 limit=$3 want got rc
	head -c "$bytes" /dev/urandom >"$tmp/src"
	want=$(sha256sum <"$tmp/src" | cut -d' ' -f1)
	timeout "$limit" "$nc" -c "$conf" --listen "$port" </dev/null 2>"$tmp/nc.err" |
		sha256sum | cut -d' ' -f1 >"$tmp/got.sha" &
	local nc_pid=$!
	pids+=("$nc_pid")
	sleep 1.5 # EAL and the port come up before the client tries
	timeout "$limit" ip netns exec dmta-lab /usr/bin/python3 "$sink_py" send 198.18.0.2 \
		"$port" "$tmp/src" || fail "kernel client failed"
	wait "$nc_pid"
	rc=$?
	cat "$tmp/nc.err" >&2
	[ $rc = 0 ] || fail "dmta-nc --listen exited $rc"
	got=$(cat "$tmp/got.sha")
	echo "kernel sent sha256 $want, dmta-nc received sha256 $got"
	[ "$want" = "$got" ] || fail "sha256 differs"
}

case $case_ in
bulk)
	send_check "$arg" 19001 170
	;;
impair)
	"$lab" impair loss=5%,delay=20ms,jitter=10ms,reorder=1%,duplicate=1% || fail "impair"
	impaired=1
	send_check "$arg" 19002 150
	listen_check "$arg" 19003 150
	;;
many | many2)
	start_sink 198.18.0.1 19004 150
	if [ "$case_" = many ]; then
		timeout 140 "$lab" run dmta-nc --connections "$arg" --bytes 4096 --time-wait 1s \
			198.18.0.1 19004 2>"$tmp/nc.err"
		rc=$?
	else
		# Three lcores on what may be two CPUs: the workers sleep when idle.
		sed 's|-l 0-1|--lcores 0@0,1@0,2@1|; s|qpairs=1|qpairs=2|; s|^count = 1|count = 2\nidle_sleep_us = 20|' \
			"$conf" >"$tmp/two.conf"
		timeout 140 "$nc" -c "$tmp/two.conf" --connections "$arg" --bytes 4096 \
			--time-wait 1s 198.18.0.1 19004 2>"$tmp/nc.err"
		rc=$?
	fi
	cat "$tmp/nc.err" >&2
	wait_closed "$arg"
	stop_sink
	out=$sink_result
	echo "kernel: $out"
	[ $rc = 0 ] || fail "dmta-nc exited $rc"
	s=$(grep summary "$tmp/nc.err")
	[ "$(echo "$s" | field conns_ok)" = "$arg" ] || fail "not every connection completed"
	[ "$(echo "$s" | field conns_peak)" = "$arg" ] || fail "connections were not concurrent"
	# No --max-sending: all K send at once, the stack must cope with the
	# pool running short (it holds back and retries; nothing is lost).
	[ "$(echo "$s" | field sending_peak)" = "$arg" ] || fail "connections did not send at once"
	[ "$(echo "$s" | field table_conns)" = 0 ] || fail "connection table not empty"
	[ "$(echo "$s" | field table_slots)" = 0 ] || fail "connection slots not released"
	[ "$(echo "$s" | field mbufs_end)" = "$(echo "$s" | field mbufs_start)" ] ||
		fail "mbufs not all back in the pool"
	[ "$(echo "$out" | field conns)" = "$arg" ] || fail "kernel saw a different count"
	[ "$(echo "$out" | field bytes)" = $((arg * 4096)) ] || fail "kernel got other bytes"
	if [ "$case_" = many2 ]; then
		[ "$(echo "$s" | field workers)" = 2 ] || fail "not two workers"
		[ "$(echo "$s" | field strays)" -gt 0 ] || fail "no frame crossed between workers"
		[ "$(echo "$s" | field stray_drop)" = 0 ] || fail "forwarded frames were lost"
	fi
	;;
errors)
	# Nothing listens on 198.18.0.1:19005: the kernel answers RST.
	t0=$(date +%s%N)
	timeout 30 "$lab" run dmta-nc -w 3s 198.18.0.1 19005 2>"$tmp/nc.err"
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	cat "$tmp/nc.err" >&2
	echo "refused: exit $rc after $ms ms"
	[ $rc = 69 ] || fail "refused: exit $rc, want 69"
	grep -q "refused" "$tmp/nc.err" || fail "refused: no error line"
	# 198.18.0.99 is on the lab's link but nobody has it: ARP fails and the
	# SYN never leaves; the 3 s connect timeout must end it.
	t0=$(date +%s%N)
	timeout 30 "$lab" run dmta-nc -w 3s 198.18.0.99 25 2>"$tmp/nc.err"
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	cat "$tmp/nc.err" >&2
	echo "no answer: exit $rc after $ms ms"
	[ $rc = 75 ] || fail "no answer: exit $rc, want 75"
	[ $ms -ge 3000 ] && [ $ms -lt 10000 ] || fail "no answer: not within the 3 s timeout"
	grep -q "timed out" "$tmp/nc.err" || fail "no answer: no error line"
	;;
*)
	fail "unknown case $case_"
	;;
esac
echo ok
