#!/usr/bin/env bash
# lab_smtp_server.sh HARNESS SRCDIR - real SMTP clients against the server
# engine (smtp_server_harness over kernel sockets).
#
# Builds a private network namespace (dmta-t-srv-PID) with addresses from
# 198.18.0.0/15 on its loopback, and runs there, each on its own address:
#   198.18.3.10  the harness, plain (bare CR/LF refused)
#   198.18.3.11  the harness with STARTTLS and AUTH (only under TLS)
#   198.18.3.12  the harness, bare CR/LF normalised
# and against them swaks (plain, --pipeline, STARTTLS with AUTH PLAIN and
# LOGIN, refusals), Postfix's smtp-source (10 sessions, 10,000 messages)
# and Python (smtplib, raw sockets for BDAT, smuggling and STARTTLS
# injection). Messages are stored on tmpfs (fsync is real but cheap
# there) and every one is compared byte for byte with what was sent. All
# that was started is killed, and the namespace deleted, on exit.
set -uo pipefail
harness=$(readlink -f "$1")
src=$(readlink -f "$2")
NS=dmta-t-srv-$$
T=$(mktemp -d /dev/shm/dmta-t-srv.XXXXXX)
chmod 755 "$T"
pids=()
fails=0
passes=0

# shellcheck source=lab_common.sh
. "$src/lab_common.sh"
trap lab_cleanup EXIT


count() { find "$1" -maxdepth 1 -name '[0-9]*.eml' | wc -l; }

# same FILE WANT NAME: the stored message must be WANT byte for byte.
same() {
	if cmp -s "$1" "$2"; then
		ok "$3: stored message byte-exact"
	else
		bad "$3: stored message differs from what was sent"
		cmp "$1" "$2" | head -3
	fi
}

[ "$(id -u)" = 0 ] || { echo "lab tests need root"; exit 77; }
for tool in swaks smtp-source python3; do
	command -v "$tool" >/dev/null || { echo "$tool missing (tools/setup)"; exit 77; }
done

ip netns add "$NS"
ip -n "$NS" link set lo up
for a in 10 11 12; do ip -n "$NS" addr add 198.18.3.$a/32 dev lo; done
mkdir -p "$T/plain" "$T/tls" "$T/norm"
# LeakSanitizer's check at the harness's exit has hung here (its tracer
# waiting in wait4 for the stopped process, which spins), leaving the test
# to its timeout; the engine's memory is checked under LeakSanitizer by the
# unit tests (test_smtp_server, the client/server combinations), so the
# harness runs without the exit check.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ip netns exec "$NS" timeout 90 "$harness" -l 198.18.3.10:25 -d "$T/plain" -T 80 >"$T/plain.log" 2>&1 &
pids+=($!)
ip netns exec "$NS" timeout 90 "$harness" -l 198.18.3.11:25 -d "$T/tls" -t -a -T 80 >"$T/tls.log" 2>&1 &
pids+=($!)
ip netns exec "$NS" timeout 90 "$harness" -l 198.18.3.12:25 -d "$T/norm" -n -T 80 >"$T/norm.log" 2>&1 &
pids+=($!)
for a in 10 11 12; do wait_port 198.18.3.$a 25 || exit 1; done

# ---------------------------------------------------------------- messages
# Dots at line starts, a lone dot line, 8-bit text, a long line; LF ends.
{
	printf 'From: a@x.test\nTo: b@lab.test\nSubject: dots\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n'
	printf '.leading dot\n..two dots\n.\nmiddle . dot\nh\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac\n'
	head -c 900 /dev/zero | tr '\0' 'x'
	printf '\n.\n..\nlast line\n'
} >"$T/dots.eml"

# capture NAME CMD...: run a client through a recording proxy on port 2525
# (socat, one connection) and derive from what it sent, un-stuffed, the
# body the harness must store: $T/NAME.want.
capture() {
	local name=$1
	shift
	in_ns timeout 30 socat -r "$T/$name.raw" TCP-LISTEN:2525,bind=198.18.3.10,reuseaddr \
		TCP:198.18.3.10:25 &
	local sp=$!
	for _ in $(seq 1 50); do in_ns ss -ltn | grep -q ':2525 ' && break; sleep 0.05; done
	"$@" >"$T/$name.out" 2>&1
	local rc=$?
	wait "$sp"
	[ "$rc" = 0 ] && python3 "$src/smtp_server_clients.py" sent "$T/$name.raw" "$T/$name.want"
}

# ------------------------------------------------------------------- swaks
sw() { in_ns timeout 30 swaks -n --suppress-data -f a@x.test -t b@lab.test --data "@$T/dots.eml" "$@" >"$T/sw.out" 2>&1; }

n0=$(count "$T/plain")
if capture swaks sw -s 198.18.3.10 -p 2525; then same "$T/plain/$((n0 + 1)).eml" "$T/swaks.want" "swaks plain"; else bad "swaks plain: exit $?"; tail -5 "$T/sw.out"; fi
if sw -s 198.18.3.10 --pipeline; then same "$T/plain/$((n0 + 2)).eml" "$T/swaks.want" "swaks --pipeline"; else bad "swaks --pipeline: exit $?"; tail -5 "$T/sw.out"; fi
grep -q '250 2.0.0 Ok: queued' "$T/sw.out" && ok "swaks --pipeline: 250 after durable storage" || bad "swaks --pipeline: no 250"
if sw -s 198.18.3.10 -t deny@other.test; then
	bad "swaks: a denied recipient was accepted"
