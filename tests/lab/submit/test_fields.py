"""Lab: a message's pool, priority and tenant from every way in.

dmtad runs with the lab's configuration (kernel backend, the lab's DNS),
a submission listener (STARTTLS + AUTH) and DKIM signing for fields.test.
Messages carrying X-Dmta-Pool, X-Dmta-Priority and X-Dmta-Tenant (one of
them folded, and a body line that looks like one) go in through swaks over
SMTP AUTH and through dmta-sendmail, each to a mailbox at postfix.test (the
lab's Postfix, which delivers into a Maildir) and to one at tempfail.test
(which defers first attempts, so the message stays queued). Checked:

- what Postfix stored is the message as submitted, byte for byte, without
  the three fields (the body line stays), behind only the trace fields and
  DKIM-Signature that dmta and Postfix prepend; the signature verifies
  (dkimpy, the key given to it directly), so the fields were removed
  before signing;
- dmta-queue show (text and --json) and list --json show the fields the
  headers chose over the [user NAME] defaults, and the defaults alone for
  a message without fields (AUTH user u1; local user root for sendmail);
  dmta-inject's JSON fields win over a header in its data;
- bad values are refused with the reason: swaks hears 550 5.6.0,
  dmta-sendmail exits 65, dmta-sendmail -bs answers 550 5.6.0, a
  dmta-inject line is refused; nothing of them is queued. So is a pool
  with no [pool NAME] section, each way.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../core"))
from labutil import (BUILD, check, dmtad_conf, dmtad_start, free_port, lab,  # noqa: E402
                     listener_files)

import dkim  # noqa: E402  (python3-dkim)

MAILDIR = "/run/dmta-lab/postfix/mail/box/new"  # postfix.test's mailbox
TOOLS = os.path.join(BUILD, "tools/queue")
TAG = "%d-%d" % (os.getpid(), int(time.time()))  # fresh addresses for the greylister


def crlf(text):
    return text.replace("\n", "\r\n").encode()


def swaks(port, rcpts, data_path):
    cmd = ["swaks", "--server", "127.0.0.1:%d" % port, "--tls", "--auth", "PLAIN",
           "--auth-user", "u1", "--auth-password", "secret one", "--from", "a@fields.test",
           "--to", ",".join(rcpts), "--data", "@" + data_path]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def queue(*args):
    r = subprocess.run([os.path.join(TOOLS, "dmta-queue"), "-c", conf, *args],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "dmta-queue %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                             r.stderr))
    return r.stdout


def show(qid, pool, prio, tenant, what):
    """dmta-queue show, text and JSON, names exactly these fields."""
    text = queue("show", qid)
    got = {k: v for k, v in re.findall(r"^(pool|priority|tenant): (\S+)$", text, re.M)}
    want = {k: v for k, v in (("pool", pool), ("priority", prio), ("tenant", tenant))
            if v is not None and not (k == "priority" and v == "normal")}
    check(got == want, "%s: dmta-queue show %s: got %s, want %s\n%s" % (what, qid, got, want,
                                                                      text))
    j = json.loads(queue("--json", "show", qid))
    got = (j.get("pool"), j.get("priority"), j.get("tenant"))
    check(got == (pool, prio, tenant), "%s: show --json: got %s, want %s" %
          (what, got, (pool, prio, tenant)))


def delivered(mid, timeout=90):
    """The bytes Postfix stored for Message-ID @mid (None after @timeout s)."""
    end = time.time() + timeout
    while time.time() < end:
        for n in os.listdir(MAILDIR) if os.path.isdir(MAILDIR) else []:
            p = os.path.join(MAILDIR, n)
            try:
                data = open(p, "rb").read()
            except FileNotFoundError:
                continue
            if ("Message-ID: <%s@fields.test>" % mid).encode() in data:
                return data
        time.sleep(0.5)
    return None


def check_delivered(mid, sent, what):
    """Postfix's copy is @sent without the X-Dmta-* fields, behind trace
    fields and a DKIM signature that verifies."""
    data = delivered(mid)
    check(data is not None, "%s: nothing arrived at postfix.test with Message-ID <%s>; dmtad:\n%s"
          % (what, mid, "".join(out_lines[-30:])))
    want = re.sub(rb"(?mi)^X-Dmta-[A-Za-z]+:.*\n(?:[ \t].*\n)*", b"", sent.split(b"\n\n", 1)[0] +
                  b"\n") + b"\n" + sent.split(b"\n\n", 1)[1]
    check(b"X-Dmta-Pool: stays in the body" in want, "test message lost its body line")
    check(data.endswith(want), "%s: Postfix stored\n%s\nwant it to end with\n%s" %
          (what, data.decode(errors="replace"), want.decode(errors="replace")))
    before = data[:len(data) - len(want)]
    names = re.findall(rb"(?m)^([^ \t:]+):", before)
    check(set(n.lower() for n in names) <= {b"return-path", b"x-original-to", b"delivered-to", b"received",
                                            b"dkim-signature"} and b"DKIM-Signature" in names,
          "%s: fields prepended: %r, want trace fields and DKIM-Signature" % (what, names))
    ok = dkim.verify(data.replace(b"\n", b"\r\n"), dnsfunc=lambda name, timeout=5: txt)
    check(ok, "%s: the DKIM signature does not verify after delivery" % what)
    print("ok: %s arrived without X-Dmta-* fields, byte-exact otherwise, DKIM valid" % what)


lab("up")
tmp = tempfile.mkdtemp(prefix="dmta-fields-")
os.chmod(tmp, 0o755)
conf = os.path.join(tmp, "dmta.conf")
spool = os.path.join(tmp, "spool")
cert, key, users = listener_files(tmp)
keys = os.path.join(tmp, "keys")
os.mkdir(keys, 0o700)
r = subprocess.run([os.path.join(TOOLS, "dmta-dkim"), "genkey", "--type", "rsa", "--selector",
                    "s1", "--domain", "fields.test", "--out", keys], capture_output=True,
                   text=True)
check(r.returncode == 0, "dmta-dkim genkey: exit %d: %s" % (r.returncode, r.stderr))
txt = "".join(re.findall(r'"([^"]*)"', r.stdout)).encode()
check(txt.startswith(b"v=DKIM1;"), "dmta-dkim genkey printed no record: %r" % r.stdout)

P_SUB = free_port()
dmtad_conf(conf, spool, "kernel", """[smtp]
helo_name = dmta.test
[queue]
myhostname = dmta.test
[listen]
submission = 127.0.0.1:%d
tls_cert = %s
tls_key = %s
users = %s
[dkim fields.test]
keys = s1:%s/s1.key
[user u1]
priority = bulk
tenant = u1-default
[user root]
pool = root-pool
priority = high
[pool root-pool]
sources = default
[pool egress-a]
sources = default
[pool inj-pool]
sources = default
""" % (P_SUB, cert, key, users, keys))

HEAD = ("From: Sender <a@fields.test>\n"
        "To: someone@postfix.test\n"
        "Subject: fields %s\n"
        "Date: Tue, 01 Dec 2026 12:00:00 +0000\n"
        "Message-ID: <%s@fields.test>\n")
BODY = ("\n"
        "X-Dmta-Pool: stays in the body\n"
        "a line\n")

d = dmtad_start(conf)
out_lines = []
reader = threading.Thread(target=lambda: out_lines.extend(d.stdout), daemon=True)
reader.start()
try:
    # SMTP AUTH: the fields (one folded) amid others, over u1's defaults.
    mid_a = "a-" + TAG
    text_a = (HEAD % ("smtp", mid_a)).replace(
        "Subject:", "X-Dmta-Pool: egress-a\nX-Dmta-Tenant:\n\tshop-1\nSubject:") + \
        "X-Dmta-Priority: HIGH\nMIME-Version: 1.0\n" + BODY
    path_a = os.path.join(tmp, "a.eml")
    # swaks ends DATA with CRLF "." CRLF after the file's bytes: the file
    # goes without its last line end, so that the message is text_a.
    open(path_a, "wb").write(crlf(text_a)[:-2])
    rc, out = swaks(P_SUB, ["a1-%s@postfix.test" % TAG, "a2-%s@tempfail.test" % TAG], path_a)
    m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9A-F]+)", out)
    check(rc == 0 and m, "swaks with X-Dmta-* fields: exit %d, want 250:\n%s" % (rc, out))
    qid_a = m.group(1)

    # SMTP AUTH without fields: u1's defaults alone.
    path_a3 = os.path.join(tmp, "a3.eml")
    open(path_a3, "wb").write(crlf(HEAD % ("defaults", "a3-" + TAG) + "\nhi\n"))
    rc, out = swaks(P_SUB, ["a3-%s@tempfail.test" % TAG], path_a3)
    m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9A-F]+)", out)
    check(rc == 0 and m, "swaks without fields: exit %d, want 250:\n%s" % (rc, out))
    qid_a3 = m.group(1)

    # A bad value: 550 5.6.0 with the reason, nothing queued.
    path_bad = os.path.join(tmp, "bad.eml")
    open(path_bad, "wb").write(crlf(HEAD % ("bad", "bad-" + TAG) +
                                    "X-Dmta-Pool: two words\n\nx\n"))
    rc, out = swaks(P_SUB, ["bad-%s@postfix.test" % TAG], path_bad)
    check(rc != 0 and "550 5.6.0 X-Dmta-Pool: want 1 to 64 characters" in out,
          "swaks with a bad X-Dmta-Pool: exit %d, want 550 5.6.0 and the reason:\n%s" % (rc, out))
    print("ok: swaks: a bad X-Dmta-Pool got %s" %
          re.search(r"550 5\.6\.0[^\r\n]*", out).group(0))
    # A pool the configuration does not have: refused too, not queued in
    # the default pool.
    open(path_bad, "wb").write(crlf(HEAD % ("nopool", "nopool-" + TAG) +
                                    "X-Dmta-Pool: no-such-pool\n\nx\n"))
    rc, out = swaks(P_SUB, ["nopool-%s@postfix.test" % TAG], path_bad)
    check(rc != 0 and "550 5.6.0 pool 'no-such-pool': no [pool no-such-pool]" in out,
          "swaks with an unknown X-Dmta-Pool: exit %d, want 550 5.6.0 and the reason:\n%s" %
          (rc, out))
    print("ok: swaks: an unknown X-Dmta-Pool got %s" %
          re.search(r"550 5\.6\.0[^\r\n]*", out).group(0))

    # dmta-sendmail (as root: [user root]): the priority from the header,
    # the pool from the defaults.
    mid_b = "b-" + TAG
    text_b = (HEAD % ("sendmail", mid_b)) + "X-Dmta-Priority: bulk\nx-dmta-tenant: \n  news.7 \n" + \
        BODY
    r = subprocess.run([os.path.join(TOOLS, "dmta-sendmail"), "-C", conf, "-v", "-i",
                        "b1-%s@postfix.test" % TAG, "b2-%s@tempfail.test" % TAG],
                       input=text_b.encode(), capture_output=True, timeout=30)
    m = re.search(rb"queued as ([0-9A-F]+)", r.stderr)
    check(r.returncode == 0 and m, "dmta-sendmail: exit %d: %s" % (r.returncode, r.stderr))
    qid_b = m.group(1).decode()

    r = subprocess.run([os.path.join(TOOLS, "dmta-sendmail"), "-C", conf, "-i",
                        "c-%s@postfix.test" % TAG],
                       input=(HEAD % ("bad", "c-" + TAG) + "X-Dmta-Priority: urgent\n\nx\n").encode(),
                       capture_output=True, timeout=30)
    check(r.returncode == 65 and b"X-Dmta-Priority: want normal, high or bulk" in r.stderr,
          "dmta-sendmail with a bad X-Dmta-Priority: exit %d %r, want 65 and the reason" %
          (r.returncode, r.stderr))
    print("ok: dmta-sendmail: a bad X-Dmta-Priority exits 65: %s" % r.stderr.decode().strip())
    r = subprocess.run([os.path.join(TOOLS, "dmta-sendmail"), "-C", conf, "-i",
                        "c2-%s@postfix.test" % TAG],
                       input=(HEAD % ("nopool", "c2-" + TAG) +
                              "X-Dmta-Pool: no-such-pool\n\nx\n").encode(),
                       capture_output=True, timeout=30)
    check(r.returncode == 65 and b"pool 'no-such-pool': no [pool no-such-pool]" in r.stderr,
          "dmta-sendmail with an unknown X-Dmta-Pool: exit %d %r, want 65 and the reason" %
          (r.returncode, r.stderr))
    print("ok: dmta-sendmail: an unknown X-Dmta-Pool exits 65: %s" % r.stderr.decode().strip())
    bs = subprocess.run([os.path.join(TOOLS, "dmta-sendmail"), "-C", conf, "-bs"],
                        input=b"EHLO x\r\nMAIL FROM:<a@fields.test>\r\nRCPT TO:<d@postfix.test>\r\n"
                              b"DATA\r\nSubject: t\r\nX-Dmta-Tenant: no/slash\r\n\r\nbody\r\n.\r\n"
                              b"QUIT\r\n", capture_output=True, timeout=30)
    replies = bs.stdout.decode().splitlines()
    check(any(l.startswith("550 5.6.0 X-Dmta-Tenant: want") for l in replies),
          "dmta-sendmail -bs with a bad X-Dmta-Tenant: replies %r, want 550 5.6.0" % replies)
    print("ok: dmta-sendmail -bs: a bad X-Dmta-Tenant got %s" %
          [l for l in replies if l.startswith("550")][0])
    bs = subprocess.run([os.path.join(TOOLS, "dmta-sendmail"), "-C", conf, "-bs"],
                        input=b"EHLO x\r\nMAIL FROM:<a@fields.test>\r\nRCPT TO:<d@postfix.test>\r\n"
                              b"DATA\r\nSubject: t\r\nX-Dmta-Pool: no-such-pool\r\n\r\nbody\r\n.\r\n"
                              b"QUIT\r\n", capture_output=True, timeout=30)
    replies = bs.stdout.decode().splitlines()
    check(any(l.startswith("550 5.6.0 pool 'no-such-pool': no [pool no-such-pool]")
              for l in replies),
          "dmta-sendmail -bs with an unknown X-Dmta-Pool: replies %r, want 550 5.6.0" % replies)
    print("ok: dmta-sendmail -bs: an unknown X-Dmta-Pool got %s" %
          [l for l in replies if l.startswith("550")][0])

    # dmta-inject: the line's fields over the message's; a bad one refused.
    lines = [{"from": "a@fields.test", "to": ["e-%s@tempfail.test" % TAG], "pool": "inj-pool",
              "priority": "high",
              "data": "From: a@fields.test\r\nSubject: inject\r\nX-Dmta-Pool: header-pool\r\nX-Dmta-Tenant: hdr\r\n\r\n"
                      "x\r\n"},
             {"from": "a@fields.test", "to": ["f-%s@tempfail.test" % TAG], "priority": "soon",
              "data": "From: a@fields.test\r\nSubject: bad\r\n\r\nx\r\n"},
             {"from": "a@fields.test", "to": ["g-%s@tempfail.test" % TAG], "pool": "no-such-pool",
              "data": "From: a@fields.test\r\nSubject: no pool\r\n\r\nx\r\n"}]
    r = subprocess.run([os.path.join(TOOLS, "dmta-inject"), "-c", conf, "--ids", "-q"],
                       input="".join(json.dumps(l) + "\n" for l in lines), capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 65 and "dmta-inject: line 2: priority must be" in r.stderr and
          "dmta-inject: line 3: pool 'no-such-pool': no [pool no-such-pool]" in r.stderr,
          "dmta-inject with a bad priority and an unknown pool: exit %d %r, want 65 and lines 2 "
          "and 3 refused" % (r.returncode, r.stderr))
    ids = dict(l.split() for l in r.stdout.splitlines())
    check(list(ids) == ["1"], "dmta-inject --ids: %r, want line 1 only (%s)" % (r.stdout, r.stderr))
    qid_e = ids["1"]

    show(qid_a, "egress-a", "high", "shop-1", "swaks with fields")
    show(qid_a3, None, "bulk", "u1-default", "swaks without fields ([user u1])")
    show(qid_b, "root-pool", "bulk", "news.7", "dmta-sendmail ([user root] and fields)")
    show(qid_e, "inj-pool", "high", "hdr", "dmta-inject")
    listed = {m["id"]: m for m in json.loads(queue("--json", "list"))["messages"]}
    got = {q: (listed[q]["pool"], listed[q]["priority"], listed[q]["tenant"])
           for q in (qid_a, qid_b) if q in listed}
    check(got == {qid_a: ("egress-a", "high", "shop-1"), qid_b: ("root-pool", "bulk", "news.7")},
          "dmta-queue --json list: got %s" % got)
    print("ok: dmta-queue show and list --json name each message's pool, priority and tenant")

    check_delivered(mid_a, crlf(text_a).replace(b"\r\n", b"\n"), "the SMTP AUTH message")
    check_delivered(mid_b, text_b.encode(), "the dmta-sendmail message")
    check(all(delivered(t + TAG, timeout=1) is None for t in ("bad-", "c-", "nopool-", "c2-")),
          "a refused message was delivered")
finally:
    d.terminate()
    d.wait(timeout=60)
    reader.join(10)
out = "".join(out_lines)
check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
check("AddressSanitizer" not in out and "runtime error" not in out, "sanitizer report:\n" +
      out[-3000:])
check("refused: X-Dmta-Pool: want" in out, "dmtad did not log the refused message")
subprocess.run(["rm", "-rf", tmp])
print("ok: dmtad stopped cleanly")
