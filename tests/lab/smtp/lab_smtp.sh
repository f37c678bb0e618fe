#!/usr/bin/env bash
# lab_smtp.sh DMTA_SMTP SRCDIR - dmta-smtp against real receivers.
#
# Builds a private network namespace (dmta-t-smtp-PID) with addresses from
# 198.18.0.0/15 on its loopback, and runs there, each on its own address:
#   198.18.1.10  Postfix's smtp-sink
#   198.18.1.11  a real Postfix instance (config, queue and data in a temp
#                dir) delivering into a Maildir
#   198.18.1.12  aiosmtpd with STARTTLS required and AUTH (port 587)
#   198.18.1.13  aiosmtpd with implicit TLS and AUTH (port 465)
# with a test CA made here by the openssl CLI. The client runs in the same
# namespace. Everything started is killed, and the namespace deleted, on
# exit.
set -uo pipefail
tool=$(readlink -f "$1")
src=$(readlink -f "$2")
NS=dmta-t-smtp-$$
T=$(mktemp -d /tmp/dmta-t-smtp.XXXXXX)
chmod 755 "$T"
pids=()
fails=0
passes=0

# shellcheck source=lab_common.sh
. "$src/lab_common.sh"
trap lab_cleanup EXIT

# run NAME WANT_RC ARGS... < input: run dmta-smtp, check its exit code.
run() {
	local name=$1 want=$2
	shift 2
	in_ns timeout 60 "$tool" "$@" >"$T/out" 2>"$T/err"
	local rc=$?
	if [ "$rc" = "$want" ]; then
		ok "$name (exit $rc)"
		return 0
	fi
	bad "$name: exit $rc, want $want"
	sed 's/^/    /' "$T/out" "$T/err" | tail -30
	return 1
}

[ "$(id -u)" = 0 ] || { echo "lab tests need root"; exit 77; }

ip netns add "$NS"
ip -n "$NS" link set lo up
for a in 10 11 12 13; do ip -n "$NS" addr add 198.18.1.$a/32 dev lo; done

# ---------------------------------------------------------------- messages
printf 'From: a@x.test\nTo: b@lab.test\nSubject: plain\nDate: Mon, 23 Nov 2026 18:00:00 +0000\nMessage-ID: <plain@x.test>\n\nhello\n' >"$T/plain.eml"
# Dots at line starts, a lone dot line, 8-bit text, a long line.
{
	printf 'From: a@x.test\nTo: b@lab.test\nSubject: dots\nDate: Mon, 23 Nov 2026 18:00:00 +0000\nMessage-ID: <dots@x.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n'
	printf '.leading dot\n..two dots\n.\nmiddle . dot\nh\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac\n'
	head -c 900 /dev/zero | tr '\0' 'x'
	printf '\n.\n..\nlast line\n'
} >"$T/dots.eml"

# ------------------------------------------------- test CA and certificate
cd "$T"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
	-out ca.crt -days 2 -subj /CN=dmta-test-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key \
	-out srv.csr -subj /CN=mx.lab.test 2>/dev/null
printf 'subjectAltName=DNS:mx.lab.test\n' >srv.ext
openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 \
	-extfile srv.ext 2>/dev/null
cd - >/dev/null
# ---------------------------------------------------------------- smtp-sink
in_ns smtp-sink -u nobody 198.18.1.10:25 100 &
pids+=($!)
wait_port 198.18.1.10 25 || exit 1

run "sink: three recipients" 0 --server 198.18.1.10 --from a@x.test \
	--to b@y.test --to c@y.test --to d@y.test <"$T/plain.eml" &&
	{ [ "$(grep -c ': sent: 250' "$T/out")" = 3 ] && ok "sink: three 'sent' lines" ||
		bad "sink: want three sent lines, got: $(cat "$T/out")"; }
