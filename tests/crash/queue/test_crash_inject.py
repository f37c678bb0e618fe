#!/usr/bin/python3
"""test_crash_inject.py - kill -9 the injectors at random points.

Usage: test_crash_inject.py DMTA_SENDMAIL DMTA_INJECT SPOOL_HASHES DMTA_QUEUE [ROUNDS]

Alternates rounds of dmta-inject (a stream of messages, random batch sizes)
and of several dmta-sendmail processes at once (large messages, so that
kills land inside LMDB writes and while the writer lock is held), killing
them with SIGKILL after a random delay; every third round also kills
dmta-queue while it rewrites every envelope (hold/release --all). After
every round the spool must
open, pass its consistency check, hold every message an injector
acknowledged (exit 0 for sendmail, an "LINE ID" line for dmta-inject) with
the same SHA-256, and hold nothing that is not one of the messages offered
(no partial message is ever visible). The random seed is printed so a
failure can be replayed (DMTA_CRASH_SEED).
"""
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SENDMAIL, INJECT, HASHES, QUEUE = sys.argv[1:5]
ROUNDS = int(sys.argv[5]) if len(sys.argv) > 5 else 60
DEADLINE = time.monotonic() + 100
stats = {"admin_killed": 0, "admin_done": 0, "inject_partial": 0, "inject_none": 0, "inject_all": 0, "sendmail_ok": 0, "sendmail_killed": 0}  # hard stop well inside meson's timeout


def make_msg(tag, size):
    """A message that needs no repair, so the stored bytes are these bytes."""
    head = ("From: crash@test.example\r\nTo: rcpt@test.example\r\n"
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <%s@test.example>\r\n"
            "Subject: %s\r\n\r\n" % (tag, tag)).encode()
    line = (tag * 80)[:76].encode() + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


def spool_state(spool):
    # An injector killed before it created the spool leaves none: nothing
    # was accepted, and what was acknowledged is checked against {}.
    if not os.path.exists(spool):
        return {}
    p = subprocess.run([HASHES, spool], capture_output=True, timeout=60)
    lines = p.stdout.decode().splitlines()
    if p.returncode != 0 or not lines or not lines[-1].startswith("check "):
        raise AssertionError("spool check failed (exit %d): %s %s" %
                             (p.returncode, lines[-1:] if lines else "", p.stderr.decode()))
    got = {}
    for ln in lines[:-1]:
        qid, digest, _ = ln.split()
        got[qid] = digest
    return got


def inject_round(rng, conf, offered, acked, r):
    n = rng.randint(200, 1500)
    msgs = []
    for i in range(n):
        m = make_msg("i%03d-%04d-" % (r, i), rng.choice([384, 512, 1024, 4096]))
        offered.add(hashlib.sha256(m).hexdigest())
        msgs.append(m)
    batch = rng.choice([1, 4, 16, 64, 500])
    p = subprocess.Popen([INJECT, "-c", conf, "-q", "--ids", "-b", str(batch)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)

    def feed():
        try:
            for i, m in enumerate(msgs):
                line = '{"from":"crash@test.example","to":["rcpt@test.example"],"data":"%s"}\n' % (
                    m.decode().replace("\r", "\\r").replace("\n", "\\n"))
                p.stdin.write(line.encode())
            p.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    t = threading.Thread(target=feed)
    t.start()
    time.sleep(rng.uniform(0.0, 0.25))
    p.send_signal(signal.SIGKILL)
    out = p.stdout.read().decode()
    p.wait()
    t.join()
    got = 0
    for ln in out.splitlines():
        m = re.match(r"(\d+) ([0-9A-F]+)$", ln)
        if not m:
            continue  # a line cut by the kill is no acknowledgement
        acked[m.group(2)] = hashlib.sha256(msgs[int(m.group(1)) - 1]).hexdigest()
        got += 1
    stats["inject_partial" if 0 < got < n else ("inject_none" if got == 0 else "inject_all")] += 1


def sendmail_round(rng, conf, offered, acked, r):
    procs = []
    for k in range(4):
        m = make_msg("s%03d-%d-" % (r, k), rng.choice([4096, 65536, 262144, 1048576]))
        offered.add(hashlib.sha256(m).hexdigest())
        p = subprocess.Popen([SENDMAIL, "-C", conf, "-v", "-i", "rcpt@test.example"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        procs.append((p, m))
    for p, m in procs:
        try:
            p.stdin.write(m)
            p.stdin.close()
        except BrokenPipeError:
            pass
    time.sleep(rng.uniform(0.0, 0.03))
    for p, m in procs:
        p.send_signal(signal.SIGKILL)
    for p, m in procs:
        err = p.stderr.read().decode()
        rc = p.wait()
        stats["sendmail_ok" if rc == 0 else "sendmail_killed"] += 1
        if rc == 0:
            mm = re.search(r"queued as ([0-9A-F]+)", err)
            if not mm:
                raise AssertionError("sendmail exited 0 without a queue id: %r" % err)
            acked[mm.group(1)] = hashlib.sha256(m).hexdigest()


def admin_kill(rng, conf):
    """Kill dmta-queue in the middle of rewriting every envelope."""
    p = subprocess.Popen([QUEUE, "-c", conf, rng.choice(["hold", "release"]), "--all"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0.0, 0.05))
    p.send_signal(signal.SIGKILL)
    rc = p.wait()
    stats["admin_killed" if rc < 0 else "admin_done"] += 1


def main():
    seed = int(os.environ.get("DMTA_CRASH_SEED", random.randrange(1 << 30)))
    print("seed %d" % seed)
    rng = random.Random(seed)
    d = tempfile.mkdtemp(prefix="dmta-t-queue-crash-")
    spool = os.path.join(d, "spool")
    conf = os.path.join(d, "dmta.conf")
    with open(conf, "w") as f:
        f.write("[spool]\npath = %s\nmessage_size_limit = 4M\n" % spool)
    offered, acked = set(), {}
    kills = 0
    try:
        for r in range(ROUNDS):
            if time.monotonic() > DEADLINE:
                print("time budget spent after %d rounds" % r)
                break
            if r % 2 == 0:
                inject_round(rng, conf, offered, acked, r)
                kills += 1
            else:
                sendmail_round(rng, conf, offered, acked, r)
                kills += 4
            if r % 3 == 2:
                admin_kill(rng, conf)
                kills += 1
            got = spool_state(spool)
            for qid, digest in acked.items():
                if qid not in got:
                    raise AssertionError("round %d: acknowledged %s is missing" % (r, qid))
                if got[qid] != digest:
                    raise AssertionError("round %d: %s differs from what was acknowledged" % (r, qid))
            for qid, digest in got.items():
                if digest not in offered:
                    raise AssertionError("round %d: %s holds bytes never offered (partial write?)" % (r, qid))
        # The writer lock must still work after all of this.
        m = make_msg("final-", 1024)
        p = subprocess.run([SENDMAIL, "-C", conf, "-v", "rcpt@test.example"], input=m,
                           capture_output=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError("sendmail after the kills: exit %d %r" % (p.returncode, p.stderr))
        got = spool_state(spool)
        print("%d processes killed in %d rounds; %d messages acknowledged, %d in the spool, all intact"
              % (kills, r + 1, len(acked), len(got)))
        print(" ".join("%s=%d" % kv for kv in sorted(stats.items())))
        if kills < 50:
            raise AssertionError("only %d kills" % kills)
    except AssertionError as e:
        print("FAIL (seed %d): %s" % (seed, e))
        return 1
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
