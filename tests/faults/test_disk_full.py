"""The spool's disk full (a small tmpfs mounted here) and its LMDB map
full: injection refuses with EX_TEMPFAIL and leaves what it accepted
intact, dmtad goes on (deferring what it cannot write down), nothing
accepted is lost, and all of it is delivered, once, when space returns.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from faultlib import (EX_TEMPFAIL, INJECT, Peer, Spool, check, dsn_parts, fail,  # noqa: E402
                      msg_seq, smtp_sink, wait_for)

BODY = "x" * 70 + "\r\n"


def batch(first, n, size_kb=32):
    return [{"from": "s@dmta.test", "to": ["u%d@sink.test" % i],
             "data": "Subject: full %d\r\nX-Seq: %d\r\n\r\n%s" % (i, i, BODY * (size_kb * 1024 // 72))}
            for i in range(first, first + n)]


def fill(sp, limit=400):
    """Inject batches of 8 until injection says EX_TEMPFAIL; the sequence
    numbers accepted."""
    import json
    accepted = []
    seq = 0
    for _ in range(limit):
        r = subprocess.run([INJECT, "-q", "--ids", "-c", sp.conf],
                           input="".join(json.dumps(m) + "\n" for m in batch(seq, 8)),
                           capture_output=True, text=True, timeout=60)
        if r.returncode == EX_TEMPFAIL:
            check("full" in r.stderr.lower() or "space" in r.stderr.lower(),
                  "EX_TEMPFAIL without saying why: %r" % r.stderr)
            check(r.stdout.strip() == "", "ids printed for a refused batch: %r" % r.stdout)
            return accepted, seq
        check(r.returncode == 0, "dmta-inject: exit %d: %s" % (r.returncode, r.stderr))
        accepted += list(range(seq, seq + 8))
        seq += 8
    fail("the spool never filled up")


def refusing(every):
    """RCPT replies: u<N>@ with N a multiple of @every is refused (a DSN is due)."""
    def reply(line):
        m = re.match(rb"RCPT TO:<u(\d+)@", line, re.I)
        if m and int(m.group(1)) % every == 0:
            return b"550 5.1.1 no such user\r\n"
        return b"250 2.1.5 ok\r\n"
    return reply


def sink_peer(every):
    return Peer(lambda conn, peer: smtp_sink(conn, peer, rcpt_reply=refusing(every)))


def deliver_all(sp, sink, accepted, relieve, must_fail, every):
    """dmtad runs while the spool is full (every @every-th recipient
    refused, so DSNs must be written), then @relieve() makes room. Every
    accepted message must arrive exactly once, or bounce with exactly one
    DSN."""
    before = sp.stats()["messages"]
    check(before == len(accepted), "spool holds %d messages after the refusal, want the %d "
          "accepted" % (before, len(accepted)))
    d = sp.start()
    if must_fail:
        # Let it meet the full disk: a commit with DSNs fails, it pauses.
        met = wait_for(lambda: "spool update failed" in "".join(d.out), 30)
        check(met, "dmtad never met the full disk:\n" + "".join(d.out)[-2000:])
    relieve()
    bounced = {s for s in accepted if s % every == 0}
    ok = wait_for(lambda: sp.stats()["messages"] == 0 and
                  sum(b"multipart/report" in g for g in sink.got) >= len(bounced), 120, 0.5)
    out = sp.stop(d)
    check(ok, "not everything settled 120 s after space returned: %s\n%s"
          % (sp.stats(), out[-2000:]))
    seen, dsn = {}, {}
    for raw in sink.got:
        if b"multipart/report" in raw:
            _, per_rcpt, _ = dsn_parts(raw)
            for r in per_rcpt:
                n = int(re.match(r"rfc822; u(\d+)@", r["Final-Recipient"]).group(1))
                check(r["Action"] == "failed", "DSN for u%d: Action %s" % (n, r["Action"]))
                dsn[n] = dsn.get(n, 0) + 1
        else:
            seen[msg_seq(raw)] = seen.get(msg_seq(raw), 0) + 1
    want = set(accepted) - bounced
    missing = sorted(want - set(seen))
    dups = {s: c for s, c in seen.items() if c > 1}
    check(not missing, "accepted but never delivered: %s" % missing[:10])
    check(not dups, "delivered more than once (no kill here): %s" % list(dups.items())[:10])
    check(set(seen) == want, "delivered but not to be: %s" % sorted(set(seen) - want)[:10])
    check(set(dsn) == bounced and all(c == 1 for c in dsn.values()),
          "DSNs %s, want one for each of %s" % (sorted(dsn.items())[:10], sorted(bounced)[:10]))
    print("%d delivered once, %d bounced with one DSN each" % (len(seen), len(dsn)))
    return out


def disk_full():
    tmp = tempfile.mkdtemp(prefix="dmta-faults-disk-")
    mnt = os.path.join(tmp, "fs")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0750", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("cannot mount a tmpfs (root needed): %s" % r.stderr.strip())
    sink = sink_peer(1)
    sp = None
    try:
        sp = Spool({"sink.test": sink.port, "dmta.test": sink.port}, "[queue]\nmin_backoff = 1s\nmax_backoff = 2s\n",
                   tmp=tmp, spool=os.path.join(mnt, "spool"))
        accepted, _ = fill(sp)
        # The last bytes too: no spool update can find a page to write.
        try:
            with open(os.path.join(mnt, "filler"), "wb", buffering=0) as f:
                while True:
                    f.write(b"\0" * 4096)
        except OSError:
            pass  # ENOSPC: full to the last page
        print("disk full after %d messages" % len(accepted))

        def relieve():
            subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
        # Every recipient refused: no delivery frees pages before the DSNs
        # need them, so the first spool update fails.
        out = deliver_all(sp, sink, accepted, relieve, True, 1)
        check("deliveries resume" in out, "dmtad never said it recovered:\n" + out[-2000:])
        print("ok: disk full")
    finally:
        if sp is not None:
            for p in sp.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        subprocess.run(["umount", mnt])
        sink.stop()
        if sp is not None:
            sp.close()


def map_full():
    sink = sink_peer(4)
    sp = Spool({"sink.test": sink.port, "dmta.test": sink.port}, "[queue]\nmin_backoff = 1s\nmax_backoff = 2s\n")
    try:
        with open(sp.conf, "a") as f:
            f.write("[spool]\nmap_size = 2m\n")
        # The [spool] section again would be a second one: rewrite instead.
        text = open(sp.conf).read().replace("[spool]\nmap_size = 2m\n", "")
        text = text.replace("[spool]\n", "[spool]\nmap_size = 2m\n", 1)
        open(sp.conf, "w").write(text)
        accepted, seq = fill(sp)
        print("map full after %d messages" % len(accepted))
        # Delivery frees the map: injection works again afterwards.
        deliver_all(sp, sink, accepted, lambda: None, False, 4)
        more = sp.inject(batch(seq, 8))
        check(len(more) == 8, "after the map emptied: %d of 8 accepted" % len(more))
        print("ok: map full")
    finally:
        sp.close()
        sink.stop()


if __name__ == "__main__":
    disk_full()
    map_full()
