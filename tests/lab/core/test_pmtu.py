"""Lab: dmtad on its DPDK backend delivers 64 KiB messages across a hop
whose MTU is 1280, with ICMP "fragmentation needed" (RFC 1191) and
without (a black hole: RFC 4821-style MSS reduction after timeouts).

The lab's WAN emulator (tools/lab impair: dmta-wire) sits between dmta0
and the lab's gateway and forwards IP packets of 1280 bytes at most, both
ways. dmtad runs with two worker cores (software flow steering: an ICMP
error reaches whichever queue the kernel hashes it to, and must be handed
to the worker owning the connection it quotes) and delivers a batch of
64 KiB messages to the lab's Postfix, which keeps them in a Maildir.
tcpdump on the wire's dmta-side interface timestamps the first frame too
big for the hop, the first ICMP, and the first data segment cut to the
smaller size; the delivery log timestamps each delivery.

  a. mtu=1280,icmp=198.18.0.1 (the gateway's address, as the router
     that has the small link): every message arrives byte-exact; the last
     delivery is within FRAG_SECS of the first ICMP; telemetry counts
     path MTU reductions, every ICMP the wire sent taken by the worker
     that owns the connections, and no black-hole reduction.
  b. mtu=1280,icmp=off: no ICMP at all; every message arrives byte-exact;
     tcp_pmtu_blackhole counts the reductions, each after at most two
     retransmission timeouts (tcp_rto_fired <= 2 per reduction), and the
     first resized segment leaves within HOLE_SECS of the first frame
     that vanished (the two timeouts are 200 + 400 ms with rto_min 200 ms).

The lab lock is taken for the whole run (labutil.lab_lock); the lab is
brought up if needed and the impairment taken out again at the end; the
messages are removed from the Maildir once checked. PMTU_MSGS sets the
batch (default 8; bench/RESULTS.md has figures for 32)."""
import datetime
import json
import os
import random
import re
import signal
import string
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from labutil import (BUILD, DMTA_IP, all_delivered_once, check, dmtad_conf, dmtad_until_settled,
                     lab, lab_lock, telemetry)

MAILDIR = "/run/dmta-lab/postfix/mail/box"  # postfix.test's mailbox
N_MSGS = int(os.environ.get("PMTU_MSGS", "8"))
MSG_SIZE = 64 * 1024
MTU = 1280
WORKERS = 2
FRAG_SECS = 5.0  # first ICMP -> last delivery
HOLE_SECS = 1.5  # first lost frame -> first resized segment (2 RTOs: 0.6 s)
GATEWAY = "198.18.0.1"
T0 = time.time()


def say(msg):
    print("[%6.1f s] %s" % (time.time() - T0, msg), flush=True)


def message(tag, i, rnd):
    """A message of exactly MSG_SIZE bytes, CRLF lines, some starting
    with a dot (dot-stuffing on the way)."""
    head = ("From: pmtu@sink.test\r\nTo: r%d@postfix.test\r\nSubject: pmtu %s %d\r\n"
            "Date: Wed, 02 Dec 2026 04:00:00 +0000\r\nMessage-ID: <%s.%d@pmtu.test>\r\n\r\n"
            % (i, tag, i, tag, i))
    alphabet = string.ascii_letters + string.digits + "+/"
    lines = []
    size = len(head)
    while size < MSG_SIZE - 80:
        line = "".join(rnd.choice(alphabet) for _ in range(76))
        if rnd.random() < 0.02:
            line = "." + line[1:]
        lines.append(line + "\r\n")
        size += 78
    last = MSG_SIZE - size - 2
    lines.append("x" * last + "\r\n")
    msg = head + "".join(lines)
    assert len(msg) == MSG_SIZE
    return msg


def pcap_events(path):
    """(first frame from dmta too big for the hop, first ICMP fragmentation
    needed to dmta, first data segment from dmta cut to fit after the
    first too-big one, ICMPs seen): epoch times or None."""
    data = open(path, "rb").read()
    check(len(data) >= 24, "tcpdump wrote no capture header")
    magic = struct.unpack("<I", data[:4])[0]
    check(magic in (0xa1b2c3d4, 0xa1b23c4d), "not a little-endian pcap: %#x" % magic)
    scale = 1e-9 if magic == 0xa1b23c4d else 1e-6
    big = icmp = resized = None
    n_icmp = 0
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        f = data[off + 16:off + 16 + incl]
        off += 16 + incl
        t = sec + frac * scale
        if len(f) < 34 or f[12:14] != b"\x08\x00":
            continue
        ip = f[14:]
        ihl = (ip[0] & 0xf) * 4
        tot = struct.unpack(">H", ip[2:4])[0]
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        if ip[9] == 1 and dst == DMTA_IP and len(ip) >= ihl + 8 and ip[ihl] == 3 and ip[ihl + 1] == 4:
            n_icmp += 1
            check(struct.unpack(">H", ip[ihl + 6:ihl + 8])[0] == MTU, "ICMP with MTU %r"
                  % ip[ihl + 6:ihl + 8])
            icmp = icmp or t
        elif ip[9] == 6 and src == DMTA_IP:
            if tot > MTU:
                big = big or t
            elif big is not None and resized is None and tot > 1000:
                resized = t
    return big, icmp, resized, n_icmp


