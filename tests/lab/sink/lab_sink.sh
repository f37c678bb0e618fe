#!/bin/bash
# lab_sink.sh - dmta-sink against kernel SMTP clients in the shared lab, and
# dmtad against dmta-sink over memif.
#
# Usage: lab_sink.sh TOOLS_LAB BUILD_DIR CASE
#   kernel   dmta-sink on the lab's DPDK port (198.18.0.2, af_packet):
#            - swaks, plain and pipelined, a body that needs dot-stuffing:
#              the message counts and dmta-sink's digest must equal the
#              digest of the body computed here;
#            - smtp-source, 50 sessions at once, 1,000 messages of 4 KiB,
#              connections kept open: every message and byte counted;
#            - smtp-source, 2,000 sessions, a message each, answered 2 s
#              late (--delay): all counted, at least 1,000 connections
#              open at the same time;
#            - --reject-rcpt 25 --tempfail-rcpt 10 (sink_client.py, which
#              goes on after a refusal): 250 recipients give
#              exactly 62 rejected and 13 tempfailed (deterministic shares
#              of all recipients; the 12 picked by both are rejected);
#            - --close-after 3: 9 messages, reconnecting when dropped, take
#              3 connections, all dropped by dmta-sink;
#            - --delay 200ms: a message takes at least 0.2 s.
#   memif    dmtad -> dmta-sink over net_memif, 2,000 messages of 4 KiB
#            through bench_e2e.py: byte-exact by digest. The pair is private
#            to the run (bench_e2e.py's memif_pair): no shared lab needed.
#
# Everything this script starts is stopped by PID on exit.
set -u
set -o pipefail
lab=$1
build=$2
case_=$3
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
export DMTA_BUILD=$build
tmp=$(mktemp -d /tmp/dmta-lab-sink.XXXXXX)
sink_pid=
cleanup() {
	[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*" >&2
	[ -f "$tmp/sink.err" ] && tail -5 "$tmp/sink.err" >&2
	exit 1
}
field() { tr ' ' '\n' | sed -n "s/^$1=//p" | tail -1; }
in_lab() { ip netns exec dmta-lab "$@"; }

# dmta-sink on the lab port with ARGS; waits until it answers SMTP. The
# probe that checks is one connection, closed with the greeting unread (a
# reset: one failed connection); expect_conns counts it in.
start_sink() {
	: >"$tmp/sink.err"
	"$build/tools/sink/dmta-sink" -c "$("$lab" conf)" -t 120s "$@" 2>"$tmp/sink.err" &
	sink_pid=$!
	for _ in $(seq 100); do
		in_lab bash -c 'exec 3<>/dev/tcp/198.18.0.2/25; head -c 3 <&3' 2>/dev/null |
			grep -q 220 && return 0
		kill -0 "$sink_pid" 2>/dev/null || fail "dmta-sink exited"
		sleep 0.1
	done
	fail "dmta-sink did not answer on 198.18.0.2:25"
}
# Stop it and leave its summary line in $summary.
stop_sink() {
	kill -TERM "$sink_pid"
	wait "$sink_pid"
	local rc=$?
	sink_pid=
	[ $rc = 0 ] || fail "dmta-sink exited $rc"
	summary=$(grep 'dmta-sink: summary' "$tmp/sink.err" | tail -1)
	[ -n "$summary" ] || fail "no summary line"
	echo "$summary"
}
expect() { # FIELD VALUE
	local got
	got=$(echo "$summary" | field "$1")
	[ "$got" = "$2" ] || fail "$1=$got, expected $2"
}
expect_conns() { # CLIENT_CONNECTIONS
	expect conns $(($1 + 1))
	expect conns_failed 1
}
# The digest dmta-sink keeps (dmta_sink.c) of the given files, CRLF bodies.
digest() {
	python3 - "$@" <<'PY'
import sys, zlib
M = (1 << 64) - 1
def mix(k):
    k ^= k >> 33; k = (k * 0xff51afd7ed558ccd) & M; k ^= k >> 33
    k = (k * 0xc4ceb9fe1a85ec53) & M; k ^= k >> 33
    return k
s = x = 0
for p in sys.argv[1:]:
    b = open(p, "rb").read()
    h = mix((len(b) << 32) | zlib.crc32(b)); s = (s + h) & M; x ^= h
print("%016x %016x" % (s, x))
PY
}

case "$case_" in
kernel)
	"$lab" up >/dev/null || fail "tools/lab up"
	start_sink
	# A body with lines that start with dots: swaks stuffs them, the
	# engine takes the stuffing off; the digest is over the original.
	printf 'Subject: dots\r\n\r\n.leading dot\r\n..two\r\nplain\r\n' >"$tmp/body"
	in_lab swaks -n -4 --server 198.18.0.2 --from a@lab.test --to r@sink.test \
		--data "$tmp/body" >"$tmp/swaks1" 2>&1 || { cat "$tmp/swaks1"; fail "swaks"; }
	in_lab swaks -n -4 --pipeline --server 198.18.0.2 --from a@lab.test --to r@sink.test \
		--data "$tmp/body" >"$tmp/swaks2" 2>&1 || { cat "$tmp/swaks2"; fail "swaks --pipeline"; }
	stop_sink
	expect msgs 2
	expect_conns 2
	# swaks ends DATA with CRLF "." CRLF after the body even when the body
	# ends with CRLF: the message it sends has one empty line more.
	{ cat "$tmp/body"; printf '\r\n'; } >"$tmp/sent"
	expect bytes $((2 * $(stat -c %s "$tmp/sent")))
	read -r want_sum want_xor < <(digest "$tmp/sent" "$tmp/sent")
	expect digest_sum "$want_sum"
	expect digest_xor "$want_xor"

	start_sink
	in_lab timeout 60 smtp-source -d -s 50 -m 1000 -l 4096 -f a@lab.test -t r@sink.test \
		198.18.0.2:25 || fail "smtp-source"
	stop_sink
	expect msgs 1000
	expect_conns 50
	[ "$(echo "$summary" | field bytes)" -ge 4096000 ] || fail "bytes below 1000 x 4096"

	# Thousands of connections at once on the one worker: every end of
	# data answered 2 s late, so that the sessions pile up.
	start_sink --delay 2s
	in_lab timeout 120 smtp-source -d -s 2000 -m 2000 -l 1024 -f a@lab.test -t r@sink.test \
		198.18.0.2:25 || fail "smtp-source -s 2000"
	stop_sink
	expect msgs 2000
	expect_conns 2000
	[ "$(echo "$summary" | field conns_peak)" -ge 1000 ] || fail "fewer than 1,000 at once"

	# smtp-source gives up at the first refused recipient: sink_client.py.
	start_sink --reject-rcpt 25 --tempfail-rcpt 10
	client=$(in_lab timeout 60 python3 "$here/sink_client.py" 198.18.0.2 250) ||
		fail "sink_client.py: $client"
	echo "$client"
	stop_sink
	expect rcpts_rejected 62
	expect rcpts_tempfailed 13
	expect rcpts 175
	expect msgs 175
	[ "$client" = "sent=175 rejected=62 tempfailed=13 connections=1" ] ||
		fail "the client saw $client"

	start_sink --close-after 3
	client=$(in_lab timeout 60 python3 "$here/sink_client.py" 198.18.0.2 9) ||
		fail "sink_client.py: $client"
	echo "$client"
	stop_sink
	expect msgs 9
	expect conns_dropped 3
	[ "$client" = "sent=9 rejected=0 tempfailed=0 connections=3" ] ||
		fail "the client saw $client"

	start_sink --delay 200ms
	t0=$(date +%s%N)
	in_lab swaks -n -4 --server 198.18.0.2 --from a@lab.test --to r@sink.test \
		--data "$tmp/body" >/dev/null 2>&1 || fail "swaks with --delay"
	ms=$((($(date +%s%N) - t0) / 1000000))
	stop_sink
	expect msgs 1
	[ "$ms" -ge 200 ] || fail "--delay 200ms: the message took only $ms ms"
	echo "PASS kernel"
	;;
memif)
	BENCH_SYSTEMS=dmtad-memif BENCH_N=2000 /usr/bin/python3 "$top/bench/core/bench_e2e.py" \
		"$build" "$tmp/out" --quick || fail "dmtad -> dmta-sink over memif"
	python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))["systems"]["dmtad-memif"]
sys.exit(0 if s.get("byte_exact") else 1)' "$tmp/out/e2e.json" || fail "not byte-exact"
	echo "PASS memif"
	;;
*)
	echo "usage: $0 TOOLS_LAB BUILD_DIR kernel|memif" >&2
	exit 64
	;;
esac
