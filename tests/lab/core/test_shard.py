"""Lab: dmtad with two worker cores shards destinations between them and
never exceeds a destination's connection limit, counted by the receiver.

argv[1] is the backend: dpdk (two workers on the lab's DPDK port, with
software flow steering: the af_packet port spreads frames over its two
queues by the kernel's hash, and the workers forward strays to their
owners) or kernel (the same engine over kernel sockets; no shards).

Eight domains d0..d7.shard.test have one MX each, on eight addresses
where shard_sink.py (aiosmtpd) records every connection and message.
The test injects 480 messages and checks, from the receiver's records:
every message arrived once and byte-identical; no destination ever had
more than dest_max_connections connections open at once; dmtad closed
every connection before it exited; and (dpdk)
every connection to a domain came from the local-port slice of the
worker that the domain's shard names, with both workers used. Once DNS
has answered, a domain's shard is its MX site's (queue_sched.h): the
site key dmta-route prints, mixed (the 64-bit finaliser the scheduler
uses), modulo the workers; here each domain has an MX of its own."""
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from labutil import (AddrSink, BUILD, all_delivered_once, check, dmtad_conf,
                     dmtad_until_settled, lab, telemetry)

BACKEND = sys.argv[1] if len(sys.argv) > 1 else "dpdk"
DOMAINS = ["d%d.shard.test" % i for i in range(8)]
ADDR = {d: "198.18.1.10%d" % i for i, d in enumerate(DOMAINS)}
MAX_CONN = 3
WORKERS = 2
PORT_LO, PORT_HI = 10000, 60999  # [tcp] defaults, cut into one slice per worker


M64 = 0xFFFFFFFFFFFFFFFF


def site_shard(site):
    """queue_sched.c's site_hash() for source 0, modulo the workers."""
    q = site
    q ^= q >> 33
    q = (q * 0xff51afd7ed558ccd) & M64
    return (q ^ (q >> 33)) % WORKERS


def shard(domain):
    r = subprocess.run([os.path.join(BUILD, "tools/dns/dmta-route"), "-c", conf, "--json",
                        domain], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "dmta-route %s: %s" % (domain, r.stderr))
    return site_shard(int(json.loads(r.stdout.splitlines()[0])["site"], 16))


def slice_of(port):
    span = (PORT_HI - PORT_LO + 1) // WORKERS
    return (port - PORT_LO) // span


lab("up")
tmp = tempfile.mkdtemp(prefix="dmta-shard-")
conf = os.path.join(tmp, "dmta.conf")
spool = os.path.join(tmp, "spool")
sink_log = os.path.join(tmp, "sink.log")
dmtad_conf(conf, spool, BACKEND, """[smtp]
helo_name = dmta.test
connect_timeout = 3s
idle_timeout = 1s
[queue]
dest_max_connections = %d
dest_max_messages_per_connection = 10
""" % MAX_CONN, workers=WORKERS)

sink = AddrSink(ADDR.values(), sink_log)
try:
    rnd = random.Random(11)
    msgs = []
    for i in range(480):
        dom = DOMAINS[i % len(DOMAINS)]
        rcpts = ["u%d.%d@%s" % (i, k, dom) for k in range(rnd.randint(1, 2))]
        body = ("Subject: shard %d\r\nMessage-ID: <%d@shard.test>\r\n\r\n" % (i, i) +
                "".join("line %d of message %d\r\n" % (k, i) for k in range(rnd.randint(1, 200))))
        msgs.append({"from": "s%d@sink.test" % i, "to": rcpts, "data": body})
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-c", conf],
                       input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, "dmta-inject: exit %d: %s" % (r.returncode, r.stderr))

    elapsed, _, workers = dmtad_until_settled(
        conf, 120, lambda: [telemetry("/dmta/worker,%d" % k)
                            for k in range(WORKERS)] if BACKEND == "dpdk" else [])
finally:
    sink.close()

# Every recipient delivered once, from the delivery log's point of view.
all_delivered_once(spool, {r for m in msgs for r in m["to"]})

# The receiver's view: replay its events in order.
byaddr = {a: d_ for d_, a in ADDR.items()}
open_now = {a: 0 for a in ADDR.values()}
peak = {a: 0 for a in ADDR.values()}
conns = {a: set() for a in ADDR.values()}
got = {}
for f in sink.events():
    if f[0] == "open":
        a, port = f[2], int(f[3])
        open_now[a] += 1
        peak[a] = max(peak[a], open_now[a])
        conns[a].add(port)
    elif f[0] == "close":
        open_now[f[2]] -= 1
    elif f[0] == "msg":
        key = (f[5].split(",")[0])
        check(key not in got, "message for %s received twice" % key)
        got[key] = f[4]
for m in msgs:
    want = hashlib.sha256(m["data"].encode()).hexdigest()
    check(got.get(m["to"][0]) == want, "message to %s: missing or altered at the receiver"
          % m["to"][0])
check(len(got) == len(msgs), "receiver got %d messages, want %d" % (len(got), len(msgs)))
# dmtad ends its sessions before it exits (QUIT, then a FIN the receiver
# sees), so nothing is left open at the receiver once dmtad is gone.
for a, n in open_now.items():
    check(n == 0, "%s: %d connections still open at the receiver after dmtad stopped"
          % (byaddr[a], n))
for a, p in peak.items():
    check(p <= MAX_CONN, "%s (%s): %d connections open at once, limit %d"
          % (byaddr[a], a, p, MAX_CONN))
print("peak connections per destination (limit %d): %s" % (
    MAX_CONN, " ".join("%s=%d" % (byaddr[a].split(".")[0], p) for a, p in sorted(peak.items()))))

if BACKEND == "dpdk":
    used = set()
    for a, ports in conns.items():
        dom = byaddr[a]
        owners = {slice_of(p) for p in ports}
        check(owners == {shard(dom)}, "%s: connections from workers %s, its shard is %d"
              % (dom, sorted(owners), shard(dom)))
        used |= owners
    check(used == set(range(WORKERS)), "workers used: %s" % sorted(used))
    for k, w in enumerate(workers):
        check(w.get("tcp_active_opens", 0) > 0, "worker %d opened no connection: %r" % (k, w))
        check(w.get("stray_drop", 0) == 0, "worker %d lost forwarded frames: %r" % (k, w))
    print("workers: " + "; ".join(
        "%d: %d opens, %d strays out, %d in, %d ARP copies" % (
            k, w.get("tcp_active_opens", 0), w.get("stray_out", 0), w.get("stray_in", 0),
            w.get("arp_shared", 0)) for k, w in enumerate(workers)))
print("ok (%s): %d messages to %d destinations in %.1f s, %d connections"
      % (BACKEND, len(msgs), len(DOMAINS), elapsed, sum(len(c) for c in conns.values())))
subprocess.run(["rm", "-rf", tmp])
