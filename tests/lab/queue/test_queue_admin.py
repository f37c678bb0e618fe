#!/usr/bin/python3
"""test_queue_admin.py - dmta-queue commands and the daemon wake-up socket.

Usage: test_queue_admin.py DMTA_SENDMAIL DMTA_QUEUE

Queues a few messages with dmta-sendmail while a stand-in for the daemon
listens on the spool's wake socket, then drives every dmta-queue command
with and without --json and checks the spool after each.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

SENDMAIL, QUEUE = sys.argv[1:3]
fails = []


def q(conf, *args, want=0):
    p = subprocess.run([QUEUE, "-c", conf] + list(args), capture_output=True, timeout=30)
    if p.returncode != want:
        fails.append("dmta-queue %s: got exit %d, want %d (%r)" % (" ".join(args), p.returncode, want, p.stderr))
    return p


def qj(conf, *args, want=0):
    p = q(conf, "--json", *args, want=want)
    try:
        return json.loads(p.stdout)
    except ValueError:
        fails.append("dmta-queue --json %s: not JSON: %r" % (" ".join(args), p.stdout[:200]))
        return {}


def main():
    d = tempfile.mkdtemp(prefix="dmta-t-queue-admin-")
    try:
        spool = os.path.join(d, "spool")
        conf = os.path.join(d, "dmta.conf")
        with open(conf, "w") as f:
            f.write("[spool]\npath = %s\n" % spool)
        os.mkdir(spool, 0o750)
        # A stand-in daemon: the wake socket must get one datagram per queued message.
        wake = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        wake.bind(os.path.join(spool, "wake.sock"))
        wake.settimeout(2)
        ids = []
        for i, rcpt in enumerate(["a@one.example", "b@two.example", "c@one.example"]):
            p = subprocess.run([SENDMAIL, "-C", conf, "-v", rcpt], input=b"Subject: %d\n\nbody\n" % i,
                               capture_output=True)
            ids.append(p.stderr.decode().split()[-1])
            try:
                if wake.recv(64) != b"wake":
                    fails.append("wake datagram is not 'wake'")
            except socket.timeout:
                fails.append("no wake-up after message %d" % i)
        p = subprocess.run([SENDMAIL, "-C", conf, "-q"], capture_output=True)
        if p.returncode != 0 or wake.recv(64) != b"flush":
            fails.append("sendmail -q with a daemon: got %d" % p.returncode)

        mailq = os.path.join(d, "mailq")
        os.symlink(os.path.abspath(SENDMAIL), mailq)
        p = subprocess.run([mailq, "-C", conf], capture_output=True)
        if p.returncode != 0 or p.stdout.count(b"[pending]") != 3:
            fails.append("run as mailq: got %d %r" % (p.returncode, p.stdout[:200]))
        lst = qj(conf, "list")
        if lst.get("count") != 3 or [m["id"] for m in lst["messages"]] != ids:
            fails.append("list: got %r, want ids %r" % (lst, ids))
        if b"Mail queue is empty" in q(conf, "list").stdout:
            fails.append("list (text) says empty")
        show = qj(conf, "show", ids[1])
        if show.get("recipients", [{}])[0].get("address") != "b@two.example":
            fails.append("show: got %r" % show)
        q(conf, "show", "FFFFFFFFFFFF", want=1)
        q(conf, "show", "not-an-id", want=64)
        if q(conf, "cat", ids[0]).stdout.count(b"\r\n") < 4:
            fails.append("cat: message not in CRLF form")

        held = qj(conf, "hold", ids[0])
        if held.get("held") != 1 or qj(conf, "show", ids[0]).get("held") is not True:
            fails.append("hold: got %r" % held)
        if qj(conf, "stats").get("held") != 1:
            fails.append("stats after hold")
        if wake.recv(64) != b"sync":
            fails.append("hold did not tell the daemon")
        if qj(conf, "release", "--all").get("released") != 3 or qj(conf, "stats").get("held") != 0:
            fails.append("release --all")
        if wake.recv(64) != b"sync":
            fails.append("release did not tell the daemon")
        fl = qj(conf, "flush", "one.example")
        if fl.get("flushed") != 2 or wake.recv(64) != b"flush one.example":
            fails.append("flush DOMAIN: got %r" % fl)
        st = qj(conf, "stats")
        if st.get("messages") != 3 or st.get("recipients") != 3 or st.get("pending") != 3:
            fails.append("stats: got %r" % st)
        ck = qj(conf, "check")
        if ck.get("ok") is not True or ck.get("messages") != 3:
            fails.append("check: got %r" % ck)
        de = qj(conf, "delete", "--domain", "one.example")
        if de.get("deleted") != 2 or qj(conf, "list").get("count") != 1:
            fails.append("delete --domain: got %r" % de)
        if wake.recv(64) != b"sync":
            fails.append("delete did not tell the daemon")
        q(conf, "delete", ids[0], want=1)  # already gone
        many = qj(conf, "delete", *["%012X" % (0xF00000 + i) for i in range(100)], want=1)
        if many.get("missing") != 100:
            fails.append("delete of 100 unknown ids: got %r" % many)
        if qj(conf, "delete", "--all").get("deleted") != 1 or qj(conf, "list").get("count") != 0:
            fails.append("delete --all")
        if b"Mail queue is empty" not in q(conf, "list").stdout:
            fails.append("list (text) after delete --all")
        # route resolves for real (tested against the lab's DNS server in
        # lab/core); here only its usage error, which sends no query.
        p = q(conf, "route", want=64)
        if b"which domain" not in p.stderr:
            fails.append("route: got %r" % p.stderr)
        q(conf, "frobnicate", want=64)
        wake.close()
        # -q with no daemon listening: 69, one line
        os.unlink(os.path.join(spool, "wake.sock"))
        p = subprocess.run([SENDMAIL, "-C", conf, "-q"], capture_output=True)
        if p.returncode != 69 or len(p.stderr.splitlines()) != 1:
            fails.append("sendmail -q without daemon: got %d %r" % (p.returncode, p.stderr))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    for f in fails:
        print("FAIL " + f)
    print("ok" if not fails else "%d failures" % len(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
