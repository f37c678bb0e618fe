"""Delivery events posted to [events] url, across a webhook that is down
and a dmtad restart (backend = kernel, on loopback).

An SMTP receiver on 127.0.0.1 (through [routes]) accepts "ok..."
recipients, defers each "grey..." one once and refuses "bad..." ones (a
DSN then goes back to the sender, also at the receiver). The webhook, an
HTTP server run here on 127.0.0.1, is down when dmtad starts, comes up,
goes down again while dmtad is stopped and more mail is injected, and comes
back after dmtad is started again. At the end every event must have
arrived exactly once (no id twice, no event missing), and per message in
order: its reception first, then per recipient its attempts in order,
the final one last. The attempt events must be the delivery log's lines,
one for one."""
import collections
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from labutil import BUILD, check, fail
from smtp_peer import Receiver, write_conf

T0 = time.time()


class Webhook:
    """POSTed JSON arrays, kept in arrival order, while it is up."""

    def __init__(self):
        self.events = []
        self.posts = 0
        self.port = None
        self.server = None

    def up(self):
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                batch = json.loads(body)
                hook.events.extend(batch)
                hook.posts += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", self.port or 0), Handler)
        self.server.allow_reuse_address = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        self.server.shutdown()
        self.server.server_close()
        self.server = None


rx = Receiver()
hook = Webhook()
hook.up()  # for its port; down again before dmtad starts
hook.down()
tmp = tempfile.mkdtemp(prefix="dmta-events-")
conf = os.path.join(tmp, "dmta.conf")
spool = os.path.join(tmp, "spool")
write_conf(conf, spool, rx.port, """[smtp]
helo_name = dmta.test
[queue]
min_backoff = 1s
backoff_jitter = 0
[events]
url = http://127.0.0.1:%d/dmta-events
batch = 7
retry_min = 100ms
retry_max = 500ms
timeout = 5s
""" % hook.port)


def inject(tag, n):
    msgs = []
    for i in range(n):
        kind = ("ok", "grey", "bad")[i % 3]
        msgs.append({"from": "sender@peer.test",
                     "to": ["%s%s%d@peer.test" % (kind, tag, i), "ok%s%d.2@peer.test" % (tag, i)],
                     "data": "Subject: events %s %d\r\nMessage-ID: <%s.%d@events.test>\r\n\r\n"
                             "hello\r\n" % (tag, i, tag, i)})
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-q", "-c", conf],
                       input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, "dmta-inject: %s" % r.stderr)


def start():
    d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    return d


def stop(d):
    d.terminate()
    out, _ = d.communicate(timeout=30)
    print(out, flush=True)
    check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
    check("AddressSanitizer" not in out and "runtime error" not in out, "sanitizer report")
    return out


def log_lines():
    path = os.path.join(spool, "delivery.log")
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


def wait_for(cond, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.1)
    fail("after %d s, still no %s" % (timeout, what))


inject("a", 12)
d = start()
try:
    # The webhook is down: mail goes out all the same.
    wait_for(lambda: sum(1 for l in log_lines() if l["outcome"] == "delivered") >= 10, 20,
             "10 deliveries while the webhook is down")
    check(hook.posts == 0, "posted while down?")
    hook.up()
    wait_for(lambda: len(hook.events) >= 10, 10, "events once the webhook is up")
    # Down again: the greylisted recipients' retries make events it misses.
    hook.down()
    n = len(log_lines())
    wait_for(lambda: len(log_lines()) >= n + 3, 20, "more attempts while the webhook is down")
finally:
    if d.poll() is None:
        stop(d)
# Stopped in the middle, with events not yet posted; more mail while both are away.
inject("b", 9)
d = start()
try:
    time.sleep(1.5)  # dmtad retries against a webhook that is not there
    hook.up()

    def settled():
        r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf, "--json",
                            "stats"], capture_output=True, text=True, timeout=30)
        st = json.loads(r.stdout)
        # Every message gone, and every line the log has reached the webhook.
        want = len(log_lines())
        got = sum(1 for e in hook.events if e["event"] != "reception")
        return st["messages"] == 0 and got >= want

    wait_for(settled, 40, "empty queue and every event at the webhook")
    time.sleep(0.5)  # nothing more may come
