"""Lab: traffic control (issue 18), counted at a receiver of the test's own.

site-a.test and site-b.test have one MX in the lab's DNS, mx.site.test
(198.18.1.60): one site. shard_sink.py listens there and logs every
connection, refusal and message with its time. dmtad runs on the kernel
backend (the data plane has its own tests) and resolves through the
lab's DNS. argv[1] names the case:

  sites     [site mx.site.test] max_connections = 2 with 200 messages to
            each domain queued, the receiver holding each transaction
            50 ms: never more than 2 connections open at once (and 2
            reached); with only [queue] dest_max_connections = 2, more
            than 2 and at most 4.
  throttle  the receiver answers "421 4.7.28 rate limited" to every MAIL
            and a rule in the rules file suspends the site for SUSPEND s:
            no new connection in that window, the suspension listed by
            dmta-queue stats while it lasts, then dmtad comes back and,
            the receiver accepting again, delivers every message.
  rates     [dest site-a.test] rate = 3600/h: 8 messages queued at once
            take about 7 s at the receiver; [site mx.site.test] rate =
            120/min: 15 messages to its two domains about 7 s (token
            buckets, burst one second's worth).
  priority  20,000 bulk messages to the site at rate = 20/s, then 10 high
            ones: each of the 10 delivered within 3 s of its injection,
            while most of the bulk is still queued.
  dlog      delivery-log records carry source, site, class, priority and
            tenant: one delivered, one refused with 550 5.1.1 (class
            bad-mailbox).
The lab lock is held for the whole run (labutil.lab_lock).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from labutil import (AddrSink, all_delivered_once, check, dmtad_conf, dmtad_start, dmtad_stop,  # noqa: E402
                     dmtad_until_settled, fail, inject, lab, lab_lock, queue_stats)

CASE = sys.argv[1] if len(sys.argv) > 1 else "sites"
SITE_IP = "198.18.1.60"
MX = "mx.site.test"
A, B = "site-a.test", "site-b.test"
SUSPEND = 5  # seconds, the throttle rule's
SOURCE_IP = "198.18.0.20"  # one of the lab's kernel-side egress addresses

tmp = tempfile.mkdtemp(prefix="dmta-traffic-")
os.chmod(tmp, 0o755)  # the receiver writes its log here from the lab namespace


def conf_for(name, queue="", extra=""):
    """A dmtad configuration (kernel backend, its own spool) named @name,
    with @queue added to [queue] and @extra (more sections). Returns
    (conf path, spool path)."""
    conf = os.path.join(tmp, name + ".conf")
    spool = os.path.join(tmp, name + ".spool")
    dmtad_conf(conf, spool, "kernel", """[queue]
