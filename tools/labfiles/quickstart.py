"""quickstart.py - the main job on the lab: inject, deliver, verify, summarise.

usage: quickstart.py BUILD_DIR WORK_DIR [COUNT]

Run by tools/quickstart with the lab up. Makes COUNT (default 10,000)
messages for four kinds of domain, injects them with dmta-inject, runs
dmtad until the queue is empty (a progress bar on the way), stops it, and
checks the outcome three ways: the delivery log, the Postfix Maildir (every
message for postfix.test there exactly once and byte-identical to what was
injected, and both its DKIM signatures verified by dkimpy against the keys
the lab's DNS publishes) and the sender's mailbox (one bounce per null-MX
message, with status 5.1.10). Exits 1 when any check fails.

Messages are signed at injection with the lab's keys for postfix.test
(tools/lab: selectors lab-ed, Ed25519, and lab-rsa, RSA-2048).
"""
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time

import dkim
import dns.resolver

BUILD, WORK = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/lab/core"))
from labutil import dsn_check, dsn_parse  # noqa: E402  (RFC 3464, Python's email package)
COUNT = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
STATE = "/run/dmta-lab"
MAILDIR = os.path.join(STATE, "postfix/mail/box/new")
SENDER = "newsletter@postfix.test"
TTY = sys.stdout.isatty()
failures = []


def say(msg=""):
    print(msg, flush=True)


def check(cond, msg):
    if not cond:
        failures.append(msg)
        say("  FAILED: " + msg)


def bar(done, total, t0, label):
    rate = done / max(time.time() - t0, 1e-3)
    width = 40
    fill = int(width * done / max(total, 1))
    line = "  [%s%s] %6d/%d  %7.0f msg/s  %s" % ("#" * fill, "." * (width - fill), done, total,
                                                  rate, label)
    if TTY:
        sys.stdout.write("\r" + line)
        sys.stdout.flush()
    return line


# --- the messages ---------------------------------------------------------
rnd = random.Random(2026)
# Recipients are new on every run: the greylisting receiver remembers the
# ones it has seen for as long as the lab is up.
RUN = "%x" % (int(time.time() * 1000) & 0xFFFFFFFF)
kinds = ["sink"] * 45 + ["postfix"] * 25 + ["tempfail"] * 25 + ["nullmx"] * 5
msgs = []
for i in range(COUNT):
    kind = rnd.choice(kinds)
    body_lines = ["Hello reader %d," % i, "", "This is message %d of the quickstart." % i,
                  ".a line that starts with a dot", "..and one with two",
                  "8-bit: gr\u00fc\u00dfe, \u00e7a va, \u00e5\u00e4\u00f6", ""]
    body_lines += ["filler %d %s" % (k, "x" * rnd.randint(0, 70)) for k in range(rnd.randint(5, 40))]
    text = ("X-Quickstart-Id: %d\nFrom: News <%s>\nTo: <reader%d.%s@%s.test>\n"
            "Subject: quickstart %d\nMessage-ID: <qs%d@dmta.test>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n%s\n"
            % (i, SENDER, i, RUN, kind, i, i, "\n".join(body_lines)))
    msgs.append({"kind": kind, "to": "reader%d.%s@%s.test" % (i, RUN, kind), "text": text})

BACKEND = os.environ.get("QUICKSTART_BACKEND", "dpdk")
conf = os.path.join(WORK, "dmta.conf")
spool = os.path.join(WORK, "spool")
# The lab's data-plane settings ([eal], [port], [net], [workers]), then ours.
lab_conf = "".join(l for l in open(os.path.join(STATE, "dmta.conf"))
                   if not l.startswith(("[dns]", "servers", "[spool]", "path")))
with open(conf, "w") as f:
    f.write(lab_conf + ("""
# The quickstart's dmtad: the lab's DNS; delivery over the DPDK port's
# userspace TCP (backend = dpdk) or the kernel's sockets (kernel).
[spool]
path = SPOOL_PATH
[dns]
servers = 198.18.1.53
[delivery]
backend = BACKEND_NAME
[smtp]
helo_name = dmta.test
[queue]
min_backoff = 2s
max_backoff = 10s
dest_max_connections = 8
[dkim postfix.test]
keys = lab-ed:DKIM_DIR/lab-ed.key, lab-rsa:DKIM_DIR/lab-rsa.key
""").replace("SPOOL_PATH", spool).replace("BACKEND_NAME", BACKEND)
            .replace("DKIM_DIR", os.path.join(STATE, "dkim")))

