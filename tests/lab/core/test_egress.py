"""Lab: egress sources in a pool with weights 3:1 (issue 18).

argv[1] is the backend: dpdk (the sources are more addresses of the data
plane, 198.18.0.10 and .11, answered for in ARP by the worker) or kernel
(198.18.0.20 and .21, the root namespace's on the management link, which
dmtad binds its sockets to). tools/lab puts both pairs up.

Two sources a (weight 3) and b (weight 1) form pool p, the default pool.
1,000 one-recipient messages go to four lab domains d0..d3.shard.test,
whose exchangers are shard_sink.py (aiosmtpd) on their own addresses,
recording the peer address of every connection and every transaction.
The test checks, from the receiver's records: every message arrived once;
transactions came from a and b only, a's share between 0.65 and 0.85 (the
scheduler's smooth weighted round robin gives 0.75 exactly when no
message is retried); connections came from both; and no (source,
domain) pair ever had more than dest_max_connections connections open at
once, since the limits are per source; and each (source, site) kept to
site_rate (a token bucket with a second's worth of burst: in no stretch
of T seconds more than RATE * T + RATE transactions, with some slack for
the receiver's clock), each domain being a site of its own here. On DPDK each source also answers
ping while dmtad runs."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from labutil import (AddrSink, BUILD, all_delivered_once, check, dmtad_conf,
                     dmtad_until_settled, lab, ping)

BACKEND = sys.argv[1] if len(sys.argv) > 1 else "dpdk"
SOURCES = {"dpdk": ("198.18.0.10", "198.18.0.11"),
           "kernel": ("198.18.0.20", "198.18.0.21")}[BACKEND]
DOMAINS = ["d%d.shard.test" % i for i in range(4)]
ADDR = {d: "198.18.1.10%d" % i for i, d in enumerate(DOMAINS)}  # the zone's MX addresses
COUNT = 1000
MAX_CONN = 2
RATE = 25  # per second, per (source, site)

lab("up")
tmp = tempfile.mkdtemp(prefix="dmta-egress-")
conf = os.path.join(tmp, "dmta.conf")
spool = os.path.join(tmp, "spool")
dmtad_conf(conf, spool, BACKEND, """[smtp]
helo_name = dmta.test
connect_timeout = 3s
idle_timeout = 1s
[queue]
dest_max_connections = %d
dest_max_messages_per_connection = 20
site_rate = %d/s
default_pool = p
[source a]
address = %s
[source b]
address = %s
[pool p]
sources = a:3, b:1
""" % (MAX_CONN, RATE, SOURCES[0], SOURCES[1]))

sink = AddrSink(ADDR.values(), os.path.join(tmp, "sink.log"))
try:
    msgs = []
    for i in range(COUNT):
        rcpt = "u%d@%s" % (i, DOMAINS[i % len(DOMAINS)])
        msgs.append({"from": "s@sink.test", "to": [rcpt],
                     "data": "Subject: egress %d\r\nMessage-ID: <%d@egress.test>\r\n\r\n"
                             "message %d\r\n" % (i, i, i)})
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-c", conf],
                       input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                       text=True, timeout=120)
    check(r.returncode == 0, "dmta-inject: exit %d: %s" % (r.returncode, r.stderr))
    # On DPDK the sources are the data plane's own: pinged, each answers.
    elapsed, _, pings = dmtad_until_settled(
        conf, 240, lambda: [ping(5, "0.05", a) for a in SOURCES] if BACKEND == "dpdk" else [])
finally:
    sink.close()

all_delivered_once(spool, [m["to"][0] for m in msgs])

# The receiver's view, replayed in order.
tx = {}        # peer address -> transactions
conns = {}     # peer address -> connections
open_now, peak, got = {}, {}, set()
times = {}     # (source, the domain's address) -> when each transaction ended (ns)
for f in sink.events():
    if f[0] in ("open", "close"):
        key = (f[4], f[2])  # (source, the domain's address)
        if f[0] == "open":
            conns[f[4]] = conns.get(f[4], 0) + 1
            open_now[key] = open_now.get(key, 0) + 1
            peak[key] = max(peak.get(key, 0), open_now[key])
        else:
            open_now[key] -= 1
    elif f[0] == "msg":
        check(f[5] not in got, "message for %s received twice" % f[5])
        got.add(f[5])
        tx[f[6]] = tx.get(f[6], 0) + 1
        times.setdefault((f[6], f[2]), []).append(int(f[1]))
check(all(n == 5 for n in pings), "echo replies from the sources: %s, want 5 each" % pings)
check(len(got) == COUNT, "receiver got %d messages, want %d" % (len(got), COUNT))
check(set(tx) <= set(SOURCES), "transactions from %s, want only %s" % (sorted(tx), SOURCES))
check(set(conns) == set(SOURCES), "connections from %s, want from both of %s"
      % (sorted(conns), SOURCES))
share = tx.get(SOURCES[0], 0) / COUNT
check(0.65 <= share <= 0.85, "source a (weight 3 of 4) carried %.3f of the transactions "
      "(%r), want 0.65..0.85" % (share, tx))
for (src, dst), p in sorted(peak.items()):
    check(p <= MAX_CONN, "%s -> %s: %d connections open at once, limit %d per source"
          % (src, dst, p, MAX_CONN))
worst = 0.0
for (src, dst), t in sorted(times.items()):
    t.sort()
    for i in range(len(t)):
        for j in range(i + 1, len(t)):
            span = (t[j] - t[i]) / 1e9
            allowed = RATE * span * 1.1 + RATE + 3
            check(j - i + 1 <= allowed, "%s -> %s: %d transactions in %.2f s, site_rate %d/s "
                  "allows %d" % (src, dst, j - i + 1, span, RATE, allowed))
    if len(t) > RATE * 2:
        worst = max(worst, (len(t) - RATE) / ((t[-1] - t[0]) / 1e9))
print("ok (%s): %d messages in %.1f s; transactions %s (a's share %.3f); connections %s; "
      "peak per (source, destination) %d; past the burst, at most %.1f/s per (source, site)"
      % (BACKEND, COUNT, elapsed, tx, share, conns, max(peak.values()), worst))
subprocess.run(["rm", "-rf", tmp])
