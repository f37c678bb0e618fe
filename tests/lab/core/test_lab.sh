#!/usr/bin/env bash
# Lab: 'up' is idempotent, repairs a stale lab, serves DNS and SMTP; 'down'
# leaves nothing; dmtad refuses bad configurations with one clear line.
set -uo pipefail
TOP=${DMTA_TOP:?}
LAB="$TOP/tools/lab"
export DMTA_BUILD=${DMTA_BUILD:?}
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$LAB" up >/dev/null || bad "up"
out=$("$LAB" up)
grep -q "already up" <<<"$out" && ok "second up is a no-op" || bad "second up: $out"
ip netns del dmta-lab
out=$("$LAB" up)
grep -q "repairing" <<<"$out" && ok "stale lab repaired" || bad "stale lab not repaired: $out"
"$LAB" status >/dev/null && ok "status after repair" || bad "status after repair"

got=$(ip netns exec dmta-lab dig +short +time=2 @198.18.1.53 sink.test MX)
[ "$got" = "10 mx.sink.test." ] && ok "MX sink.test" || bad "MX sink.test: got '$got'"
got=$(dig +short +time=2 @198.19.0.1 nullmx.test MX)
[ "$got" = "0 ." ] && ok "null MX over the management link" || bad "null MX: got '$got'"
got=$(ip netns exec dmta-lab dig +time=2 @198.18.1.53 nosuch.test A | grep -o 'status: [A-Z]*')
[ "$got" = "status: NXDOMAIN" ] && ok "NXDOMAIN" || bad "NXDOMAIN: got '$got'"
banner=$(timeout 5 bash -c 'exec 3<>/dev/tcp/198.18.1.10/25; head -n1 <&3')
[[ "$banner" == 220* ]] && ok "smtp-sink banner: $banner" || bad "smtp-sink banner: '$banner'"

# 'tools/lab run' gives the program this shell's stdin: a file goes through
# dmta-nc and the userspace TCP to a kernel socket in the lab, intact.
tmpd=$(mktemp -d)
head -c 1000000 /dev/urandom >"$tmpd/in"
ip netns exec dmta-lab timeout 60 socat -u TCP-LISTEN:9302,reuseaddr "OPEN:$tmpd/out,creat,trunc" &
sinkpid=$!
sleep 0.3
"$LAB" run dmta-nc -q 198.18.0.1 9302 <"$tmpd/in" >/dev/null 2>&1
rc=$?
wait $sinkpid
if [ $rc = 0 ] && cmp -s "$tmpd/in" "$tmpd/out"; then ok "lab run dmta-nc < file: 1 MB intact"; else bad "lab run dmta-nc < file: rc=$rc, $(stat -c %s "$tmpd/out" 2>/dev/null) bytes arrived"; fi
rm -rf "$tmpd"

# dmta-queue route shows the destination as the scheduler sees it.
q="$DMTA_BUILD/tools/queue/dmta-queue"
got=$("$q" -c "$("$LAB" conf)" --json route nullmx.test | jq -r '.verdict + " " + .status')
[ "$got" = "permanent 5.1.10" ] && ok "route nullmx.test: $got" || bad "route nullmx.test: '$got'"
got=$("$q" -c "$("$LAB" conf)" --json route multi.test | jq -r '[.hosts[].pref] | join(",")')
[ "$got" = "10,10,20" ] && ok "route multi.test: prefs $got" || bad "route multi.test: '$got'"
"$q" -c "$("$LAB" conf)" route >/dev/null 2>&1
[ $? = 64 ] && ok "route without a domain: usage" || bad "route without a domain"

# dmtad refuses what it cannot honour, with one line and status 1.
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
base=$(grep -v '^\[workers\]\|^count' "$($LAB conf)")
try() { # NAME EXPECTED-TEXT CONFIG-TEXT
	printf '%s\n' "$3" >"$conf"
	out=$(timeout 60 "$DMTA_BUILD/core/dmtad" -c "$conf" 2>&1)
	rc=$?
	if [ $rc = 1 ] && grep -q "fatal\|error" <<<"$out" && grep -q -- "$2" <<<"$out"; then
		ok "$1: $(grep -m1 "$2" <<<"$out")"
	else
		bad "$1: rc=$rc, want 1 and '$2'; output: $out"
	fi
}
try "too few lcores" "2 workers need 3" "$base
[workers]
count = 2"
# Three lcores on two CPUs, so that the port's single queue pair is the limit.
try "more workers than queues" "TX queues but \[workers\] count = 2 needs one per worker" "$(sed 's|-l 0-1|--lcores 0@0,1@1,2@1|' <<<"$base")
[workers]
count = 2"
# Three lcores on two CPUs and two queue pairs: af_packet has no RSS, so
# two workers there need software steering (test_shard.py runs that).
try "RSS steering asked of a port without RSS" "cannot steer by RSS to 2 workers" "$(sed 's|-l 0-1|--lcores 0@0,1@1,2@1|; s|qpairs=1|qpairs=2|; s|^\[port\]|[port]\nsteering = rss|' <<<"$base")
[workers]
count = 2"
try "bad steering" "expected auto, rss or software" "$(sed 's|^\[port\]|[port]\nsteering = magic|' <<<"$base")"
try "no address" "\[net\] address is required" "$(grep -v '^address' <<<"$base")"
try "bad address" "expected ADDRESS/PREFIX" "$(sed 's|^address = .*|address = 198.18.0.300/24|' <<<"$base")"
try "bad number" "not a valid number" "$base
[port]
rx_desc = lots"
try "no such device" "no such DPDK port" "$(sed 's|^device = .*|device = net_nothing0|' <<<"$base")"
try "bad EAL args" "DPDK initialisation failed" "$(sed 's|^args = |args = --no-such-eal-flag |' <<<"$base")"
out=$("$DMTA_BUILD/core/dmtad" -c /nonexistent.conf 2>&1)
[ $? = 1 ] && grep -q "cannot open config /nonexistent.conf" <<<"$out" && ok "missing config" || bad "missing config: $out"

"$LAB" down >/dev/null || bad "down"
ip netns list | grep -q dmta-lab && bad "namespace left"
ip -o link | grep -q 'dmta0\|dmta-mgmt' && bad "links left"
[ -e /run/dmta-lab ] && bad "state left"
"$LAB" down >/dev/null && ok "down twice" || bad "second down"

echo "$fails failed"
[ $fails = 0 ]