myhostname = dmta.test
min_backoff = 1s
max_backoff = 1s
backoff_jitter = 0
%s
[smtp]
helo_name = dmta.test
%s""" % (queue, extra))
    return conf, spool


def msg(i, rcpt, **fields):
    m = {"from": "sender@%s" % B, "to": [rcpt],
         "data": "Subject: traffic %d\r\nMessage-ID: <%d.%s>\r\n\r\nm %d\r\n" % (i, i, rcpt, i)}
    m.update(fields)
    return m


def delivered(sink):
    """{recipient: receiver's monotonic time in s} of the messages it took."""
    return {r: int(e[1]) / 1e9 for e in sink.events() if e[0] == "msg"
            for r in e[5].split(",")}


def peak_open(sink):
    """The most connections the receiver had open at once, and when first
    (seconds after the first connection)."""
    n = peak = 0
    t0 = when = None
    for e in sink.events():
        if e[0] == "open":
            n += 1
            t0 = int(e[1]) / 1e9 if t0 is None else t0
            if n > peak:
                peak, when = n, int(e[1]) / 1e9 - t0
        elif e[0] == "close":
            n -= 1
    return peak, when


def dlog(spool):
    with open(os.path.join(spool, "delivery.log")) as f:
        return [json.loads(l) for l in f]


def wait_for(what, cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    fail("%s: not within %d s" % (what, timeout))


def run_sites(name, queue, extra):
    """400 messages to the two domains of one site; returns the peak of
    connections open at once and when it was reached."""
    conf, spool = conf_for(name, queue, extra)
    sink = AddrSink([SITE_IP], os.path.join(tmp, name + ".log"), "--hold", "0.05")
    try:
        rcpts = ["u%d@%s" % (i, (A, B)[i % 2]) for i in range(400)]
        inject(conf, [msg(i, r) for i, r in enumerate(rcpts)])
        elapsed, _, _ = dmtad_until_settled(conf, 180)
    finally:
        sink.close()
    all_delivered_once(spool, rcpts)
    got = delivered(sink)
    check(set(got) == set(rcpts), "%s: the receiver took %d of %d messages"
          % (name, len(set(got) & set(rcpts)), len(rcpts)))
    peak, when = peak_open(sink)
    print("%s: 400 messages in %.1f s, at most %d connections open at once (first %.2f s "
          "after the first connection)" % (name, elapsed, peak, when))
    return peak, when


def case_sites():
    site, when = run_sites("site-limit", "", "[site %s]\nmax_connections = 2\n" % MX)
    dest, _ = run_sites("dest-limit", "dest_max_connections = 2", "")
    check(site == 2, "[site %s] max_connections = 2: the receiver saw %d connections open "
          "at once (%.2f s after the first), want 2 (never more)" % (MX, site, when))
    check(2 < dest <= 4, "dest_max_connections = 2 for two domains and no site limit: the "
          "receiver saw %d connections open at once, want 3 or 4" % dest)


def site_suspension(conf):
    """The suspensions of the site by the rule "rate" that dmta-queue
    stats lists, as JSON text ("" when none)."""
    st = ((queue_stats(conf).get("daemon") or {}).get("stats")) or {}
    v = [u for u in st.get("suspensions", []) if u.get("kind") == "site" and
         u.get("name") == MX and u.get("why") == "rate" and not u.get("throttled")]
    return json.dumps(v) if v else ""


def case_throttle():
    rules = os.path.join(tmp, "rules")
    with open(rules, "w") as f:
        f.write("rate  code=421 esc=4.7.28 action=suspend %ds\n" % SUSPEND)
    reply = os.path.join(tmp, "mail-reply")
    with open(reply, "w") as f:
        f.write("421 4.7.28 rate limited\n")
    conf, spool = conf_for("throttle", "", "[rules]\nfile = %s\n" % rules)
    sink = AddrSink([SITE_IP], os.path.join(tmp, "throttle.log"), "--mail-reply", reply)
    rcpts = ["t%d@%s" % (i, A) for i in range(20)]
    try:
        inject(conf, [msg(i, r) for i, r in enumerate(rcpts)])
        d = dmtad_start(conf)
        try:
            first = wait_for("a MAIL refused with 421", lambda: [
                int(e[1]) / 1e9 for e in sink.events() if e[0] == "refused"], 30)[0]
            # While the site is suspended, dmta-queue stats lists it.
            shown = None
            while time.monotonic() < first + 2:
                shown = shown or site_suspension(conf)
                time.sleep(0.2)
            os.unlink(reply)  # the receiver accepts from now on
            wait_for("an empty queue", lambda: queue_stats(conf).get("messages") == 0, 60)
        finally:
            dmtad_stop(d)
    finally:
        sink.close()
    all_delivered_once(spool, rcpts)
    check(shown, "dmta-queue stats did not list the site %s as suspended by the rule" % MX)
    opens = [int(e[1]) / 1e9 for e in sink.events() if e[0] == "open"]
    # Connections dmtad opened before the first 421 reached it may still
    # arrive a moment later; none may start in the suspension's window.
    during = [t - first for t in opens if first + 0.5 < t < first + SUSPEND - 0.5]
    check(not during, "connections opened %s s after the first 421, inside the %d s "
          "suspension" % (["%.2f" % t for t in during], SUSPEND))
    after = [t - first for t in opens if t >= first + SUSPEND - 0.5]
    check(after and after[0] < SUSPEND + 3, "no connection within 3 s after the suspension "
          "ended: %s" % ["%.2f" % t for t in after])
    refused = sum(1 for e in sink.events() if e[0] == "refused")
    print("throttle: %d refusals, then no connection for %.2f s; the suspension shown by "
          "dmta-queue stats: %s; all %d delivered" % (
              refused, after[0], shown[:300], len(rcpts)))


def run_rate(name, extra, domains, n):
    """@n messages queued at once, to @domains in turn; returns the seconds
    between the receiver's first and last message."""
    conf, spool = conf_for(name, "", extra)
    sink = AddrSink([SITE_IP], os.path.join(tmp, name + ".log"))
    rcpts = ["r%d@%s" % (i, domains[i % len(domains)]) for i in range(n)]
    try:
        inject(conf, [msg(i, r) for i, r in enumerate(rcpts)])
        dmtad_until_settled(conf, 60)
    finally:
        sink.close()
    all_delivered_once(spool, rcpts)
    got = delivered(sink)
    check(set(got) == set(rcpts), "%s: the receiver took %d of %d" % (name, len(got), n))
    span = max(got.values()) - min(got.values())
    print("%s: %d messages over %.2f s at the receiver" % (name, n, span))
    return span


def case_rates():
    # One domain's rate per hour: one message a second, a burst of one.
    span = run_rate("rate-h", "[dest %s]\nrate = 3600/h\n" % A, [A], 8)
    check(5.5 <= span <= 12, "[dest %s] rate = 3600/h: 8 messages over %.2f s, want about 7 "
          "(5.5 to 12)" % (A, span))
    # The site's rate per minute, shared by its two domains: two a second.
    span = run_rate("rate-min", "[site %s]\nrate = 120/min\n" % MX, [A, B], 15)
    check(5.5 <= span <= 12, "[site %s] rate = 120/min: 15 messages to its two domains over "
          "%.2f s, want about 7 (5.5 to 12)" % (MX, span))


def case_priority():
    conf, _ = conf_for("priority", "", "[site %s]\nrate = 20/s\n" % MX)
    sink = AddrSink([SITE_IP], os.path.join(tmp, "priority.log"))
    bulk = 20000
    try:
        t = time.monotonic()
        inject(conf, [{"from": "b@%s" % B, "to": ["b%d@%s" % (i, A)], "data": "\r\nb\r\n",
                       "priority": "bulk"} for i in range(bulk)])
        print("priority: %d bulk messages queued in %.1f s" % (bulk, time.monotonic() - t))
        d = dmtad_start(conf)
        try:
            # The site is busy with bulk before the high ones come.
            wait_for("bulk deliveries", lambda: len(delivered(sink)) >= 40, 60)
            high = ["h%d@%s" % (i, A) for i in range(10)]
            t_inj = time.monotonic()
            inject(conf, [msg(i, r, priority="high") for i, r in enumerate(high)])
            wait_for("the high-priority messages", lambda: set(delivered(sink)) >= set(high),
                     20)
        finally:
            dmtad_stop(d)
    finally:
        sink.close()
    got = delivered(sink)
    late = {r: got[r] - t_inj for r in high if got[r] - t_inj > 3}
    check(not late, "high-priority messages delivered more than 3 s after their injection: %s"
          % {r: "%.2f s" % v for r, v in late.items()})
    last = max(got[r] for r in high)
    bulk_before = sum(1 for r, v in got.items() if r.startswith("b") and v <= last)
    check(bulk - bulk_before > bulk // 2, "%d bulk messages delivered before the last high one"
          % bulk_before)
    print("priority: the 10 high ones within %.2f s of their injection, %d bulk delivered "
          "by then (of %d queued)" % (last - t_inj, bulk_before, bulk))


def case_dlog():
    conf, spool = conf_for("dlog", "", "[source lab]\naddress = %s\n" % SOURCE_IP)
    sink = AddrSink([SITE_IP], os.path.join(tmp, "dlog.log"))
    try:
        inject(conf, [msg(1, "good@" + A, tenant="acme", priority="high"),
                      msg(2, "bad@" + A, tenant="acme", priority="bulk")])
        dmtad_until_settled(conf, 60)
    finally:
        sink.close()
    peers = {e[4] for e in sink.events() if e[0] == "open"}
    check(peers == {SOURCE_IP}, "the receiver saw connections from %s, want %s"
          % (peers, SOURCE_IP))
    recs = {r["to"]: r for r in dlog(spool) if r["to"] in ("good@" + A, "bad@" + A)}
    want = {"good@" + A: {"outcome": "delivered", "priority": "high"},
            "bad@" + A: {"outcome": "bounced", "priority": "bulk", "class": "bad-mailbox"}}
    for rcpt, w in want.items():
        check(rcpt in recs, "no delivery-log record for %s" % rcpt)
        r = recs[rcpt]
        w.update({"source": SOURCE_IP, "site": MX, "tenant": "acme"})
        for k, v in w.items():
            check(r.get(k) == v, "delivery log for %s: %s is %r, want %r (%s)"
                  % (rcpt, k, r.get(k), v, json.dumps(r)))
        check("class" in r, "delivery log for %s: no \"class\" (%s)" % (rcpt, json.dumps(r)))
    print("dlog: " + " | ".join(json.dumps({k: recs[r].get(k) for k in (
        "to", "outcome", "source", "site", "class", "priority", "tenant")}) for r in want))


CASES = {"sites": case_sites, "throttle": case_throttle, "rates": case_rates,
         "priority": case_priority, "dlog": case_dlog}
check(CASE in CASES, "unknown case %r, want one of %s" % (CASE, sorted(CASES)))
lock = lab_lock()
lab("up")
try:
    CASES[CASE]()
    print("ok (%s)" % CASE)
finally:
    subprocess.run(["rm", "-rf", tmp])
