#!/bin/bash
# lab_tcp_linux.sh - the userspace TCP against the Linux kernel's TCP.
#
# Usage: lab_tcp_linux.sh CLIENT_BINARY [BYTES [LOSS_PERCENT [CONNECTIONS]]]
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
conns=${4:-1}
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
# A kernel echo server for many connections: one thread, non-blocking.
import selectors, socket, time
sel = selectors.DefaultSelector()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.7.1", 7007))
s.listen(4096)
s.setblocking(False)
sel.register(s, selectors.EVENT_READ)
pending = {}
end = time.time() + 150
while time.time() < end:
    for key, ev in sel.select(1):
        if key.fileobj is s:
            try:
                c, _ = s.accept()
            except BlockingIOError:
                continue
            c.setblocking(False)
            pending[c] = b""
            sel.register(c, selectors.EVENT_READ)
            continue
        c = key.fileobj
        if ev & selectors.EVENT_READ:
            try:
                d = c.recv(65536)
            except (BlockingIOError, ConnectionError):
                d = None
            if d:
                pending[c] += d
            elif d == b"" and not isinstance(pending[c], tuple):
                pending[c] = (pending[c], "eof")
        buf = pending[c]
        eof = isinstance(buf, tuple)
        data = buf[0] if eof else buf
        if data:
            try:
                n = c.send(data)
            except (BlockingIOError, ConnectionError):
                n = 0
            data = data[n:]
        if eof and not data:
            sel.unregister(c)
            c.close()
            del pending[c]
            continue
        pending[c] = (data, "eof") if eof else data
        # After the peer closed, reading again would only see EOF again.
        sel.modify(c, selectors.EVENT_WRITE if eof else
                   selectors.EVENT_READ | (selectors.EVENT_WRITE if data else 0))
' &
srv_pid=$!
sleep 0.5

timeout 140 "$client" "$a" 198.18.7.2 198.18.7.1 198.18.7.1 7007 "$bytes" 7008 "$conns"
rc=$?
echo "neighbour entry in the namespace:"
ip -n "$ns" neigh show 198.18.7.2
exit $rc
