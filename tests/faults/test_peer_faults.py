"""Receivers that fail at every stage, each at a destination of its own,
all against one dmtad (backend = kernel) on loopback.

For each case the receiver must have been reached, the delivery log must
give the outcome the case calls for, and the message must end as it
should: delivered exactly once (at the receiver), bounced with a DSN that
Python's email package parses and matches to the message and recipient
(the DSN goes to the sender's domain, a correct receiver here), or still
queued with the reply kept. A server that drips or stalls is cut off by
[smtp] transaction_timeout (3 s here).
"""
import socket
import ssl
import subprocess
import sys
import os
import time

sys.path.insert(0, os.path.dirname(__file__))
from faultlib import (Peer, Spool, check, dsn_parts, fail, read_body,  # noqa: E402
                      smtp_sink, wait_for)


def scripted(replies, after_dot=None, split=False):
    """A receiver answering by stage: replies maps 'greeting', 'ehlo',
    'mail', 'rcpt', 'data', 'dot' to bytes (None: the usual answer;
    b'CLOSE': close the connection instead). after_dot: 'close' to close
    without answering the final dot. split: every reply byte by byte."""
    usual = {"greeting": b"220 x.test ESMTP\r\n", "ehlo": b"250 x.test\r\n",
             "helo": b"250 x.test\r\n", "mail": b"250 2.1.0 ok\r\n",
             "rcpt": b"250 2.1.5 ok\r\n", "data": b"354 go on\r\n",
             "dot": b"250 2.0.0 queued\r\n"}

    def say(conn, stage, line=b""):
        r = replies.get(stage)
        if callable(r):
            r = r(line)  # by the command, e.g. per recipient
        r = r or usual[stage]
        if r == b"CLOSE":
            return False
        if split:
            for i in range(len(r)):
                conn.sendall(r[i:i + 1])
                time.sleep(0.002)
        else:
            conn.sendall(r)
        return r[:1] in (b"2", b"3")

    def handler(conn, peer):
        f = conn.makefile("rb")
        if not say(conn, "greeting"):
            return
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line[:4].upper()
            if cmd == b"EHLO":
                say(conn, "ehlo")
            elif cmd == b"HELO":
                say(conn, "helo")
            elif cmd == b"MAIL":
                say(conn, "mail")
            elif cmd == b"RCPT":
                say(conn, "rcpt", line)
            elif cmd == b"DATA":
                if not say(conn, "data"):
                    continue
                # cut_in_body: closed in the middle of the body
                body, whole = read_body(f, replies.get("cut_in_body", 0))
                if not whole:
                    return
                with peer.lock:
                    peer.got.append(body)
                if after_dot == "close":
                    return
                say(conn, "dot")
                if replies.get("close_after_dot"):
                    return
            elif cmd == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif cmd == b"RSET":
                conn.sendall(b"250 ok\r\n")
            else:
                conn.sendall(b"502 5.5.2 what\r\n")
    return handler


def endless_multiline(conn, peer):
    """A greeting that never ends: 220- lines, forever (until cut off)."""
    end = time.time() + 20
    while time.time() < end:
        conn.sendall(b"220-still going\r\n" * 50)
        time.sleep(0.05)


def drip(conn, peer):
    """The greeting one byte every 0.5 s: never done within the deadline."""
    for ch in b"220 drip.test ESMTP\r\n":
        conn.sendall(bytes([ch]))
        time.sleep(0.5)


def garbage(conn, peer):
    conn.sendall(b"\x16\x03\x01 this is not SMTP \xff\xfe\r\nnor this\r\n")
    conn.recv(100)


def tls_fails(conn, peer):
    """STARTTLS offered and accepted, then bytes that are no TLS; a second
    connection (the plaintext retry of opportunistic TLS) is served."""
    f = conn.makefile("rb")
    with peer.lock:
        first = peer.conns == 1
    conn.sendall(b"220 tls.test ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line[:4].upper()
        if cmd == b"EHLO":
            conn.sendall(b"250-tls.test\r\n250 STARTTLS\r\n" if first else b"250 tls.test\r\n")
        elif cmd == b"STAR":
            if peer.inject:
                # Bytes right behind the reply, in the same write as an
                # attacker's would be (CVE-2011-0411): refused as such. Two
                # writes may arrive apart, and then they are only bad TLS.
                conn.sendall(b"220 go ahead\r\n250 injected\r\n")
                return
            conn.sendall(b"220 go ahead\r\n")
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"HTTP/1.0 400 nonsense\r\n\r\n")
            return
        elif cmd == b"DATA":
            conn.sendall(b"354 go on\r\n")
            body, whole = read_body(f)
            if not whole:
                return
            with peer.lock:
                peer.got.append(body)
            conn.sendall(b"250 2.0.0 queued\r\n")
        elif cmd == b"QUIT":
            conn.sendall(b"221 bye\r\n")
            return
        else:
            conn.sendall(b"250 ok\r\n")


