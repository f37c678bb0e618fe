#!/usr/bin/python3
"""hostile_peer.py IFACE ADDR PORT MODES - a TCP peer made of raw packets.

Runs in the lab namespace (scapy), on ADDR (which the namespace's kernel
owns, so that it answers ARP, with its RSTs for PORT dropped by nftables),
and serves one connection from dmta-nc: takes whatever it sends, ACKs it,
answers its FIN with "250 OK\\r\\n" and a FIN of its own. MODES, separated
by commas, add attacks:

  mss8   the SYN-ACK claims an MSS of 8 with timestamps on
  tsecr  every fifth ACK echoes a timestamp dmta never sent (1)
  blind  before the reply, "EVIL" at the reply's place with an ACK 2^30
         below what dmta sent, as a blind attacker would forge it
  frag   the first data segment larger than 1280 bytes (IPv4) is
         answered by ICMP "fragmentation needed", next-hop MTU 1280, and
         not ACKed; larger ones after it are counted
  hole   every data segment larger than 1280 bytes vanishes without a
         word (ICMP filtered on the path): a black hole

Prints one line at the end: done=0|1 bytes=N too_big_after_icmp=N.
Everything it does is bounded: 60 s at most.
"""
import sys
import time

from scapy.all import ICMP, IP, TCP, Ether, Raw, conf, sendp, sniff

conf.verb = 0
iface, addr, port, modes = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
ISS = 1000000
st = {"rcv_nxt": None, "snd_nxt": ISS, "bytes": 0, "acks": 0, "tsval": 1, "tsecr": 0,
      "done": False, "icmp": False, "too_big": 0, "fin_sent": False}


def opts(extra=()):
    o = list(extra)
    o.append(("Timestamp", (st["tsval"], st["tsecr"])))
    st["tsval"] += 1
    return o


def send(p, flags, seq, ack, data=b"", options=None, win=65535):
    e = Ether(src=p[Ether].dst, dst=p[Ether].src)
    ip = IP(src=addr, dst=p[IP].src, flags="DF")
    t = TCP(sport=port, dport=p[TCP].sport, flags=flags, seq=seq % (1 << 32),
            ack=ack % (1 << 32), window=win, options=options if options is not None else opts())
    pkt = e / ip / t
    if data:
        pkt = pkt / Raw(data)
    sendp(pkt, iface=iface)


def tsecr_of(t):
    for k, v in t.options:
        if k == "Timestamp":
            return v[0]
    return None


def handle(p):
    if IP not in p or TCP not in p or p[IP].dst != addr or p[TCP].dport != port:
        return
    t = p[TCP]
    tv = tsecr_of(t)
    if tv is not None:
        st["tsecr"] = tv
    data = bytes(t.payload)
    if t.flags.S:
        st["rcv_nxt"] = t.seq + 1
        mss = 8 if "mss8" in modes else 1460
        send(p, "SA", ISS, st["rcv_nxt"], options=opts([("MSS", mss), ("NOP", None)]))
        st["snd_nxt"] = ISS + 1
        return
    if st["rcv_nxt"] is None:
        return
    if "hole" in modes and p[IP].len > 1280:
        st["too_big"] += 1
        return
    if "frag" in modes and p[IP].len > 1280:
        if st["icmp"]:
            st["too_big"] += 1
            return
        st["icmp"] = True
        quoted = bytes(p[IP])[:28]
        icmp = (Ether(src=p[Ether].dst, dst=p[Ether].src) /
                IP(src="198.18.0.1", dst=p[IP].src) /
                ICMP(type=3, code=4, nexthopmtu=1280) / Raw(quoted))
        sendp(icmp, iface=iface)
        return
    if data and t.seq == st["rcv_nxt"]:
        st["rcv_nxt"] += len(data)
        st["bytes"] += len(data)
    fin = bool(t.flags.F) and t.seq + len(data) == st["rcv_nxt"]
    if fin:
        st["rcv_nxt"] += 1
    if t.flags.A and st["fin_sent"] and t.ack == st["snd_nxt"]:
        st["done"] = True
        return
    st["acks"] += 1
    o = None
    if "tsecr" in modes and st["acks"] % 5 == 0:
        o = [("Timestamp", (st["tsval"], 1))]
        st["tsval"] += 1
    if data or fin:
        send(p, "A", st["snd_nxt"], st["rcv_nxt"], options=o)
    if fin and not st["fin_sent"]:
        reply = b"250 OK\r\n"
        if "blind" in modes:
            send(p, "PA", st["snd_nxt"], t.seq - (1 << 30), b"EVIL")
            time.sleep(0.2)
        send(p, "PA", st["snd_nxt"], st["rcv_nxt"], reply)
        st["snd_nxt"] += len(reply)
        send(p, "FA", st["snd_nxt"], st["rcv_nxt"])
        st["snd_nxt"] += 1
        st["fin_sent"] = True


print("listening", flush=True)
sniff(iface=iface, filter=f"tcp and dst host {addr} and dst port {port}", prn=handle,
      stop_filter=lambda p: st["done"], timeout=60, store=False)
print(f"done={int(st['done'])} bytes={st['bytes']} too_big_after_icmp={st['too_big']} "
      f"too_big={st['too_big']}",
      flush=True)
