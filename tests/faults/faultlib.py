"""Helpers for the faults suite: a spool and dmtad (backend = kernel) of
the test's own, SMTP peers on loopback that misbehave as asked, and the
checks every case ends with: each accepted message delivered exactly once
(a duplicate only where RFC 1047 allows it, counted), bounced with a DSN
that an RFC 3464 parser (Python's email package) matches to its message
and recipient, or still queued.

Every process started here is remembered by PID and stopped by PID; every
wait is bounded in time; traffic goes to 127.0.0.1 only.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("DMTA_BUILD") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "../../build"))
DMTAD = os.path.join(BUILD, "core/dmtad")
INJECT = os.path.join(BUILD, "tools/queue/dmta-inject")
QUEUE = os.path.join(BUILD, "tools/queue/dmta-queue")
SENDMAIL = os.path.join(BUILD, "tools/queue/dmta-sendmail")

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL = 64, 65, 67, 75

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lab/core"))
from labutil import check, dsn_parse, fail  # noqa: E402,F401 (the lab's helpers, no lab needed)


def wait_for(cond, secs, step=0.05):
    """Poll @cond until it holds or @secs pass; its last value."""
    end = time.time() + secs
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


class Peer:
    """A TCP server on 127.0.0.1 that runs @handler(conn, peer) for each
    connection, in a thread of its own. Counts connections; handlers put
    what they took into peer.got (message bytes) under peer.lock."""

    def __init__(self, handler):
        self.handler = handler
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.got = []
        self.conns = 0
        self.inject = False
        self.stop_ev = threading.Event()
        self.threads = []
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        self.lsock.settimeout(0.1)
        while not self.stop_ev.is_set():
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.conns += 1
            t = threading.Thread(target=self._one, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _one(self, conn):
        conn.settimeout(30)
        try:
            self.handler(conn, self)
        except (OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self.stop_ev.set()
        self.lsock.close()
        self.t.join(5)


def read_body(f, cut=0):
    """The message after DATA's 354, up to the final dot, dot-unstuffed:
    (bytes, True), or (what came, False) when the connection ended first
    or, with @cut, after @cut lines (the caller then closes)."""
    body = []
    while True:
        l = f.readline()
        if l == b".\r\n":
            return b"".join(body), True
        if l == b"":
            return b"".join(body), False
        body.append(l[1:] if l.startswith(b"..") else l)
        if cut and len(body) >= cut:
            return b"".join(body), False


def smtp_sink(conn, peer, rcpt_reply=None, delay=0):
    """A plain, correct receiver: takes every message (kept in peer.got),
    @delay seconds before each final reply."""
    f = conn.makefile("rb")
    conn.sendall(b"220 sink.test ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line[:4].upper()
        if cmd == b"DATA":
            conn.sendall(b"354 go on\r\n")
            body, whole = read_body(f)
            if not whole:
                return
            if delay:
                time.sleep(delay)
            with peer.lock:
                peer.got.append(body)
            conn.sendall(b"250 2.0.0 queued\r\n")
        elif cmd == b"QUIT":
            conn.sendall(b"221 2.0.0 bye\r\n")
            return
        elif cmd in (b"EHLO", b"HELO"):
            conn.sendall(b"250 sink.test\r\n")
        elif cmd == b"RCPT" and rcpt_reply:
            conn.sendall(rcpt_reply(line))
        else:
            conn.sendall(b"250 2.0.0 ok\r\n")


class Spool:
    """A temporary spool with a dmtad configuration: backend = kernel,
    [routes] from @routes (domain -> port on 127.0.0.1), more sections in
    @extra. Removed by close()."""

    def __init__(self, routes, extra="", tmp=None, spool=None, smtp="tls = none\n"):
        self.tmp = tmp or tempfile.mkdtemp(prefix="dmta-faults-")
        self.spool = spool or os.path.join(self.tmp, "spool")
        self.conf = os.path.join(self.tmp, "dmta.conf")
        self.write_conf(routes, extra, smtp)
        self.procs = []

    def write_conf(self, routes, extra="", smtp="tls = none\n"):
        """@extra: whole sections; @smtp: lines of the [smtp] section."""
        r = "".join("%s = 127.0.0.1:%d\n" % (d, p) for d, p in routes.items())
        with open(self.conf, "w") as f:
            f.write("[spool]\npath = %s\n[dns]\nservers = 127.0.0.1:1\n[routes]\n%s"
                    "[delivery]\nbackend = kernel\n[smtp]\nhelo_name = dmta.test\n%s"
                    "connect_timeout = 2s\n[control]\nstop_timeout = 2s\nstats_interval = 250ms\n"
                    "%s" % (self.spool, r, smtp, extra))

    def inject(self, msgs, want_rc=0):
        """dmta-inject @msgs (dicts); the queue ids accepted, in order."""
        r = subprocess.run([INJECT, "-q", "--ids", "-c", self.conf],
                           input="".join(json.dumps(m) + "\n" for m in msgs),
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == want_rc, "dmta-inject: got exit %d, want %d: %s"
              % (r.returncode, want_rc, r.stderr.strip()[:500]))
        return [l.split()[1] for l in r.stdout.splitlines() if l.strip()]

    def stats(self):
        q = subprocess.run([QUEUE, "-c", self.conf, "--json", "stats"], capture_output=True,
                           text=True, timeout=180)
        check(q.returncode == 0, "dmta-queue stats: exit %d: %s" % (q.returncode, q.stderr))
        return json.loads(q.stdout)

    def listing(self):
        """{queue id: envelope as dmta-queue --json list gives it}."""
        q = subprocess.run([QUEUE, "-c", self.conf, "--json", "list"], capture_output=True,
                           text=True, timeout=60)
        check(q.returncode == 0, "dmta-queue list: exit %d: %s" % (q.returncode, q.stderr))
        return {e["id"]: e for e in json.loads(q.stdout)["messages"]}

    def dlog(self):
        """The delivery log's records."""
        recs = []
        try:
            with open(os.path.join(self.spool, "delivery.log")) as f:
                for line in f:
                    if line.strip():
                        recs.append(json.loads(line))
        except FileNotFoundError:
            pass
        return recs

    def start(self):
        """dmtad, once it says it is ready."""
        d = subprocess.Popen([DMTAD, "-c", self.conf], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        self.procs.append(d)
        lines = []
        end = time.time() + 60
        while time.time() < end:
            line = d.stdout.readline()
            if not line:
                break
            lines.append(line)
            if ": ready:" in line:
                break
        if not lines or ": ready:" not in lines[-1]:
            d.kill()
            d.wait()
            fail("dmtad did not start:\n" + "".join(lines))
        d.out = lines
        d.reader = threading.Thread(target=self._drain, args=(d,), daemon=True)
        d.reader.start()
        return d

    @staticmethod
    def _drain(d):
        for line in d.stdout:
            d.out.append(line)

    def stop(self, d, timeout=30):
        """SIGTERM; check a clean exit and no sanitizer report."""
        if d.poll() is None:
            d.terminate()
        try:
            d.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            where = subprocess.run(["gdb", "-batch", "-p", str(d.pid), "-ex", "thread apply all bt"],
                                   capture_output=True, text=True, timeout=60).stdout \
                if shutil.which("gdb") else ""
            d.kill()
            d.wait()
            fail("dmtad did not stop within %d s of SIGTERM:\n%s\n%s"
                 % (timeout, "".join(d.out)[-2000:], where[-3000:]))
        d.reader.join(5)
        out = "".join(d.out)
        check(d.returncode == 0, "dmtad exit %d after SIGTERM:\n%s" % (d.returncode, out[-3000:]))
        check_clean(out)
        return out

    def kill9(self, d):
        d.kill()
        d.wait()
        d.reader.join(5)
        check_clean("".join(d.out))

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def check_clean(out):
    for bad in ("AddressSanitizer", "runtime error", "LeakSanitizer", "panic"):
        check(bad not in out, "dmtad said %r:\n%s" % (bad, out[-3000:]))


def dsn_parts(raw):
    """An RFC 3464 report parsed (labutil.dsn_parse): (per-message fields,
    [per-recipient fields], the returned message's headers or None)."""
    rep = dsn_parse(raw)
    check(rep is not None, "not a delivery-status report: %r" % raw[:300])
    return rep


def msg_seq(raw):
    """The X-Seq header a test put in its message."""
    m = re.search(rb"^X-Seq: (\d+)\r?$", raw, re.M)
    return int(m.group(1)) if m else None
