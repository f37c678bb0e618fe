"""Send malformed frames to the data plane from inside the lab namespace.

usage: malformed.py IFACE DST_MAC COUNT
Runs in the dmta-lab namespace (ip netns exec). Sends COUNT frames, cycling
through categories that each have exactly one defect, paced so the
receiving ring never overflows. Prints one JSON object: frames sent per
category, named by the counter each must increment.
"""
import json
import socket
import struct
import sys
import time

iface, dst_mac, count = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), int(sys.argv[3])
src_mac = bytes.fromhex(open("/sys/class/net/%s/address" % iface).read().strip().replace(":", ""))
OUR = socket.inet_aton("198.18.0.2")
GW = socket.inet_aton("198.18.0.1")


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(payload, etype=0x0800, dst=None, src=None):
    return (dst or dst_mac) + (src or src_mac) + struct.pack("!H", etype) + payload


def ipv4(payload, proto=1, src=GW, dst=OUR, ver_ihl=0x45, tot=None, frag=0x4000, fix=True,
         bad_csum=False):
    tot = 20 + len(payload) if tot is None else tot
    h = struct.pack("!BBHHHBBH4s4s", ver_ihl, 0, tot, 1, frag, 64, proto, 0, src, dst)
    if fix:
        c = csum(h)
        if bad_csum:
            c ^= 0x5A5A
        h = h[:10] + struct.pack("!H", c) + h[12:]
    return h + payload


def icmp_echo(data=b"x" * 32, bad=False, typ=8):
    h = struct.pack("!BBHHH", typ, 0, 0, 7, 1) + data
    c = csum(h)
    if bad:
        c ^= 0x1111
    return h[:2] + struct.pack("!H", c) + h[4:]


def arp(op=1, tpa=OUR, htype=1, plen=4):
    return struct.pack("!HHBBH6s4s6s4s", htype, 0x0800, 6, plen, op, src_mac, GW, b"\0" * 6, tpa)


cats = [
    ("eth_unknown_type", lambda: eth(b"\0" * 46, etype=0x86DD)),
    ("eth_unknown_type", lambda: eth(b"\0" * 46, etype=0x1234)),
    ("eth_not_for_us", lambda: eth(ipv4(icmp_echo()), dst=bytes.fromhex("020000000099"))),
    ("arp_malformed", lambda: eth(arp()[:20], etype=0x0806)),
    ("arp_malformed", lambda: eth(arp(htype=6), etype=0x0806)),
    ("arp_not_for_us", lambda: eth(arp(tpa=socket.inet_aton("198.18.0.77")), etype=0x0806)),
    ("ip_short", lambda: eth(b"\x45\0\0\x14")),
    ("ip_bad_version", lambda: eth(ipv4(icmp_echo(), ver_ihl=0x65))),
    ("ip_bad_hlen", lambda: eth(ipv4(icmp_echo(), ver_ihl=0x44))),
    ("ip_bad_hlen", lambda: eth(ipv4(b"", ver_ihl=0x4F, tot=60))),
    ("ip_bad_len", lambda: eth(ipv4(icmp_echo(), tot=1400))),
    ("ip_bad_len", lambda: eth(ipv4(icmp_echo(), tot=12))),
    ("ip_bad_csum", lambda: eth(ipv4(icmp_echo(), bad_csum=True))),
    # No fragments: the af_packet PMD's fanout group asks the kernel to
    # defragment, so lone fragments never reach the port in the lab (the
    # unit tests cover them).
    ("eth_bad_src", lambda: eth(ipv4(icmp_echo()), src=bytes.fromhex("01005e000001"))),
    ("ip_bad_src", lambda: eth(ipv4(icmp_echo(), src=socket.inet_aton("255.255.255.255")))),
    ("ip_not_for_us", lambda: eth(ipv4(icmp_echo(), dst=socket.inet_aton("198.18.0.99")))),
    ("ip_bad_src", lambda: eth(ipv4(icmp_echo(), src=socket.inet_aton("127.0.0.1")))),
    ("ip_bad_src", lambda: eth(ipv4(icmp_echo(), src=socket.inet_aton("224.0.0.1")))),
    ("ip_unknown_proto", lambda: eth(ipv4(b"\0" * 20, proto=253))),
    ("icmp_short", lambda: eth(ipv4(b"\x08\0\0"))),
    ("icmp_bad_csum", lambda: eth(ipv4(icmp_echo(bad=True)))),
    ("icmp_unhandled", lambda: eth(ipv4(icmp_echo(typ=13)))),
]

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
sent = {}
for i in range(count):
    name, make = cats[i % len(cats)]
    s.send(make())
    sent[name] = sent.get(name, 0) + 1
    if i % 32 == 31:
        time.sleep(0.002)
print(json.dumps(sent))