say("== injecting %d messages with dmta-inject" % COUNT)
t0 = time.time()
r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-c", conf],
                   input="".join(json.dumps({"from": SENDER, "to": [m["to"]], "data": m["text"]})
                                 + "\n" for m in msgs).encode(), capture_output=True, timeout=600)
say("  " + r.stderr.decode().strip().splitlines()[-1] if r.stderr else "")
if r.returncode != 0:
    say("quickstart: dmta-inject failed (exit %d)" % r.returncode)
    sys.exit(1)

maildir_before = set(os.listdir(MAILDIR)) if os.path.isdir(MAILDIR) else set()

say("\n== dmtad delivers the queue (backend = %s)" % BACKEND)
log = open(os.path.join(WORK, "dmtad.log"), "w")
d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=log,
                     stderr=subprocess.STDOUT)
t0 = time.time()
deadline = t0 + 240
total = COUNT
line = ""
settled_at = None
try:
    while time.time() < deadline:
        q = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf, "--json",
                            "stats"], capture_output=True, text=True, timeout=30)
        st = json.loads(q.stdout) if q.returncode == 0 and q.stdout.strip() else {}
        left = st.get("messages", total)
        # Bounces join the queue as new messages: count what has left it.
        line = bar(max(0, total - left), total, t0, "%d queued" % left)
        if left == 0:
            settled_at = time.time()
            break
        time.sleep(0.5)
finally:
    d.terminate()
    d.wait(timeout=60)
    log.close()
if TTY:
    sys.stdout.write("\n")
else:
    say(line)
elapsed = (settled_at or time.time()) - t0
check(settled_at is not None, "the queue did not settle within 240 s")
check(d.returncode == 0, "dmtad exit status %s" % d.returncode)

# --- what the delivery log says ------------------------------------------
final, attempts, dsn_lines = {}, {}, []
for l in open(os.path.join(spool, "delivery.log")):
    rec = json.loads(l)
    if rec["from"] == "":
        dsn_lines.append(rec)
        continue
    attempts.setdefault(rec["to"], []).append(rec["outcome"])
    if rec["outcome"] in ("delivered", "bounced"):
        check(rec["to"] not in final, "two final outcomes for %s" % rec["to"])
        final[rec["to"]] = rec

by_kind = {}
for m in msgs:
    rec = final.get(m["to"])
    out = rec["outcome"] if rec else "missing"
    by_kind.setdefault(m["kind"], {}).setdefault(out, 0)
    by_kind[m["kind"]][out] += 1
    want = "bounced" if m["kind"] == "nullmx" else "delivered"
    if out != want:
        check(False, "%s: %s, want %s" % (m["to"], out, want))
    elif m["kind"] == "nullmx":
        check(rec["status"] == "5.1.10", "%s bounced with %s, want 5.1.10" % (m["to"], rec["status"]))
    elif m["kind"] == "tempfail":
        check(attempts[m["to"]][:1] == ["deferred"], "%s was not deferred first" % m["to"])
retried = sum(1 for m in msgs if m["kind"] == "tempfail"
              and attempts.get(m["to"], [])[:1] == ["deferred"] and final.get(m["to"], {}).get("outcome") == "delivered")

# --- what Postfix put in the Maildir -------------------------------------
# (waited for below: Postfix's own queue drains into the Maildir)
want_pf = {}
for m in msgs:
    if m["kind"] == "postfix":
        tail = m["text"]
        want_pf[m["text"].split("\n", 1)[0].split(": ")[1]] = hashlib.sha256(tail.encode()).hexdigest()
# Each bounce, parsed as RFC 3464, names exactly its null-MX recipient.
want_dsn = {"<qs%d@dmta.test>" % i: {m["to"]: "5.1.10"} for i, m in enumerate(msgs)
            if m["kind"] == "nullmx" and final.get(m["to"], {}).get("outcome") == "bounced"}