run "sink: 50 messages on one connection" 0 --server 198.18.1.10 --from a@x.test \
	--to b@y.test --to c@y.test --count 50 <"$T/dots.eml" &&
	{ [ "$(grep -c ': sent: 250' "$T/out")" = 100 ] && ok "sink: 100 outcomes" ||
		bad "sink: want 100 sent lines, got $(grep -c sent "$T/out")"; }
run "sink: no pipelining, verbose" 0 --server 198.18.1.10 --from a@x.test \
	--to b@y.test --no-pipelining --verbose <"$T/plain.eml"
grep -q '^-> DATA' "$T/err" && ok "sink: DATA used" || bad "sink: no DATA in transcript"
run "sink: nothing listening (temporary)" 75 --server 198.18.1.10:2525 --from a@x.test \
	--to b@y.test <"$T/plain.eml"

# ------------------------------------------------------------------ Postfix
"$src/../../../tools/labfiles/postfix_setup.sh" "$T/pf" 198.18.1.11 "$T/srv.crt" "$T/srv.key"
in_ns postfix -c "$T/pf/etc" start-fg >"$T/pf.out" 2>&1 &
pids+=($!)
wait_port 198.18.1.11 25 || { cat "$T/pf.out" "$T/pf/maillog" 2>/dev/null; exit 1; }

