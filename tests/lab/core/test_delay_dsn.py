"""Lab: a receiver that keeps deferring a message past [queue] delay_warning.

dmtad (backend argv[1]: dpdk or kernel) delivers one message to held.test,
routed to a greylisting receiver of this test's own (tempfail_smtpd.py on
198.18.1.32 in the lab) that answers 451 to the first DEFER attempts. With
retries every second and delay_warning = 2s, what must happen:
- the sender (a mailbox on the lab's Postfix, postfix.test) gets exactly
  one "delayed" DSN (RFC 3464, Action: delayed) with dmta's own wording,
  and no failure DSN;
- the message is still delivered later, once, byte for byte;
- the delivery log shows the deferrals, then the delivery, then the DSN
  delivered from <>."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from labutil import BUILD, NS, check, dmtad_conf, dmtad_until_settled, fail, lab, stop_procs

TOP = os.environ["DMTA_TOP"]
BACKEND = sys.argv[1] if len(sys.argv) > 1 else "kernel"
HELD_IP = "198.18.1.32"
DEFER = 4
MAILDIR = "/run/dmta-lab/postfix/mail/box/new"

tmp = tempfile.mkdtemp(prefix="dmta-delay-")
os.chmod(tmp, 0o755)
procs = []


def on_term(signum, frame):
    raise SystemExit("killed by signal %d" % signum)


def cleanup():
    stop_procs(procs)
    subprocess.run(["ip", "-n", NS, "addr", "del", HELD_IP + "/32", "dev", "lo"],
                   capture_output=True)
    subprocess.run(["rm", "-rf", tmp])


def wait_port(addr, port):
    for _ in range(150):
        r = subprocess.run(["ip", "netns", "exec", NS, "bash", "-c",
                            "exec 3<>/dev/tcp/%s/%d" % (addr, port)], capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    fail("the deferring receiver did not come up on %s:%d" % (addr, port))


signal.signal(signal.SIGTERM, on_term)
lab("up")
try:
    subprocess.run(["ip", "-n", NS, "addr", "add", HELD_IP + "/32", "dev", "lo"],
                   capture_output=True)
    held_spool = os.path.join(tmp, "held")
    procs.append(subprocess.Popen(
        ["ip", "netns", "exec", NS, sys.executable, os.path.join(TOP, "tools/labfiles/tempfail_smtpd.py"),
         "--host", HELD_IP, "--port", "25", "--spool", held_spool, "--defer", str(DEFER)],
        stdout=open(os.path.join(tmp, "held.log"), "w"), stderr=subprocess.STDOUT))
    wait_port(HELD_IP, 25)

    conf = os.path.join(tmp, "dmta.conf")
    spool = os.path.join(tmp, "spool")
    dmtad_conf(conf, spool, BACKEND, """[smtp]
helo_name = dmta.test
connect_timeout = 3s
[queue]
myhostname = dmta.test
min_backoff = 1s
max_backoff = 1s
backoff_jitter = 0
delay_warning = 2s
[routes]
held.test = %s
""" % HELD_IP)

    tag = uuid.uuid4().hex[:12]
    sender = "delay-%s@postfix.test" % tag
    rcpt = "user-%s@held.test" % tag
    body = ("Subject: held %s\r\nMessage-ID: <%s@delay.test>\r\n\r\nwaits for the receiver\r\n"
            % (tag, tag))
    maildir_before = set(os.listdir(MAILDIR)) if os.path.isdir(MAILDIR) else set()
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-c", conf],
                       input=json.dumps({"from": sender, "to": [rcpt], "data": body}) + "\n",
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "dmta-inject: exit %d: %s" % (r.returncode, r.stderr))

    elapsed, _, _ = dmtad_until_settled(conf, timeout=60)

    # The delivery log: DEFER deferrals, one delivery, one DSN from <>.
    lines = [json.loads(l) for l in open(os.path.join(spool, "delivery.log"))]
    mine = [l["outcome"] for l in lines if l["to"] == rcpt]
    check(mine == ["deferred"] * DEFER + ["delivered"],
          "outcomes for %s: got %r, want %d deferrals then one delivery" % (rcpt, mine, DEFER))
    dsn_lines = [l for l in lines if l["from"] == "" and l["to"] == sender]
    check(len(dsn_lines) == 1 and dsn_lines[0]["outcome"] == "delivered",
          "DSNs to the sender in the delivery log: got %r, want one delivered" % dsn_lines)

    # The receiver got the message once, as injected.
    got = []
    for n in sorted(os.listdir(held_spool)):
        data = open(os.path.join(held_spool, n), "rb").read()
        if ("<%s@delay.test>" % tag).encode() in data:
            got.append(data)
    check(len(got) == 1, "the receiver holds %d copies, want 1" % len(got))
    check(got[0].endswith(body.encode()), "the delivered message differs from what was injected")

    # The sender's mailbox: one "delayed" DSN, no failure.
    dsns = []
    for _ in range(50):  # Postfix's own queue drains into the Maildir
        names = set(os.listdir(MAILDIR)) - maildir_before if os.path.isdir(MAILDIR) else set()
        dsns = []
        for n in names:
            data = open(os.path.join(MAILDIR, n), "rb").read().decode("utf-8", "replace")
            if ("To: <%s>" % sender) in data:
                dsns.append(data)
        if dsns:
            break
        time.sleep(0.2)
    check(len(dsns) == 1, "the sender's mailbox holds %d DSNs, want 1" % len(dsns))
    d = dsns[0]
    for want in ("Subject: Your message has not been delivered yet",
                 "report-type=delivery-status",
                 "Reporting-MTA: dns; dmta.test",
                 "Final-Recipient: rfc822; " + rcpt,
                 "Action: delayed",
                 "Status: 4.7.1",
                 "Will-Retry-Until: ",
                 "<%s>" % rcpt,
                 "The receiving server said: 451 4.7.1",
                 "Subject: held " + tag):
        check(want in d, "the delay DSN lacks %r:\n%s" % (want, d))
    check("Action: failed" not in d, "the delay DSN says failed")
    print("ok (%s): %d deferrals, one delay DSN in the sender's Maildir, then delivered; "
          "settled in %.1f s" % (BACKEND, DEFER, elapsed))
finally:
    cleanup()