got_pf, dsns, dsn_status, dsn_seen = {}, 0, [], set()
deadline = time.time() + 60
while True:
    names = sorted(set(os.listdir(MAILDIR)) - maildir_before)
    if len(names) >= len(want_pf) + by_kind.get("nullmx", {}).get("bounced", 0) or time.time() > deadline:
        break
    time.sleep(0.5)
# DKIM: each signature of each message checked alone, keys from the lab's DNS.
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["198.18.1.53"]
resolver.lifetime = 5
txt_cache = {}


def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    if n not in txt_cache:
        try:
            txt_cache[n] = b"".join(b"".join(r.strings) for r in resolver.resolve(n, "TXT"))
        except Exception:
            txt_cache[n] = b""
    return txt_cache[n]


def dkim_results(raw):
    """(signatures that verify, signatures): Maildir files end lines with LF."""
    msg = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head = msg.split(b"\r\n\r\n", 1)[0]
    n = len(re.findall(rb"(?im)^DKIM-Signature:", head))
    d = dkim.DKIM(msg)
    ok = 0
    for i in range(n):
        try:
            ok += bool(d.verify(idx=i, dnsfunc=dnsfunc))
        except dkim.DKIMException:
            pass
    return ok, n


dkim_ok = dkim_total = dkim_msgs = 0
dups = 0
for n in names:
    data = open(os.path.join(MAILDIR, n), "rb").read().decode("utf-8", "replace")
    raw = open(os.path.join(MAILDIR, n), "rb").read()
    if dsn_parse(raw) is not None:
        mid, rcpts = dsn_check(raw, want_dsn)
        check(mid not in dsn_seen, "two bounces for %s" % mid)
        dsn_seen.add(mid)
        dsns += 1
        dsn_status += list(rcpts.values())
        continue
    k = data.find("X-Quickstart-Id: ")
    if k < 0:
        continue
    qid = data[k:].split("\n", 1)[0].split(": ")[1]
    if qid in got_pf:
        dups += 1
    ok, total = dkim_results(open(os.path.join(MAILDIR, n), "rb").read())
    dkim_msgs += 1
    dkim_ok += ok
    dkim_total += total
    check(total == 2 and ok == 2, "message %s: %d of %d DKIM signatures verify, want 2 of 2"
          % (qid, ok, total))
    got_pf[qid] = hashlib.sha256(data[k:].encode()).hexdigest()
identical = sum(1 for k, h in want_pf.items() if got_pf.get(k) == h)
check(dups == 0, "%d messages arrived twice in the Maildir" % dups)
check(identical == len(want_pf), "%d of %d postfix.test messages byte-identical in the Maildir"
      % (identical, len(want_pf)))
nullmx = by_kind.get("nullmx", {}).get("bounced", 0)
check(dsns == nullmx, "%d bounces in the sender's mailbox, want %d" % (dsns, nullmx))
check(all(s == "5.1.10" for s in dsn_status), "bounce statuses: %s" % sorted(set(dsn_status)))

# --- the summary ----------------------------------------------------------
delivered = sum(v.get("delivered", 0) for v in by_kind.values())
say("\n== summary")
say("  messages injected             %6d" % COUNT)
say("  delivered                     %6d  (%d of them deferred first, then delivered)" % (delivered, retried))
say("  bounced                       %6d  (null MX, 5.1.10)" % nullmx)
say("  bounces in sender's mailbox   %6d  (%s)" % (dsns, SENDER))
for k in sorted(by_kind):
    say("    %-10s %s" % (k + ".test", ", ".join("%s %d" % kv for kv in sorted(by_kind[k].items()))))
say("  Maildir check                 %6d of %d byte-identical, %d duplicates" % (identical, len(want_pf), dups))
say("  DKIM (dkimpy, lab DNS)        %6d of %d signatures verify (Ed25519 and RSA-2048, %d messages)"
    % (dkim_ok, dkim_total, dkim_msgs))
say("  time to settle                %6.1f s  (%.0f messages/s, retries and bounces included)"
    % (elapsed, COUNT / max(elapsed, 1e-3)))
say("  delivery log                  %s" % os.path.join(spool, "delivery.log"))
if failures:
    say("\nquickstart: %d checks FAILED" % len(failures))
    sys.exit(1)
say("\nquickstart: all checks passed")