finally:
    if d.poll() is None:
        out = stop(d)
check("events from before wait to be posted" in out, "the restart found no backlog to post")
hook.down()
rx.close()

ev = hook.events
ids = [e["id"] for e in ev]
dups = [i for i, c in collections.Counter(ids).items() if c > 1]
check(not dups, "events posted twice: %r" % dups[:5])
lines = log_lines()
receptions = [e for e in ev if e["event"] == "reception"]
attempts = [e for e in ev if e["event"] != "reception"]
kinds = {"delivered": "delivery", "deferred": "transient_failure", "bounced": "bounce",
         "expired": "bounce"}
want = collections.Counter((l["qid"], l["to"], kinds[l["outcome"]], l["attempt"]) for l in lines)
got = collections.Counter((e["qid"], e["recipient"], e["event"], e["attempt"]) for e in attempts)
check(got == want, "attempt events differ from the delivery log: missing %r, extra %r"
      % (list((want - got).elements())[:5], list((got - want).elements())[:5]))
qids = {l["qid"] for l in lines}
rq = collections.Counter(e["qid"] for e in receptions)
check(set(rq) == qids and all(c == 1 for c in rq.values()),
      "receptions: got %d for %d messages (%r)" % (len(receptions), len(qids), rq.most_common(3)))
dsns = [e for e in receptions if e["sender"] == ""]
n_bad = 4 + 3
check(len(dsns) == n_bad, "receptions of DSNs: got %d, want %d" % (len(dsns), n_bad))
check(len(lines) > 0 and len(receptions) == 12 + 9 + n_bad,
      "receptions: got %d, want %d" % (len(receptions), 12 + 9 + n_bad))
# Per message, in order.
seen_rx = set()
last = {}
final = set()
for e in ev:
    q = e["qid"]
    if e["event"] == "reception":
        seen_rx.add(q)
        continue
    check(q in seen_rx, "%s for %s before its reception" % (e["event"], q))
    key = (q, e["recipient"])
    check(key not in final, "%s for %s after its final event" % (e["event"], key))
    check(e["attempt"] > last.get(key, 0), "attempt %d for %s after attempt %d"
          % (e["attempt"], key, last.get(key, 0)))
    last[key] = e["attempt"]
    if e["event"] in ("delivery", "bounce"):
        final.add(key)
mids = {e.get("message_id") for e in ev if e["sender"] == "sender@peer.test"}
check("<a.0@events.test>" in mids and "<b.8@events.test>" in mids, "message ids: %r" % mids)
bounces = [e for e in ev if e["event"] == "bounce"]
check(bounces and all(e["bounce_class"] == "address" and e["status"] == "5.1.1" for e in bounces),
      "bounces: %r" % bounces[:2])
check(any(e["event"] == "transient_failure" for e in ev), "no transient failure")
timed = [e for e in attempts if e["event"] == "delivery"]
check(timed and all(0 <= e["attempt_s"] < 30 and e["delay_s"] >= 0 for e in timed),
      "delivery timings: %r" % [(e.get("attempt_s"), e.get("delay_s")) for e in timed[:3]])
check(not os.path.exists(os.path.join(spool, "events")) or all(
    n in ("cursor",) or n.endswith(".jsonl") for n in os.listdir(os.path.join(spool, "events"))),
      "stray files in SPOOL/events")
print("ok: %d events (%d receptions) in %d posts, each once and in order per message, across "
      "two webhook outages and a restart, in %.1f s" % (len(ev), len(receptions), hook.posts,
                                                         time.time() - T0))
subprocess.run(["rm", "-rf", tmp])
