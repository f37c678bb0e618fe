#!/usr/bin/python3
"""make_seeds.py - write the hand-made seed inputs of fuzz_netif.c.

Usage: make_seeds.py CORPUS_DIR

The record format is described in fuzz_netif.c. Seeds cover each path once
(ARP answer, ping, gateway resolution and its timeout, a two-segment frame,
IP options) so the fuzzer starts from valid frames rather than noise.
"""
import struct
import sys

OUR_MAC = bytes.fromhex('020000000002')
GW_MAC = bytes.fromhex('020000000001')
PEER_MAC = bytes.fromhex('020000000007')
BCAST = b'\xff' * 6
OUR_IP = bytes([198, 18, 0, 2])
GW_IP = bytes([198, 18, 0, 1])
PEER_IP = bytes([198, 18, 0, 7])
FAR_IP = bytes([203, 0, 113, 9])


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def eth(dst, src, typ):
    return dst + src + struct.pack('!H', typ)


def arp(edst, op, sha, sip, tha, tip):
    return eth(edst, sha, 0x0806) + struct.pack('!HHBBH', 1, 0x0800, 6, 4, op) + sha + sip + tha + tip


def ipv4(src, dst, proto, payload, opts=b'', frag=0):
    hl = 20 + len(opts)
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | hl // 4, 0, hl + len(payload), 1, frag, 64, proto, 0, src, dst) + opts
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + payload


def echo(typ, data):
    m = struct.pack('!BBHHH', typ, 0, 0, 0xbeef, 1) + data
    return m[:2] + struct.pack('!H', csum(m)) + m[4:]


def frame(f, op=0):
    return bytes([op]) + struct.pack('<H', len(f)) + f


def split(f, cut):
    return frame(f, 1 | (cut // 8) << 2)


def output(on_link, host, plen):
    return bytes([2, (host << 1) | (0 if on_link else 1), plen])


def tick(ms):
    return bytes([3]) + struct.pack('<H', ms)


ping = eth(OUR_MAC, PEER_MAC, 0x0800) + ipv4(PEER_IP, OUR_IP, 1, echo(8, bytes(range(56))))
learn = frame(arp(BCAST, 1, PEER_MAC, PEER_IP, b'\0' * 6, OUR_IP))
seeds = {
    'arp_request': learn,
    'arp_other': frame(arp(BCAST, 1, PEER_MAC, PEER_IP, b'\0' * 6, bytes([198, 18, 0, 3]))),
    'ping': learn + frame(ping),
    'ping_unresolved': frame(ping) + tick(100) + tick(100) + tick(100) + tick(100),
    'ping_split': learn + split(ping, 40),
    'ping_options': learn + frame(eth(OUR_MAC, PEER_MAC, 0x0800) +
                                  ipv4(PEER_IP, OUR_IP, 1, echo(8, b'abcd'), b'\x01' * 8)),
    'gw_resolve': output(False, 9, 16) + output(False, 10, 20) +
    frame(arp(OUR_MAC, 2, GW_MAC, GW_IP, OUR_MAC, OUR_IP)) + output(False, 9, 1),
    'gw_timeout': output(False, 9, 16) + tick(100) + tick(100) + tick(100) + output(False, 9, 1) +
    tick(200) + output(False, 9, 1),
    'expire_probe': learn + output(True, 7, 8) + tick(5000) + tick(100) + tick(100) + tick(100),
    'runt': frame(b'\x02\0\0\0\0\x02abc'),
    'fragment': learn + frame(eth(OUR_MAC, PEER_MAC, 0x0800) +
                              ipv4(PEER_IP, OUR_IP, 1, echo(8, b'x' * 8), frag=0x2000)),
}
for name, data in seeds.items():
    with open('%s/seed_%s' % (sys.argv[1], name), 'wb') as f:
        f.write(data)
