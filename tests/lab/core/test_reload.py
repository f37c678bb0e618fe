"""dmtad (backend = kernel) reloads dmta.conf on SIGHUP, on loopback.

A receiver on 127.0.0.1 (reached through [routes]) takes a while over each
message and counts its connections open at once. [dest peer.test]
max_connections starts at 1: the receiver never sees more than one. Then
the file says 4 and `dmta-queue reload` sends SIGHUP: dmtad says the
reload was applied, the receiver sees up to four connections and never
more, and the connection open before the reload goes on carrying
messages (the session was not dropped). A changed [workers] count is
named in one "cannot change" line and kept. Then a file that does not
parse, and one with a bad [dest] value, are each refused with one line,
and dmtad keeps running on the old configuration: still at most four
connections, every message delivered, none deferred, a clean stop."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from labutil import BUILD, check, fail
from smtp_peer import Receiver
from smtp_peer import write_conf as peer_conf

N = 80
DELAY = 0.12  # seconds the receiver takes over each message


rx = Receiver(delay=DELAY)
tmp = tempfile.mkdtemp(prefix="dmta-reload-")
conf = os.path.join(tmp, "dmta.conf")


def write_conf(max_conns, extra=""):
    peer_conf(conf, os.path.join(tmp, "spool"), rx.port, """[smtp]
helo_name = dmta.test
idle_timeout = 30s
[dest peer.test]
max_connections = %s
max_messages_per_connection = 1000
%s""" % (max_conns, extra))


write_conf(1)
msgs = [{"from": "a@dmta.test", "to": ["r%d@peer.test" % i],
         "data": "Subject: reload %d\r\n\r\nhello\r\n" % i} for i in range(N)]
r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-q", "-c", conf],
                   input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                   text=True, timeout=60)
check(r.returncode == 0, "dmta-inject: %s" % r.stderr)

d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, text=True)
out = []


def reader():
    for line in d.stdout:
        out.append(line.rstrip("\n"))
        print("dmtad| " + line.rstrip("\n"), flush=True)


threading.Thread(target=reader, daemon=True).start()


def wait_for(cond, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        check(d.poll() is None, "dmtad died (exit %s) waiting for %s" % (d.returncode, what))
        time.sleep(0.05)
    fail("after %d s, still no %s" % (timeout, what))


def lines_with(text):
    return [l for l in out if text in l]


try:
    wait_for(lambda: len(rx.accepted) >= 6, 20, "6 messages at the receiver")
    check(rx.max_active == 1, "before the reload: %d connections at once, want 1" % rx.max_active)
    first = rx.accepted[0][0]

    # Four connections, and a fixed key changed too.
    write_conf(4, "[workers]\ncount = 3\n")
    t_reload = time.time()
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf, "reload"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "pid %d" % d.pid in r.stdout,
          "dmta-queue reload: exit %d: %s%s" % (r.returncode, r.stdout, r.stderr))
    wait_for(lambda: lines_with("reload: ") and lines_with("applied"), 10, "'reload: ... applied'")
    kept = lines_with("cannot change while dmtad runs")
    check(len(kept) == 1 and "[workers]" in kept[0], "want one line naming [workers]: %r" % kept)
    rx.reset_max()
    wait_for(lambda: rx.max_active >= 4, 15, "4 connections at once after the reload")
    check(rx.max_active == 4, "after the reload: %d connections at once, want 4" % rx.max_active)
    wait_for(lambda: [c for c, t in rx.accepted if c == first and t > t_reload + 0.5], 10,
             "message on the connection opened before the reload (dropped?)")

    # A file that does not parse: refused whole, with one line.
    with open(conf, "a") as f:
        f.write("[dest peer.test\nmax_connections = 9\n")
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: lines_with("reload refused"), 10, "'reload refused' for a broken file")
    # A bad value where only a reload would read it: refused too.
    write_conf("lots")
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: len(lines_with("reload refused")) == 2, 10,
             "'reload refused' for a bad [dest] value")
    refused = lines_with("reload refused")
    check(all("running configuration stays" in l for l in refused), "refusals: %r" % refused)
    check(len(lines_with("applied")) == 1, "a refused file was applied: %r" % lines_with("applied"))
    check(d.poll() is None, "dmtad died after a broken file")
    rx.reset_max()
    wait_for(lambda: len(rx.accepted) >= N, 60, "every message at the receiver")
    check(rx.max_active <= 4, "after the refusals: %d connections at once, want <= 4 (the old "
          "configuration)" % rx.max_active)
finally:
    if d.poll() is None:
        d.terminate()
    try:
        d.wait(timeout=30)
    except subprocess.TimeoutExpired:
        d.kill()
        d.wait()
    rx.stop.set()
time.sleep(0.2)
check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
text = "\n".join(out)
check("AddressSanitizer" not in text and "runtime error" not in text, "sanitizer report")
log = [json.loads(l) for l in open(os.path.join(tmp, "spool", "delivery.log"))]
outcomes = {}
for l in log:
    outcomes[l["outcome"]] = outcomes.get(l["outcome"], 0) + 1
check(outcomes == {"delivered": N}, "delivery log: %r, want {'delivered': %d}" % (outcomes, N))
print("ok: 1 then 4 connections at once across a reload, %d connections in all, two broken "
      "files refused, %d delivered" % (rx.conns, N))
subprocess.run(["rm", "-rf", tmp])