def starttls_injection(conn, peer):
    peer.inject = True
    tls_fails(conn, peer)


def tls_fails_later(conn, peer):
    peer.inject = False
    tls_fails(conn, peer)


def tls_stalls(conn, peer):
    """STARTTLS accepted, then silence: the handshake never completes."""
    f = conn.makefile("rb")
    conn.sendall(b"220 stall.test ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line[:4].upper()
        if cmd == b"EHLO":
            conn.sendall(b"250-stall.test\r\n250 STARTTLS\r\n")
        elif cmd == b"STAR":
            conn.sendall(b"220 go ahead\r\n")
            f.read()  # whatever comes, until dmtad closes
            return
        else:
            conn.sendall(b"250 ok\r\n")


D, B, Q = "delivered", "bounced", "queued"
# name, handler, want: final state, log outcome, status prefix; tls setting
CASES = [
    ("greet421", scripted({"greeting": b"421 4.3.2 busy\r\n"}), Q, "deferred", "4.3.2"),
    ("greet554", scripted({"greeting": b"554 5.7.1 go away\r\n"}), Q, "deferred", "4."),
    ("ehlo5xx", scripted({"ehlo": b"550 5.7.1 no\r\n", "helo": b"550 5.7.1 no\r\n"}),
     Q, "deferred", "4."),
    ("mail451", scripted({"mail": b"451 4.3.0 later\r\n"}), Q, "deferred", "4.3.0"),
    ("mail553", scripted({"mail": b"553 5.1.8 bad sender\r\n"}), B, "bounced", "5.1.8"),
    ("rcpt450", scripted({"rcpt": b"450 4.2.0 greylisted\r\n"}), Q, "deferred", "4.2.0"),
    ("rcpt550", scripted({"rcpt": b"550 5.1.1 no such user\r\n"}), B, "bounced", "5.1.1"),
    # Two recipients in one transaction, the second refused: u delivered
    # once, x bounced, and the DSN names x alone.
    ("mixed", scripted({"rcpt": lambda l: b"550 5.1.1 no such user\r\n" if b"<x@" in l else None}),
     "mixed", "delivered", "2.0.0"),
    ("data451", scripted({"data": b"451 4.3.0 no\r\n"}), Q, "deferred", "4.3.0"),
    ("data554", scripted({"data": b"554 5.5.1 no\r\n"}), B, "bounced", "5.5.1"),
    ("dot452", scripted({"dot": b"452 4.3.1 full\r\n"}), Q, "deferred", "4.3.1"),
    ("dot554", scripted({"dot": b"554 5.6.0 spam\r\n"}), B, "bounced", "5.6.0"),
    ("cut-greeting", scripted({"greeting": b"CLOSE"}), Q, "deferred", "4."),
    ("cut-mail", scripted({"mail": b"CLOSE"}), Q, "deferred", "4."),
    ("cut-in-body", scripted({"cut_in_body": 3}), Q, "deferred", "4."),
    # The receiver has it but says nothing: RFC 1047's duplicate window.
    ("cut-at-dot", scripted({}, after_dot="close"), "dup", "deferred", "4."),
    ("cut-after-dot", scripted({"close_after_dot": True}), D, "delivered", "2.0.0"),
    ("split", scripted({}, split=True), D, "delivered", "2.0.0"),
    ("multiline", endless_multiline, Q, "deferred", "4."),
    ("drip", drip, Q, "deferred", "4."),
    ("garbage", garbage, Q, "deferred", "4."),
    # A failed handshake under opportunistic TLS: again, in plaintext.
    ("tls-fails", tls_fails_later, D, "delivered", "2.0.0"),
    # Bytes behind the STARTTLS reply: no retry in plaintext, deferred.
    ("starttls-inject", starttls_injection, Q, "deferred", "4.7.0"),
    ("tls-stalls", tls_stalls, Q, "deferred", "4."),
]


def main():
    peers = {}
    sink = Peer(smtp_sink)  # the sender's domain: DSNs arrive here
    try:
        for name, handler, *_ in CASES:
            peers[name] = Peer(handler)
        routes = {"%s.test" % n: p.port for n, p in peers.items()}
        routes["dmta.test"] = sink.port
        sp = Spool(routes, "[queue]\nmin_backoff = 1h\n",
                   smtp="transaction_timeout = 3s\ntls = opportunistic\n")
        try:
            run(sp, peers, sink)
        finally:
            sp.close()
    finally:
        for p in list(peers.values()) + [sink]:
            p.stop()


def run(sp, peers, sink):
    msgs = [{"from": "s@dmta.test", "envid": "E-" + name,
             "to": ["u@%s.test" % name] + (["x@mixed.test"] if name == "mixed" else []),
             "data": "Subject: %s\r\nMessage-ID: <%s@faults.test>\r\n\r\n%s" %
             (name, name, ("line of %s\r\n" % name) * 20)} for name, *_ in CASES]
    ids = sp.inject(msgs)
    check(len(ids) == len(CASES), "got %d ids, want %d" % (len(ids), len(CASES)))
    byname = {c[0]: qid for c, qid in zip(CASES, ids)}
    d = sp.start()
    t0 = time.time()

    def settled():
        recs = sp.dlog()
        names = {r["to"].split("@")[1][:-5] for r in recs if r["to"].startswith("u@")}
        bounced = sum(1 for c in CASES if c[2] in (B, "mixed"))
        dsns = len(sink.got)
        return len(names) == len(CASES) and dsns >= bounced
    ok = wait_for(settled, 60, 0.2)
    time.sleep(0.5)  # let a duplicate DSN, if any, show
    out = sp.stop(d)
    print("settled in %.1f s" % (time.time() - t0))
    check(ok, "not every case reached an outcome within 60 s; log: %s\n%s"
          % (sp.dlog(), out[-3000:]))
    recs = sp.dlog()
    left = sp.listing()
    dsns = {}
    for raw in sink.got:
        per_msg, per_rcpt, returned = dsn_parts(raw)
        envid = per_msg.get("Original-Envelope-Id")
        check(envid is not None, "DSN without Original-Envelope-Id")
        check(envid not in dsns, "two DSNs for %s" % envid)
        dsns[envid] = (per_rcpt, returned)
    failures = []
    for name, _h, state, outcome, status in CASES:
        peer = peers[name]
        mine = [r for r in recs if r["to"] == "u@%s.test" % name]
        if peer.conns == 0:
            failures.append("%s: the receiver was never reached" % name)
            continue
        if not mine or mine[0]["outcome"] != outcome or not (mine[0].get("status") or "").startswith(status):
            failures.append("%s: got log %s, want outcome %s status %s*"
                            % (name, [(r["outcome"], r.get("status")) for r in mine], outcome, status))
            continue
        qid = byname[name]
        got = len(peer.got)
        if state == D:
            if got != 1 or qid in left:
                failures.append("%s: received %d times, %s; want once, gone from the spool"
                                % (name, got, "still queued" if qid in left else "gone"))
        elif state == "dup":
            if got != 1 or qid not in left:
                failures.append("%s: received %d times, queued %s; want once (a duplicate "
                                "to come, RFC 1047) and still queued" % (name, got, qid in left))
        elif state == Q:
            rc = left.get(qid, {}).get("recipients", [{}])[0]
            # Refused at the final dot: the receiver saw the body, took nothing.
            took = 1 if name.startswith("dot") else 0
            if got != took or rc.get("state") != "deferred" or not rc.get("reply"):
                failures.append("%s: received %d, spool %s; want %d received, deferred "
                                "with its reply" % (name, got, rc, took))
        elif state == "mixed":
            xs = [r for r in recs if r["to"] == "x@mixed.test"]
            per_rcpt = dsns.get("E-mixed", ([], None))[0]
            if (got != 1 or qid in left or len(xs) != 1 or xs[0]["outcome"] != "bounced"
                    or [r.get("Final-Recipient", "").lower() for r in per_rcpt]
                    != ["rfc822; x@mixed.test"]):
                failures.append("mixed: received %d, queued %s, x logged %s, DSN names %s; "
                                "want 1, gone, bounced, x alone"
                                % (got, qid in left, [r["outcome"] for r in xs],
                                   [r.get("Final-Recipient") for r in per_rcpt]))
        elif state == B:
            if qid in left or "E-" + name not in dsns:
                failures.append("%s: queued %s, DSN %s; want gone and one DSN"
                                % (name, qid in left, "E-" + name in dsns))
                continue
            per_rcpt, returned = dsns["E-" + name]
            fr = per_rcpt[0].get("Final-Recipient", "")
            if (len(per_rcpt) != 1 or fr.lower() != "rfc822; u@%s.test" % name
                    or per_rcpt[0].get("Action") != "failed"
                    or not per_rcpt[0].get("Status", "").startswith(status)):
                failures.append("%s: DSN fields %s" % (name, dict(per_rcpt[0])))
            if returned is None or returned.get("Message-ID") != "<%s@faults.test>" % name:
                failures.append("%s: DSN returns %s, want the message's headers"
                                % (name, returned and returned.get("Message-ID")))
        print("ok: %-14s %-9s %s, reached %d time(s)" % (name, state, outcome, peer.conns))
    extra = set(dsns) - {"E-" + c[0] for c in CASES if c[2] in (B, "mixed")}
    if extra:
        failures.append("DSNs for cases that did not bounce: %s" % sorted(extra))
    if failures:
        fail("\n  ".join([""] + failures))
    print("%d cases passed" % len(CASES))


if __name__ == "__main__":
    main()
