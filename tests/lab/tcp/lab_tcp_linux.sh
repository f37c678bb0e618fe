#!/bin/bash
# lab_tcp_linux.sh - the userspace TCP against the Linux kernel's TCP.
#
# Usage: lab_tcp_linux.sh CLIENT_BINARY [BYTES [LOSS_PERCENT]]
#
# Makes a private namespace dmta-t-tcp-PID with one end of a veth pair
# (198.18.7.1/24, a kernel echo server on port 7007, nothing on 7008);
# the other end stays in the root namespace with no address and IPv6 off,
# and the DPDK client attaches to it with net_af_packet as 198.18.7.2.
# Offloads are turned off on both ends: af_packet would otherwise see
# unsegmented GSO frames and partial checksums. Everything it made is
# removed on exit, whatever happens. With LOSS_PERCENT, nftables in the
# namespace drops that share of the TCP segments in each direction
# (numgen random: the only impairment this kernel offers without netem).
set -u
client=$1
bytes=${2:-4194304}
loss=${3:-0}
ns=dmta-t-tcp-$$
a=dtt$$a
b=dtt$$b
srv_pid=
cleanup() {
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null
	ip link del "$a" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
}
trap cleanup EXIT INT TERM

ip netns add "$ns" || exit 1
ip link add "$a" type veth peer name "$b" || exit 1
ip link set "$b" netns "$ns"
sysctl -qw "net.ipv6.conf.$a.disable_ipv6=1"
ip link set "$a" up
ip -n "$ns" addr add 198.18.7.1/24 dev "$b"
ip -n "$ns" link set "$b" up
ip -n "$ns" link set lo up
ethtool -K "$a" tso off gso off gro off tx off rx off >/dev/null 2>&1
ip netns exec "$ns" ethtool -K "$b" tso off gso off gro off tx off rx off >/dev/null 2>&1

if [ "$loss" != 0 ]; then
	ip netns exec "$ns" nft -f - <<NFT || exit 1
table ip dmta_loss {
	chain in { type filter hook input priority 0; ip protocol tcp numgen random mod 100 < $loss drop; }
	chain out { type filter hook output priority 0; ip protocol tcp numgen random mod 100 < $loss drop; }
}
NFT
fi

ip netns exec "$ns" /usr/bin/python3 -c '
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.7.1", 7007))
s.listen(16)
s.settimeout(90)
def echo(c):
    c.settimeout(60)
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
' &
srv_pid=$!
sleep 0.5

timeout 90 "$client" "$a" 198.18.7.2 198.18.7.1 198.18.7.1 7007 "$bytes" 7008
rc=$?
echo "neighbour entry in the namespace:"
ip -n "$ns" neigh show 198.18.7.2
exit $rc
