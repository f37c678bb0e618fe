#!/usr/bin/python3
"""make_stack_seeds.py - write the hand-made seeds of fuzz_stack.c.

Usage: make_stack_seeds.py CORPUS_DIR   (record format: see fuzz_stack.c)
"""
import struct
import sys

ACK, PSH, FIN, SYN, RST = 0x10, 0x08, 0x01, 0x02, 0x04
TS = bytes([1, 1, 8, 10, 0, 0, 0, 20, 0, 0, 0, 0])  # NOP NOP TS(20, 0)


def seg(op, flags, dseq=0, dack=0, wnd=1024, port=0, plen=0, opt=b''):
    assert len(opt) % 2 == 0 and len(opt) <= 40
    b9 = ((plen >> 8) & 7) | (len(opt) // 2) << 3
    return bytes([op, flags]) + struct.pack('<hhHBB', dseq, dack, wnd, port, plen & 0xff) + bytes([b9]) + opt


def app(which, action, arg=0):
    return bytes([2, which | action << 1, arg])


def tick(ms):
    return bytes([3]) + struct.pack('<H', ms)


seeds = {
    'data_in_order': seg(0, ACK | PSH, plen=100, opt=TS) + app(0, 1) + tick(50),
    'data_ooo': seg(0, ACK | PSH, dseq=100, plen=100) + seg(0, ACK | PSH, plen=100) + app(0, 1),
    'fin': seg(0, ACK | PSH, plen=10) + seg(0, ACK | FIN, dseq=10) + app(0, 1) + app(0, 2) + tick(100),
    'rst_exact': seg(0, RST),
    'rst_in_window': seg(0, RST, dseq=5),
    'send_and_ack': app(0, 0, 40) + seg(0, ACK, dack=1448) + seg(0, ACK, dack=2560) + tick(300),
    'send_loss': app(0, 0, 100) + seg(0, ACK) + seg(0, ACK) + seg(0, ACK) + seg(0, ACK) + tick(1000) + tick(2000),
    'zero_window': app(0, 0, 100) + seg(0, ACK, wnd=0) + tick(500) + tick(1000) + seg(0, ACK, wnd=60000),
    'passive': seg(1, SYN, opt=bytes([2, 4, 5, 0xb4])) + seg(1, ACK, dseq=1) + seg(1, ACK | PSH, dseq=1, plen=20) +
    app(1, 1) + app(1, 0, 5) + app(1, 3),
    'close_active': app(0, 3) + seg(0, ACK, dack=1) + seg(0, FIN | ACK, dack=1) + tick(3000),
    'abort': app(0, 4) + seg(0, ACK),
    'syn_on_est': seg(0, SYN),
}
for name, data in seeds.items():
    with open('%s/seed_%s' % (sys.argv[1], name), 'wb') as f:
        f.write(data)
