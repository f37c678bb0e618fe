"""dmtad (backend = kernel) against DNS faults, in a private network
namespace with a bind9 of the test's own (tests/lab/dns/dnslab.py):
the server down, SERVFAIL, malformed (cut) answers, a CNAME loop, an
answer too large for UDP (truncated, asked again over TCP), 20 and 2000
exchangers. Receivers listen inside the namespace on the exchangers'
addresses (198.18.0.0/15, a benchmarking range: public for dmtad's
private-address rule).

Each case: the delivery-log outcome, the message delivered exactly once or
still queued (deferred with a reason, not bounced), dmtad alive throughout
and clean on SIGTERM, and a DNS failure never suspending the destination
(it is a local failure, not the destination's).
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "../lab/dns"))
from dnslab import BAD, CUT, DEAD, SERVER, DnsLab, sh  # noqa: E402
from faultlib import DMTAD, INJECT, QUEUE, check, check_clean, fail, wait_for  # noqa: E402

SINK = r"""
import os, socket, sys, threading
out, addrs = sys.argv[1], sys.argv[2:]
def one(conn):
    f = conn.makefile('rb'); conn.sendall(b'220 ns.sink ESMTP\r\n')
    while True:
        l = f.readline()
        if not l: return
        c = l[:4].upper()
        if c == b'DATA':
            conn.sendall(b'354 go\r\n'); body = []
            while True:
                x = f.readline()
                if x in (b'.\r\n', b''): break
                body.append(x)
            name = os.path.join(out, '%d-%d' % (os.getpid(), threading.get_ident()))
            with open(name + '.tmp', 'ab') as g: g.write(b''.join(body) + b'\n--end--\n')
            conn.sendall(b'250 2.0.0 ok\r\n')
        elif c == b'QUIT':
            conn.sendall(b'221 bye\r\n'); return
        else:
            conn.sendall(b'250 ok\r\n')
def serve(a):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a, 25)); s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=lambda: (one(c), c.close()), daemon=True).start()
for a in addrs: threading.Thread(target=serve, args=(a,), daemon=True).start()
threading.Event().wait(300)
"""

RECEIVERS = ["198.18.5.1", "198.18.4.1", "198.18.7.1"]  # many, big, thousand

# name, DNS server, recipient domain, outcome, delivered?
CASES = [
    ("server down", DEAD, "order.dns.test", "deferred", False),
    ("SERVFAIL", BAD, "order.dns.test", "deferred", False),
    ("malformed answers", CUT, "order.dns.test", "deferred", False),
    ("CNAME loop", SERVER, "loop1.dns.test", "deferred", False),
    ("truncated, then TCP", SERVER, "big.dns.test", "delivered", True),
    ("20 exchangers", SERVER, "many.dns.test", "delivered", True),
    ("2000 exchangers", SERVER, "thousand.dns.test", "delivered", True),
]


def received(outdir):
    n = 0
    for f in os.listdir(outdir):
        with open(os.path.join(outdir, f), "rb") as g:
            n += g.read().count(b"\n--end--\n")
    return n


def one_case(lab, name, server, domain, outcome, delivered, outdir):
    tmp = os.path.join(lab.dir, "case-" + name.replace(" ", "-").replace(",", ""))
    os.mkdir(tmp)
    spool = os.path.join(tmp, "spool")
    conf = lab.conf(os.path.basename(tmp) + ".conf",
                    "[spool]\npath = %s\n[dns]\nservers = %s\ntimeout = 2s\ntries = 1\n"
                    "[delivery]\nbackend = kernel\n[smtp]\nhelo_name = dmta.test\ntls = none\n"
                    "connect_timeout = 2s\n[control]\nstop_timeout = 2s\n"
                    "[queue]\nmin_backoff = 1h\nsuspend_after = 1\n" % (spool, server))
    msg = {"from": "s@dmta.test", "to": ["u@" + domain],
           "data": "Subject: %s\r\n\r\nbody\r\n" % name}
    r = subprocess.run([INJECT, "-q", "-c", conf], input=json.dumps(msg) + "\n",
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "%s: dmta-inject: %s" % (name, r.stderr))
    before = received(outdir)
    d = lab.spawn([DMTAD, "-c", conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                  text=True)
    log = os.path.join(spool, "delivery.log")

    def outcome_seen():
        try:
            return [json.loads(l) for l in open(log) if l.strip()]
        except FileNotFoundError:
            return []
    recs = wait_for(outcome_seen, 30, 0.1)
    alive = d.poll() is None
    # A second round: the destination is not suspended by a DNS failure.
    if alive and not delivered:
        subprocess.run([QUEUE, "-c", conf, "flush"], capture_output=True, timeout=30)
        wait_for(lambda: len(outcome_seen()) >= 2, 15, 0.1)
    d.terminate()
    try:
        out, _ = d.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        d.kill()
        out, _ = d.communicate()
        fail("%s: dmtad did not stop on SIGTERM" % name)
    check(alive, "%s: dmtad died (exit %s):\n%s" % (name, d.returncode, out[-2000:]))
    check(d.returncode == 0, "%s: dmtad exit %d:\n%s" % (name, d.returncode, out[-2000:]))
    check_clean(out)
    recs = outcome_seen()
    check(recs and recs[0]["outcome"] == outcome, "%s: got log %s, want %s\n%s"
          % (name, [(x["outcome"], x.get("reply")) for x in recs], outcome, out[-1500:]))
    st = json.loads(subprocess.run([QUEUE, "-c", conf, "--json", "stats"], capture_output=True,
                                   text=True, timeout=30).stdout)
    got = received(outdir) - before
    if delivered:
        check(got == 1 and st["messages"] == 0, "%s: received %d, %d queued; want 1, 0"
              % (name, got, st["messages"]))
    else:
        check(got == 0 and st["messages"] == 1 and st["deferred"] == 1,
              "%s: received %d, spool %s; want nothing, one deferred" % (name, got, st))
        check(len(recs) >= 2, "%s: one attempt only after a flush: %s" % (name, recs))
        check("suspended" not in out, "%s: a DNS failure suspended the destination:\n%s"
              % (name, out[-1500:]))
    print("ok: %-22s %s%s (%s)" % (name, outcome, ", delivered once" if delivered else
                                  ", queued, not suspended", recs[0].get("reply", "")[:70]),
          flush=True)


def main():
    with DnsLab() as lab:
        # Every address of the exchangers' /24s is this namespace's own, and
        # one receiver on port 25 of all of them takes what comes.
        for a in RECEIVERS:
            sh("ip", "-n", lab.ns, "route", "add", "local", a.rsplit(".", 1)[0] + ".0/24",
               "dev", "lo")
        outdir = os.path.join(lab.dir, "received")
        os.mkdir(outdir)
        with open(os.path.join(lab.dir, "sink.py"), "w") as f:
            f.write(SINK)
        lab.spawn(["/usr/bin/python3", os.path.join(lab.dir, "sink.py"), outdir, "0.0.0.0"])
        time.sleep(0.3)
        for case in CASES:
            one_case(lab, *case, outdir)
    print("%d DNS fault cases passed" % len(CASES))


if __name__ == "__main__":
    main()