else
	grep -q '550 5.7.1 Relaying denied' "$T/sw.out" && ok "swaks: relay refusal 550 5.7.1" || bad "swaks: no 550 5.7.1"
fi
[ "$(count "$T/plain")" = $((n0 + 2)) ] && ok "swaks: 2 messages stored" || bad "swaks: $(count "$T/plain") stored, want $((n0 + 2))"

n1=$(count "$T/tls")
for mech in PLAIN LOGIN; do
	if sw -s 198.18.3.11 --tls --auth "$mech" --auth-user test --auth-password test-pass; then
		n1=$((n1 + 1))
		same "$T/tls/$n1.eml" "$T/swaks.want" "swaks --tls --auth $mech"
	else
		bad "swaks --tls --auth $mech: exit $?"
		tail -8 "$T/sw.out"
	fi
done
if sw -s 198.18.3.11 --tls --auth PLAIN --auth-user test --auth-password wrong; then
	bad "swaks: a wrong password was accepted"
else
	grep -q '535 5.7.8' "$T/sw.out" && ok "swaks: wrong password 535 5.7.8" || bad "swaks: no 535"
fi
if sw -s 198.18.3.11 --auth PLAIN --auth-user test --auth-password test-pass; then
	bad "swaks: AUTH without TLS was accepted"
else
	ok "swaks: AUTH not offered without TLS (exit $?)"
fi
[ "$(count "$T/tls")" = "$n1" ] && ok "swaks TLS: $n1 messages stored" || bad "swaks TLS: $(count "$T/tls") stored, want $n1"

# ------------------------------------------------------------- smtp-source
# -F sends the file dot-stuffed with CRLF after each line; -d keeps each of
# the 10 sessions open for its share of the 10,000 messages. One message
# through the proxy first says what each of them is.
printf 'From: src@x.test\nTo: sink@lab.test\nSubject: smtp-source\n\n.dot line\n..\n.\nbody line\n' >"$T/src.eml"
n0=$(count "$T/plain")
if capture src in_ns timeout 30 smtp-source -m 1 -F "$T/src.eml" -f src@x.test -t sink@lab.test 198.18.3.10:2525; then
	same "$T/plain/$((n0 + 1)).eml" "$T/src.want" "smtp-source probe"
else
	bad "smtp-source probe"
	tail -5 "$T/src.out"
fi
n0=$(count "$T/plain")
start=$(date +%s.%N)
if in_ns timeout 60 smtp-source -s 10 -m 10000 -d -F "$T/src.eml" -f src@x.test -t sink@lab.test 198.18.3.10:25 >"$T/src.out" 2>&1; then
	end=$(date +%s.%N)
	n=$(($(count "$T/plain") - n0))
	[ "$n" = 10000 ] && ok "smtp-source: 10000 messages stored ($(echo "$start $end" | awk '{printf "%.1f s", $2 - $1}'))" || bad "smtp-source: $n stored, want 10000"
	want=$(md5sum <"$T/src.want" | cut -d' ' -f1)
	other=$(cd "$T/plain" && for i in $(seq $((n0 + 1)) $((n0 + n))); do echo "$i.eml"; done | xargs md5sum | awk -v w="$want" '$1 != w' | wc -l)
	[ "$other" = 0 ] && ok "smtp-source: all $n messages byte-exact" || bad "smtp-source: $other messages differ"
else
	bad "smtp-source: exit $?"
	tail -5 "$T/src.out"
fi

# ------------------------------------------------------------------ python
py() { in_ns timeout 60 python3 "$src/smtp_server_clients.py" "$@" >"$T/py.out" 2>&1 && ok "python $1: $(tail -1 "$T/py.out")" || { bad "python $1"; tail -5 "$T/py.out"; }; }
py smtplib 198.18.3.10 "$T/plain"
py utf8 198.18.3.10 "$T/plain"
py bdat 198.18.3.10 "$T/plain"
py smuggle 198.18.3.10 "$T/plain"
py smuggle-normalise 198.18.3.12 "$T/norm"
py tls-plain 198.18.3.11 "$T/tls"
py tls-login 198.18.3.11 "$T/tls"
py inject 198.18.3.11 "$T/tls"

# ------------------------------------------------------------------ totals
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
wait "${pids[@]}" 2>/dev/null
for h in plain tls norm; do echo "    $h: $(tail -1 "$T/$h.log")"; done
want_plain=$((2 + 1 + 10000 + 200 + 1 + 1))
[ "$(count "$T/plain")" = "$want_plain" ] && ok "plain harness: $want_plain messages in all" || bad "plain harness: $(count "$T/plain") messages, want $want_plain"
[ "$(count "$T/tls")" = 42 ] && ok "tls harness: 42 messages in all" || bad "tls harness: $(count "$T/tls") messages, want 42"
[ "$(count "$T/norm")" = 4 ] && ok "normalising harness: 4 messages in all" || bad "normalising harness: $(count "$T/norm") messages, want 4"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
