"""Lab: dmtad delivers a queue end to end, with the backend named by argv[1]:
dpdk (SMTP over dmta's userspace TCP on the lab's DPDK port) or kernel
(the same engine over kernel sockets).

Messages go in with dmta-inject; dmtad resolves each domain with the lab's
DNS server and delivers to smtp-sink. The same messages and checks serve
both backends. Checked on both
sides: the delivery log has exactly one final outcome per recipient (the
right one for each kind of domain), bounces are generated once per message
and delivered to the sender, the spool ends empty, and smtp-sink counted
exactly as many messages as dmtad says it delivered. The senders live at
postfix.test, whose Postfix keeps what it receives in a Maildir: there
each DSN is parsed as RFC 3464 (Python's email package) and matched to
its message (the returned Message-ID) and to exactly the recipients that
failed, with their status."""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from labutil import BUILD, check, dmtad_conf, dmtad_until_settled, dsn_check, lab

SINK_LOG = "/run/dmta-lab/sink.log"
MAILDIR = "/run/dmta-lab/postfix/mail/box/new"  # postfix.test's mailbox


def sink_count():
    try:
        data = open(SINK_LOG, "rb").read().decode("ascii", "replace")
    except FileNotFoundError:
        return 0
    m = re.findall(r"mesg=(\d+)", data)
    return int(m[-1]) if m else 0


BACKEND = sys.argv[1] if len(sys.argv) > 1 else "kernel"
lab("up")
tmp = tempfile.mkdtemp(prefix="dmta-e2e-")
conf = os.path.join(tmp, "dmta.conf")
spool = os.path.join(tmp, "spool")
dmtad_conf(conf, spool, BACKEND, """[smtp]
helo_name = dmta.test
connect_timeout = 3s
[queue]
dest_max_connections = 4
""")

rnd = random.Random(7)
msgs = []
want = {}  # recipient -> (outcome, status prefix)
for i in range(300):
    kind = rnd.choice(["sink"] * 6 + ["multi", "implicit", "nullmx", "nosuch"])
    n = rnd.randint(1, 3)
    rcpts = ["u%d.%d@%s.test" % (i, k, kind) for k in range(n)]
    for r in rcpts:
        want[r] = {"sink": ("delivered", "2."), "multi": ("delivered", "2."),
                   "implicit": ("delivered", "2."), "nullmx": ("bounced", "5.1.10"),
                   "nosuch": ("bounced", "5.1.2")}[kind]
    body = "Subject: test %d\r\nMessage-ID: <%d@e2e.test>\r\n\r\n%s\r\n" % (i, i, "x" * rnd.randint(10, 4000))
    msgs.append({"from": "sender%d@postfix.test" % i, "to": rcpts, "data": body,
                 "mid": "<%d@e2e.test>" % i})
bounced_msgs = sum(1 for m in msgs if any(want[r][0] == "bounced" for r in m["to"]))

r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-c", conf],
                   input="".join(json.dumps({k: v for k, v in m.items() if k != "mid"}) + "\n"
                                 for m in msgs),
                   capture_output=True, text=True, timeout=60)
check(r.returncode == 0, "dmta-inject: exit %d: %s" % (r.returncode, r.stderr))
print(r.stderr.strip())

before = sink_count()
maildir_before = set(os.listdir(MAILDIR)) if os.path.isdir(MAILDIR) else set()
elapsed, _, _ = dmtad_until_settled(conf)

lines = [json.loads(l) for l in open(os.path.join(spool, "delivery.log"))]
final = {}
dsns = 0
for l in lines:
    if l["from"] == "":
        check(l["outcome"] == "delivered", "a bounce was not delivered: %r" % l)
        dsns += 1
        continue
    if l["outcome"] in ("delivered", "bounced"):
        check(l["to"] not in final, "two final outcomes for %s" % l["to"])
        final[l["to"]] = l
for rcpt, (outcome, status) in want.items():
    got = final.get(rcpt)
    check(got is not None, "no final outcome for %s" % rcpt)
    check(got["outcome"] == outcome, "%s: %s, want %s (%s)" % (rcpt, got["outcome"], outcome, got["reply"]))
    check(got["status"].startswith(status), "%s: status %s, want %s" % (rcpt, got["status"], status))
check(dsns == bounced_msgs, "%d bounces delivered, want one per failed message: %d" % (dsns, bounced_msgs))

delivered_msgs = sum(1 for m in msgs if any(want[r][0] == "delivered" for r in m["to"]))
got = sink_count() - before
check(got == delivered_msgs, "smtp-sink counted %d messages, want %d" % (got, delivered_msgs))

# The DSNs themselves, in the senders' mailbox: one per bounced message,
# naming exactly its failed recipients with their status.
want_dsn = {}
for m in msgs:
    failed = {r: want[r][1] for r in m["to"] if want[r][0] == "bounced"}
    if failed:
        want_dsn[m["mid"]] = {r: final[r]["status"] for r in failed}
names = []
deadline = time.time() + 60
while time.time() < deadline:  # Postfix's own queue drains into the Maildir
    names = sorted(set(os.listdir(MAILDIR)) - maildir_before)
    if len(names) >= len(want_dsn):
        break
    time.sleep(0.2)
matched = {}
for n in names:
    mid, got_rcpts = dsn_check(open(os.path.join(MAILDIR, n), "rb").read(), want_dsn)
    check(mid not in matched, "two DSNs for %s" % mid)
    matched[mid] = got_rcpts
check(len(matched) == len(want_dsn), "%d DSNs matched in the mailbox, want %d"
      % (len(matched), len(want_dsn)))
print("ok (%s): %d recipients settled, %d bounces, smtp-sink got %d messages in %.1f s"
      % (BACKEND, len(want), dsns, got, elapsed))
subprocess.run(["rm", "-rf", tmp])
