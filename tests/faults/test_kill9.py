"""dmtad killed with SIGKILL at random moments, many times, while it
delivers a few thousand messages and more are injected between kills.
backend = kernel: to a slow receiver of the test's own on loopback;
backend = dpdk: over the lab's DPDK port to the lab's Postfix
(postfix.test), whose Maildir keeps what it receives (the lab must be
free: run under flock /tmp/dmta-lab.lock).

At the end every accepted message must have reached the receiver, once,
or more than once only as RFC 1047 allows (the receiver had it when dmtad
died before writing that down): such duplicates are counted and bounded
by what can be in flight at a kill. Nothing is bounced, nothing is left
queued, and the spool stays readable after every kill.

    test_kill9.py [MESSAGES [KILLS [SEED [BACKEND]]]]
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from faultlib import Peer, Spool, check, fail, msg_seq, smtp_sink, wait_for  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
KILLS = int(sys.argv[2]) if len(sys.argv) > 2 else 25
SEED = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "-" else int(time.time())
BACKEND = sys.argv[4] if len(sys.argv) > 4 else "kernel"
CONNS = 10  # [queue] dest_max_connections: what may be in flight at a kill
MAILDIR = "/run/dmta-lab/postfix/mail/box/new"  # postfix.test's mailbox (dpdk)


RUN = "%x" % (int(time.time() * 1000) & 0xFFFFFFFF)  # this run's messages, in a shared Maildir


def msgs(first, n):
    dom = "postfix.test" if BACKEND == "dpdk" else "sink.test"
    return [{"from": "s@dmta.test", "to": ["u%d.%s@%s" % (i, RUN, dom)],
             "data": "Subject: kill9 %d\r\nX-Run: %s\r\nX-Seq: %d\r\n\r\n%s"
                    % (i, RUN, i, "body\r\n" * 30)}
            for i in range(first, first + n)]


class Maildir:
    """The lab Postfix's Maildir seen as a receiver: .got is this run's
    messages that arrived there."""

    def __init__(self):
        self.before = set(os.listdir(MAILDIR)) if os.path.isdir(MAILDIR) else set()

    @property
    def got(self):
        out = []
        for n in sorted(set(os.listdir(MAILDIR)) - self.before):
            try:
                raw = open(os.path.join(MAILDIR, n), "rb").read()
            except FileNotFoundError:
                continue
            if ("X-Run: %s" % RUN).encode() in raw:
                out.append(raw)
        return out


def main():
    rnd = random.Random(SEED)
    print("seed %d, %d messages, %d kills, backend %s" % (SEED, N, KILLS, BACKEND), flush=True)
    extra = "[queue]\nmin_backoff = 1s\nmax_backoff = 2s\ndest_max_connections = %d\n" % CONNS
    if BACKEND == "dpdk":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "../lab/core"))
        from labutil import dmtad_conf, lab
        lab("up")
        sink = Maildir()
        sp = Spool({})
        dmtad_conf(sp.conf, sp.spool, "dpdk", "[smtp]\nhelo_name = dmta.test\ntls = none\n"
                   "connect_timeout = 2s\n[control]\nstop_timeout = 2s\n" + extra)
    else:
        # A receiver slow enough (20 ms a message) that kills land mid-delivery.
        sink = Peer(lambda conn, peer: smtp_sink(conn, peer, delay=0.02))
        sp = Spool({"sink.test": sink.port}, extra)
    try:
        run(rnd, sp, sink)
    finally:
        sp.close()
        if BACKEND != "dpdk":
            sink.stop()


def run(rnd, sp, sink):
    batches = 5
    per = N // batches
    sp.inject(msgs(0, 2 * per))
    injected = 2 * per
    t0 = time.time()
    for k in range(KILLS):
        d = sp.start()
        time.sleep(rnd.uniform(0.02, 0.6))
        sp.kill9(d)
        st = sp.stats()  # readable after every kill
        if injected < N and k % (KILLS // (batches - 1) or 1) == 0:
            n = min(per, N - injected)
            sp.inject(msgs(injected, n))
            injected += n
        print("kill %2d: %4d received, %4d queued" % (k + 1, len(sink.got), st["messages"]),
              flush=True)
    if injected < N:
        sp.inject(msgs(injected, N - injected))
        injected = N
    d = sp.start()
    ok = wait_for(lambda: sp.stats()["messages"] == 0, 180, 0.5)
    sp.stop(d)
    # The receiver may still be storing what it accepted last (Postfix's
    # own queue): wait until every sequence number is there, 60 s at most.
    wait_for(lambda: len({msg_seq(r) for r in sink.got}) >= N, 60, 0.5)
    elapsed = time.time() - t0
    st = sp.stats()
    check(ok, "queue not empty 180 s after the last kill: %s" % st)
    seen = {}
    for raw in sink.got:
        s = msg_seq(raw)
        check(s is not None, "a message without X-Seq reached the receiver (a DSN?): %r"
              % raw[:300])
        seen[s] = seen.get(s, 0) + 1
    missing = [i for i in range(N) if i not in seen]
    extra = sorted(set(seen) - set(range(N)))
    dups = sum(c - 1 for c in seen.values())
    print("%d messages, %d kills in %.1f s: %d received, %d duplicates (RFC 1047), %d missing"
          % (N, KILLS, elapsed, len(sink.got), dups, len(missing)))
    if missing:
        fail("%d accepted messages never arrived, e.g. %s" % (len(missing), missing[:10]))
    check(not extra, "messages nobody sent: %s" % extra[:10])
    # At a kill, at most CONNS jobs are at a receiver and as many outcomes
    # may wait for the turn's commit.
    check(dups <= KILLS * 2 * CONNS, "got %d duplicates, want at most %d (kills x 2 x "
          "connections)" % (dups, KILLS * 2 * CONNS))
    bounced = [r for r in sp.dlog() if r["outcome"] == "bounced"]
    check(not bounced, "bounces: %s" % bounced[:3])


if __name__ == "__main__":
    main()