# Wait (bounded) for N files in the Maildir.
wait_maildir() {
	for _ in $(seq 1 100); do
		[ "$(ls "$T/pf/mail/box/new" 2>/dev/null | wc -l)" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# The delivered file is Postfix's added headers followed by our message,
# byte for byte (Maildir stores LF line ends, as our input has).
check_delivered() {
	local name=$1 eml=$2 n=$3
	if ! wait_maildir "$n"; then
		bad "$name: not delivered"
		tail -5 "$T/pf/maillog"
		return
	fi
	local f
	f=$(ls -t "$T/pf/mail/box/new" | head -1)
	local size
	size=$(stat -c %s "$eml")
	if tail -c "$size" "$T/pf/mail/box/new/$f" | cmp -s - "$eml" &&
		head -1 "$T/pf/mail/box/new/$f" | grep -q '^Return-Path: <a@x.test>'; then
		ok "$name: delivered body byte-identical"
	else
		bad "$name: delivered message differs"
		diff <(tail -c "$size" "$T/pf/mail/box/new/$f") "$eml" | head -20
	fi
}

run "postfix: dots and 8-bit, BDAT" 0 --server 198.18.1.11 --from a@x.test \
	--to b@lab.test --verbose <"$T/dots.eml"
grep -q '^-> BDAT' "$T/err" && grep -q 'BODY=8BITMIME' "$T/err" &&
	ok "postfix: BDAT and BODY=8BITMIME used" || bad "postfix: BDAT/8BITMIME not in transcript"
check_delivered "postfix BDAT" "$T/dots.eml" 1

run "postfix: dots and 8-bit, DATA (dot-stuffed)" 0 --server 198.18.1.11 --from a@x.test \
	--to b@lab.test --no-chunking --verbose <"$T/dots.eml"
grep -q '^-> DATA' "$T/err" && ok "postfix: DATA used" || bad "postfix: DATA not in transcript"
check_delivered "postfix DATA" "$T/dots.eml" 2

run "postfix: no pipelining" 0 --server 198.18.1.11 --from a@x.test \
	--to b@lab.test --no-pipelining --no-chunking <"$T/dots.eml"
check_delivered "postfix no pipelining" "$T/dots.eml" 3

# CRLF input comes out the same as LF input.
sed 's/$/\r/' "$T/dots.eml" >"$T/dots-crlf.eml"
run "postfix: CRLF input, BDAT zero-copy path" 0 --server 198.18.1.11 --from a@x.test \
	--to b@lab.test <"$T/dots-crlf.eml"
check_delivered "postfix CRLF input" "$T/dots.eml" 4

run "postfix: 5 recipients, limit 3: 452 then a second transaction" 0 --server 198.18.1.11 \
	--from a@x.test --to r1@lab.test --to r2@lab.test --to r3@lab.test --to r4@lab.test \
	--to r5@lab.test --verbose <"$T/plain.eml"
[ "$(grep -c '^-> MAIL FROM' "$T/err")" = 2 ] && grep -q '^<- 452' "$T/err" &&
	[ "$(grep -c ': sent: 250' "$T/out")" = 5 ] && ok "postfix: 452 deferred the rest to a new transaction" ||
	bad "postfix: 452 handling: $(cat "$T/out" "$T/err")"
wait_maildir 9 && ok "postfix: five more deliveries" || bad "postfix: 452 messages not all delivered"

run "postfix: SMTPUTF8 recipient" 0 --server 198.18.1.11 --from a@x.test \
	--to "$(printf 'b\xc3\xa9@lab.test')" --verbose <"$T/plain.eml"
grep -q '^-> MAIL FROM:<a@x.test> SIZE=[0-9]* SMTPUTF8' "$T/err" && ok "postfix: SMTPUTF8 declared" ||
	bad "postfix: no SMTPUTF8 in: $(grep MAIL "$T/err")"
check_delivered "postfix SMTPUTF8" "$T/plain.eml" 10

run "postfix: STARTTLS required, verified" 0 --server 198.18.1.11 --from a@x.test \
	--to b@lab.test --tls required --ca-file "$T/ca.crt" --tls-name mx.lab.test --verbose <"$T/dots.eml"
grep -q '^-> STARTTLS' "$T/err" && grep -q '^-- TLS .*verified' "$T/err" &&
	[ "$(grep -c '^-> EHLO' "$T/err")" = 2 ] && ok "postfix: STARTTLS, verification, EHLO again" ||
	bad "postfix: TLS transcript: $(cat "$T/err")"
check_delivered "postfix over TLS" "$T/dots.eml" 11

run "postfix: recipient outside its domains refused (permanent)" 69 --server 198.18.1.11 \
	--from a@x.test --to b@lab.test --to z@elsewhere.test <"$T/plain.eml"
grep -q '^z@elsewhere.test: bounced: 5' "$T/out" && grep -q '^b@lab.test: sent' "$T/out" &&
	ok "postfix: per-recipient outcomes" || bad "postfix: outcomes: $(cat "$T/out")"

# ----------------------------------------------------------------- aiosmtpd
printf 's3cr3t-Pa55\n' >"$T/pw"
printf 'wrong\n' >"$T/pw-bad"
mkdir -p "$T/a587" "$T/a465"
in_ns /usr/bin/python3 "$src/aiosmtpd_server.py" --host 198.18.1.12 --port 587 --out "$T/a587" \
	--cert "$T/srv.crt" --key "$T/srv.key" --user alice --password s3cr3t-Pa55 >"$T/a587.log" 2>&1 &
pids+=($!)
in_ns /usr/bin/python3 "$src/aiosmtpd_server.py" --host 198.18.1.13 --port 465 --out "$T/a465" \
	--cert "$T/srv.crt" --key "$T/srv.key" --user alice --password s3cr3t-Pa55 --implicit \
	>"$T/a465.log" 2>&1 &
pids+=($!)
wait_port 198.18.1.12 587 || { cat "$T/a587.log"; exit 1; }
wait_port 198.18.1.13 465 || { cat "$T/a465.log"; exit 1; }

tls=(--ca-file "$T/ca.crt" --tls-name mx.lab.test --auth-user alice)
run "aiosmtpd: STARTTLS required + verified, AUTH" 0 --server 198.18.1.12:587 --from a@x.test \
	--to b@lab.test --tls required "${tls[@]}" --auth-password-file "$T/pw" --verbose <"$T/dots.eml"
grep -q '^-> STARTTLS' "$T/err" && grep -q 'verified' "$T/err" && grep -q '^-> AUTH PLAIN <hidden>' "$T/err" &&
	ok "aiosmtpd: STARTTLS, verification and hidden AUTH in transcript" ||
	bad "aiosmtpd: transcript lacks STARTTLS/verified/AUTH: $(cat "$T/err")"
if grep -q 's3cr3t' "$T/err" "$T/out" || grep -q "$(printf '\0alice\0s3cr3t-Pa55' | base64)" "$T/err"; then
	bad "aiosmtpd: the password reached the output"
else
	ok "aiosmtpd: no secret in the output"
fi
if cmp -s "$T/a587/1.eml" <(sed 's/$/\r/' "$T/dots.eml") && grep -q 'tls True' "$T/a587/1.env" &&
	grep -q 'auth True' "$T/a587/1.env"; then
	ok "aiosmtpd: message received byte-identical over TLS after AUTH"
else
	bad "aiosmtpd: received message differs or not over TLS/AUTH"
fi
run "aiosmtpd: wrong password (temporary)" 75 --server 198.18.1.12:587 \
	--from a@x.test --to b@lab.test --tls required "${tls[@]}" --auth-password-file "$T/pw-bad" <"$T/plain.eml"
run "aiosmtpd: host name mismatch with required TLS (temporary)" 75 --server 198.18.1.12:587 \
	--from a@x.test --to b@lab.test --tls required --ca-file "$T/ca.crt" --tls-name wrong.lab.test \
	--auth-user alice --auth-password-file "$T/pw" <"$T/plain.eml"
grep -q 'TLS' "$T/err" && ok "aiosmtpd: mismatch reported as a TLS failure" || bad "aiosmtpd: no TLS error: $(cat "$T/err")"
run "aiosmtpd: unknown CA with required TLS (temporary)" 75 --server 198.18.1.12:587 \
	--from a@x.test --to b@lab.test --tls required --ca-file /etc/ssl/certs/ca-certificates.crt \
	--tls-name mx.lab.test --auth-user alice --auth-password-file "$T/pw" <"$T/plain.eml"
run "aiosmtpd: AUTH refused over plaintext (temporary)" 75 --server 198.18.1.12:587 \
	--from a@x.test --to b@lab.test --tls none --auth-user alice --auth-password-file "$T/pw" <"$T/plain.eml"
grep -q 'not encrypted' "$T/out" && ok "aiosmtpd: reason given" || bad "aiosmtpd: reason: $(cat "$T/out")"
run "aiosmtpd: opportunistic TLS without verification" 0 --server 198.18.1.12:587 \
	--from a@x.test --to b@lab.test --tls opportunistic --auth-user alice --auth-password-file "$T/pw" <"$T/plain.eml"
run "aiosmtpd: mixed recipients (permanent wins)" 69 --server 198.18.1.12:587 --from a@x.test \
	--to b@lab.test --to perm1@lab.test --to temp1@lab.test --tls required "${tls[@]}" \
	--auth-password-file "$T/pw" <"$T/plain.eml"
grep -q '^perm1@lab.test: bounced: 550' "$T/out" && grep -q '^temp1@lab.test: deferred: 450' "$T/out" &&
	grep -q '^b@lab.test: sent' "$T/out" && ok "aiosmtpd: per-recipient outcomes" ||
	bad "aiosmtpd: outcomes: $(cat "$T/out")"
run "aiosmtpd: temporary recipient only" 75 --server 198.18.1.12:587 --from a@x.test \
	--to temp2@lab.test --tls required "${tls[@]}" --auth-password-file "$T/pw" <"$T/plain.eml"

run "aiosmtpd: implicit TLS (465), three connections" 0 --server 198.18.1.13:465 --from a@x.test \
	--to b@lab.test --tls implicit "${tls[@]}" --auth-password-file "$T/pw" --connections 3 --verbose <"$T/plain.eml"
[ "$(grep -c '^-- TLS .*resumed' "$T/err")" = 2 ] && ok "aiosmtpd: TLS session resumed on connections 2 and 3" ||
	bad "aiosmtpd: resumption: $(grep '^-- TLS' "$T/err")"
[ -f "$T/a465/3.eml" ] && ok "aiosmtpd: three messages over implicit TLS" || bad "aiosmtpd: implicit TLS messages missing"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