def log_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def mailbox():
    """The paths of every message in postfix.test's Maildir."""
    return {os.path.join(MAILDIR, sub, n) for sub in ("new", "cur")
            if os.path.isdir(os.path.join(MAILDIR, sub))
            for n in os.listdir(os.path.join(MAILDIR, sub))}


def run(tag, spec):
    """Deliver N_MSGS messages across the wire with @spec. Returns the
    figures: (telemetry summed, per worker, pcap events, last delivery)."""
    tmp = tempfile.mkdtemp(prefix="dmta-pmtu-")
    conf = os.path.join(tmp, "dmta.conf")
    spool = os.path.join(tmp, "spool")
    pcap = os.path.join(tmp, "wire.pcap")
    dmtad_conf(conf, spool, "dpdk", """[smtp]
helo_name = dmta.test
connect_timeout = 3s
idle_timeout = 1s
[queue]
dest_max_connections = 2
""", workers=WORKERS)
    rnd = random.Random(tag)
    msgs = {"<%s.%d@pmtu.test>" % (tag, i): message(tag, i, rnd) for i in range(N_MSGS)}
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-c", conf],
                       input="".join(json.dumps({"from": "pmtu@sink.test",
                                                 "to": ["r%d@postfix.test" % i], "data": m}) + "\n"
                                     for i, m in enumerate(msgs.values())),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "dmta-inject: exit %d: %s" % (r.returncode, r.stderr))
    before = mailbox()

    lab("impair", spec)
    say("%s: %d messages injected, wire: %s" % (tag, N_MSGS, spec))
    dump = None
    try:
        # Immediate mode: every frame is written as it comes, none is
        # left in the capture ring when tcpdump is told to stop.
        dump = subprocess.Popen(["tcpdump", "-i", "dmta0-w", "-n", "--immediate-mode", "-U", "-s",
                                 "96", "-Z", "root", "-w", pcap, "ip"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        line = dump.stderr.readline()
        check("listening on" in line, "tcpdump: %s" % line)
        _, _, tel = dmtad_until_settled(
            conf, 60, lambda: [telemetry("/dmta/stats")] +
            [telemetry("/dmta/worker,%d" % k) for k in range(WORKERS)])
    finally:
        dumped = ""
        if dump is not None:
            dump.send_signal(signal.SIGTERM)
            dumped = dump.communicate(timeout=10)[1]
        lab("impair", "off")
    check(re.search(r"^0 packets dropped by kernel", dumped, re.M), "tcpdump lost frames: %s"
          % dumped)
    say("%s: dmtad settled and stopped" % tag)
    events = pcap_events(pcap)
    for k, w in enumerate(tel[1:]):
        say("%s: worker %d: %s" % (tag, k, " ".join(
            "%s=%d" % (n, w[n]) for n in ("tcp_active_opens", "tcp_pmtu_reductions",
                                          "tcp_pmtu_blackhole", "tcp_rto_fired", "icmp_errors",
                                          "stray_in", "stray_out"))))

    # Every recipient delivered once, and when the last was.
    final = all_delivered_once(spool, ["r%d@postfix.test" % i for i in range(N_MSGS)])
    done = max(log_time(e["time"]) for e in final.values())

    # Byte-exact in the Maildir: each file is Postfix's own header lines
    # (Return-Path, Delivered-To, Received) and then the message, LF-ended.
    got = {}
    deadline = time.time() + 30
    while time.time() < deadline and len(got) < N_MSGS:
        for path in mailbox() - before - set(got):
            data = open(path, "rb").read()
            for mid, m in msgs.items():
                if ("Message-ID: " + mid).encode() in data:
                    got[path] = mid
                    want = m.replace("\r\n", "\n").encode()
                    check(data.endswith(want), "%s: not the message sent (%d bytes, want %d "
                          "after Postfix's headers)" % (mid, len(data), len(want)))
        time.sleep(0.2)
    check(sorted(got.values()) == sorted(msgs), "%d of %d messages in the Maildir"
          % (len(got), N_MSGS))
    say("%s: %d messages byte-exact in the Maildir" % (tag, len(got)))
    for path in got:
        os.unlink(path)
    subprocess.run(["rm", "-rf", tmp])
    return tel[0], tel[1:], events, done


lock = lab_lock()
say("lab locked")
lab("up")
lab("impair", "off")
say("lab up")

# a. A router that says why: ICMP fragmentation needed, next-hop MTU 1280.
stats, workers, (big, icmp, resized, n_icmp), done = run(
    "frag", "mtu=%d,icmp=%s" % (MTU, GATEWAY))
print("frag: stats %s" % json.dumps({k: v for k, v in stats.items()
                                     if "pmtu" in k or "icmp" in k or k == "tcp_rto_fired"}))
check(big is not None and icmp is not None, "no frame too big (%r) or no ICMP (%r) seen"
      % (big, icmp))
check(stats["tcp_pmtu_reductions"] >= 1, "tcp_pmtu_reductions %d, want >= 1"
      % stats["tcp_pmtu_reductions"])
check(stats["tcp_pmtu_blackhole"] == 0, "tcp_pmtu_blackhole %d with ICMP, want 0"
      % stats["tcp_pmtu_blackhole"])
# Every ICMP the wire sent reached the stack owning the connection it
# quotes, whichever queue it came in on. (Some may still be refused there
# as tcp_icmp_invalid, RFC 5927: the rest of the first flight's ICMPs,
# when the segments they quote, sent again smaller, have been
# acknowledged by the time they arrive; an ICMP handed over from the
# other worker's queue comes later than the ACKs on the owner's own.)
check(stats["icmp_errors"] == n_icmp, "the stacks took %d ICMP errors, the wire sent %d"
      % (stats["icmp_errors"], n_icmp))
for k, w in enumerate(workers):
    check((w["tcp_pmtu_reductions"] == 0 and w["icmp_errors"] == 0) or w["tcp_active_opens"] > 0,
          "worker %d took ICMP or lowered an MSS without a connection of its own" % k)
frag_secs = done - icmp
print("frag: first frame too big %.3f, first ICMP +%.3f s, first resized segment +%.3f s, "
      "%d ICMPs, last of %d deliveries +%.3f s after the first ICMP"
      % (big, icmp - big, (resized or icmp) - big, n_icmp, N_MSGS, frag_secs))
check(frag_secs < FRAG_SECS, "last delivery %.2f s after the first ICMP, want < %.1f"
      % (frag_secs, FRAG_SECS))

# b. A black hole: the hop drops what it cannot forward and says nothing.
stats, workers, (big, icmp, resized, n_icmp), done = run("hole", "mtu=%d,icmp=off" % MTU)
print("hole: stats %s" % json.dumps({k: v for k, v in stats.items()
                                     if "pmtu" in k or "icmp" in k or k == "tcp_rto_fired"}))
check(big is not None, "no frame too big for the hop seen")
check(icmp is None and n_icmp == 0, "%d ICMPs with icmp=off" % n_icmp)
check(resized is not None, "no resized segment after the first lost frame")
check(stats["tcp_pmtu_reductions"] == 0, "tcp_pmtu_reductions %d without ICMP"
      % stats["tcp_pmtu_reductions"])
check(stats["tcp_pmtu_blackhole"] >= 1, "tcp_pmtu_blackhole %d, want >= 1"
      % stats["tcp_pmtu_blackhole"])
check(stats["tcp_rto_fired"] <= 2 * stats["tcp_pmtu_blackhole"],
      "tcp_rto_fired %d for %d black-hole reductions: more than two timeouts each"
      % (stats["tcp_rto_fired"], stats["tcp_pmtu_blackhole"]))
hole_secs = resized - big
print("hole: first resized segment %.3f s after the first lost frame; last of %d deliveries "
      "+%.3f s" % (hole_secs, N_MSGS, done - big))
check(hole_secs < HOLE_SECS, "first resized segment %.2f s after the first lost frame, want < %.1f"
      % (hole_secs, HOLE_SECS))
print("ok: %d x 64 KiB across MTU %d: ICMP %.2f s first ICMP -> last delivery; black hole "
      "%.2f s first lost frame -> resized, %.2f s -> last delivery"
      % (N_MSGS, MTU, frag_secs, hole_secs, done - big))
