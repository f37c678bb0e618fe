"""Lab: dmta-queue stats shows a running dmtad's live view, for the backend
named by argv[1] (dpdk or kernel), and never a dead one's.

Before dmtad starts, a stats file left in the spool (even one naming a live
process) is not shown as live. Messages go to smtp-sink (sink.test), to the
greylisting receiver that defers each recipient once (tempfail.test) and
to a domain that does not exist (nosuch.test: bounced, a DSN back to the
sender, a negative DNS cache entry). While dmtad runs, `dmta-queue --json
stats` must name its pid, count attempts, show SMTP sessions and DNS cache
hits and misses; once the queue settles its counters must equal what the
delivery log says (delivered, deferred, bounced, attempts, DSNs), the text
view must say the same, and on DPDK telemetry's /dmta/control must agree.
Once the sessions' idle timeout passes, every session gauge is back to 0.
After SIGTERM: "daemon: not running" and no file left. Last, a dmtad that
hangs (SIGSTOP) is shown running with a stale view, never a live one, and
once killed with SIGKILL it leaves its file behind and stats says "not
running"."""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from labutil import BUILD, check, dmtad_conf, dmtad_start, fail, lab, telemetry

BACKEND = sys.argv[1] if len(sys.argv) > 1 else "kernel"
QUEUE = os.path.join(BUILD, "tools/queue/dmta-queue")
N_SINK, N_TEMPFAIL, N_NOSUCH = 150, 12, 4
T0 = time.time()

lab("up")
tmp = tempfile.mkdtemp(prefix="dmta-stats-")
conf = os.path.join(tmp, "dmta.conf")
spool = os.path.join(tmp, "spool")
dmtad_conf(conf, spool, BACKEND, """[smtp]
helo_name = dmta.test
connect_timeout = 3s
# Sessions stay open a while after the queue empties (they must show),
# then close (and the gauges must come back to zero).
idle_timeout = 3s
[queue]
dest_max_connections = 4
min_backoff = 1s
backoff_jitter = 0
[control]
stats_interval = 500ms
""")


def qstats(text=False):
    args = [QUEUE, "-c", conf] + ([] if text else ["--json"]) + ["stats"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "dmta-queue stats: exit %d: %s" % (r.returncode, r.stderr))
    return r.stdout if text else json.loads(r.stdout)


def flatten(tel):
    """Telemetry's groups as flat keys ("delivery_delivered"), nested or not."""
    flat = {}
    for k, v in tel.items():
        if isinstance(v, dict):
            flat.update({"%s_%s" % (k, kk): vv for kk, vv in v.items()})
        else:
            flat[k] = v
    return flat


def start_dmtad():
    return dmtad_start(conf)


rnd = random.Random(11)
msgs = []
for i in range(N_SINK):
    msgs.append({"from": "s%d@sink.test" % i, "to": ["r%d@sink.test" % i]})
for i in range(N_TEMPFAIL):
    msgs.append({"from": "t%d@sink.test" % i, "to": ["grey%d.%d@tempfail.test" % (os.getpid(), i)]})
for i in range(N_NOSUCH):
    msgs.append({"from": "n%d@sink.test" % i, "to": ["x%d@nosuch.test" % i]})
rnd.shuffle(msgs)
for i, m in enumerate(msgs):
    m["data"] = "Subject: stats %d\r\nMessage-ID: <%d.%d@stats.test>\r\n\r\nhello\r\n" % (
        i, i, os.getpid())
r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-c", conf],
                   input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                   text=True, timeout=60)
check(r.returncode == 0, "dmta-inject: exit %d: %s" % (r.returncode, r.stderr))

# No daemon yet: a stats file in the spool, even naming a live process and
# written just now, is not a running daemon.
st = qstats()
check(st["daemon"] == {"running": False}, "before start: %r" % st["daemon"])
check(st["messages"] == len(msgs), "spool counts %d messages, want %d" % (st["messages"], len(msgs)))
with open(os.path.join(spool, "dmtad.stats"), "w") as f:
    f.write(json.dumps({"version": 1, "pid": os.getpid(), "time_ms": int(time.time() * 1000),
                        "backend": "kernel", "workers": []}) + "\n")
with open(os.path.join(spool, "dmtad.pid"), "w") as f:
    f.write("%d\n" % os.getpid())
check(qstats()["daemon"] == {"running": False}, "a left-over file was shown as live")
check("daemon:      not running\n" in qstats(text=True), "text view: not 'not running'")

d = start_dmtad()
try:
    seen = {"live": False, "sessions": 0, "attempts": 0}
    settled = None
    deadline = time.time() + 35
    while time.time() < deadline:
        st = qstats()
        dm = st["daemon"]
        check(dm["running"] is True, "daemon not running while it runs: %r" % dm)
        check(dm["pid"] == d.pid, "daemon pid %r, want %d" % (dm["pid"], d.pid))
        s = dm["stats"]
        if s is not None:
            seen["live"] = True
            check(s["pid"] == d.pid and s["backend"] == BACKEND, "view of %r/%r" % (s["pid"], s["backend"]))
            check(0 <= dm["age"] < 3, "view %.1f s old" % dm["age"])
            seen["sessions"] = max(seen["sessions"], sum(w["sessions"] for w in s["workers"]))
            seen["attempts"] = max(seen["attempts"], s["delivery"]["attempts"])
            # Settled: the spool is empty and the view says nothing is out.
            if (st["messages"] == 0 and s["queue"]["messages"] == 0 and s["jobs"]["in_flight"] == 0
                    and s["jobs"]["waiting_dns"] == 0):
                counters = ("attempts", "delivered", "deferred", "bounced", "expired")
                if settled is not None and settled["bounces"] == s["bounces"] and all(
                        settled["delivery"][k] == s["delivery"][k] for k in counters):
                    break
                settled = s
        time.sleep(0.25)
    else:
        fail("not settled after 35 s: %r" % st)
    check(seen["live"], "never a live view")
    check(seen["attempts"] > 0, "no attempts counted")
    check(seen["sessions"] > 0, "no SMTP session ever seen")
    s = settled

    # The delivery log, recipient by recipient, against the counters.
    lines = [json.loads(l) for l in open(os.path.join(spool, "delivery.log"))]
    count = {k: sum(1 for l in lines if l["outcome"] == k)
             for k in ("delivered", "deferred", "bounced", "expired")}
    dv = s["delivery"]
    for k in count:
        check(dv[k] == count[k], "%s: stats say %d, the delivery log %d" % (k, dv[k], count[k]))
    check(dv["attempts"] == count["delivered"] + count["deferred"] + count["bounced"],
          "attempts %d, log %r" % (dv["attempts"], count))
    dsns = sum(1 for l in lines if l["from"] == "" and l["outcome"] == "delivered")
    check(count["delivered"] == N_SINK + N_TEMPFAIL + N_NOSUCH,
          "delivered %d, want %d (with the DSNs)" % (count["delivered"], N_SINK + N_TEMPFAIL + N_NOSUCH))
    check(count["deferred"] >= N_TEMPFAIL, "deferred %d, want >= %d" % (count["deferred"], N_TEMPFAIL))
    check(count["bounced"] == N_NOSUCH, "bounced %d, want %d" % (count["bounced"], N_NOSUCH))
    check(s["bounces"]["generated"] == N_NOSUCH == dsns,
          "bounces generated %d, DSNs delivered %d, want %d" % (s["bounces"]["generated"], dsns, N_NOSUCH))
    check(dv["rate"] > 0, "rate since start %r" % dv["rate"])
    dns = s["dns"]
    check(dns["hits"] > 0 and dns["misses"] > 0, "dns cache hits %d misses %d" % (dns["hits"], dns["misses"]))
    check(dns["negative"] >= 1, "no negative DNS cache entry (nosuch.test): %r" % dns)
    check(dns["entries"] >= 3 and dns["queries"] > 0 and dns["in_flight"] == 0, "dns %r" % dns)
    check(len(s["workers"]) >= 1, "no workers in %r" % s)
    for w in s["workers"]:
        check(w["opened"] > 0 and w["jobs"] == 0, "worker %r" % w)
        check(w["sessions"] >= w["connecting"] + w["idle"], "worker %r" % w)
        check(isinstance(w["retransmits"], int), "retransmits %r" % w["retransmits"])
    print("settled at %.1f s: %s" % (time.time() - T0, json.dumps(s)))

    text = qstats(text=True)
    print(text)
    for want in ("daemon:      running, pid %d, backend %s" % (d.pid, BACKEND),
                 "delivery:    %d attempts: %d delivered, %d deferred, %d bounced, 0 expired"
                 % (dv["attempts"], dv["delivered"], dv["deferred"], dv["bounced"]),
                 "bounces:     %d generated" % N_NOSUCH, "worker 0:    "):
        check(want in text, "text view lacks %r" % want)

    # Idle sessions close: every gauge comes back to zero, no count drifts.
    deadline = time.time() + 10
    while time.time() < deadline:
        ws = qstats()["daemon"]["stats"]["workers"]
        if all(w["sessions"] == 0 for w in ws):
            break
        time.sleep(0.25)
    for w in ws:
        check(w["sessions"] == w["connecting"] == w["idle"] == w["jobs"] == 0,
              "after the idle timeout: worker %r" % w)

    if BACKEND == "dpdk":
        tel = telemetry("/dmta/control")
        print("/dmta/control: %s" % json.dumps(tel))
        flat = flatten(tel)
        check(flat.get("delivery_delivered") == dv["delivered"],
              "telemetry delivered %r, want %d" % (flat.get("delivery_delivered"), dv["delivered"]))
        check(flat.get("pid") == d.pid and flat.get("backend") == "dpdk", "telemetry %r" % tel)
        check("worker_0_sessions" in flat, "telemetry has no worker_0: %r" % tel)
        # And DPDK's own client reads it.
        r = subprocess.run(["dpdk-telemetry.py", "-f", "dmta-lab"], input="/dmta/control\n",
                           capture_output=True, text=True, timeout=30)
        got = [json.loads(l)["/dmta/control"] for l in r.stdout.splitlines()
               if l.startswith('{"/dmta/control"')]
        check(r.returncode == 0 and len(got) == 1, "dpdk-telemetry.py: %s %s" % (r.stdout, r.stderr))
        check(flatten(got[0]).get("delivery_delivered") == dv["delivered"],
              "dpdk-telemetry.py: %r" % got[0])
finally:
    if d.poll() is None:
        d.terminate()
    out, _ = d.communicate(timeout=30)
print(out)
check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
check("AddressSanitizer" not in out and "runtime error" not in out, "sanitizer report")
st = qstats()
check(st["daemon"] == {"running": False}, "after stop: %r" % st["daemon"])
check("daemon:      not running\n" in qstats(text=True), "text view after stop")
check(not os.path.exists(os.path.join(spool, "dmtad.stats")), "stats file left after a clean stop")

# Killed: the file stays behind, fresh, naming a pid; still "not running".
d = start_dmtad()
try:
    deadline = time.time() + 10
    while time.time() < deadline and qstats()["daemon"].get("stats") is None:
        time.sleep(0.2)
    check(qstats()["daemon"]["stats"] is not None, "no live view from the second dmtad")
    # Hung (stopped): it still holds the spool, but its view goes stale
    # (older than 2 intervals + 2 s) and is not shown as live.
    d.send_signal(signal.SIGSTOP)
    time.sleep(3.6)
    dm = qstats()["daemon"]
    check(dm["running"] is True and dm["pid"] == d.pid and dm["stats"] is None and dm["age"] > 3,
          "a stopped dmtad's view: %r" % dm)
    text = qstats(text=True)
    check("daemon:      running, pid %d, but its statistics are stale" % d.pid in text,
          "text view of a stopped dmtad: %r" % text)
finally:
    d.send_signal(signal.SIGKILL)
    d.communicate(timeout=30)
check(os.path.exists(os.path.join(spool, "dmtad.stats")), "no file left by the killed dmtad")
st = qstats()
check(st["daemon"] == {"running": False}, "a killed dmtad's file shown as live: %r" % st["daemon"])
check("daemon:      not running\n" in qstats(text=True), "text view after SIGKILL")
print("ok (%s): %d recipients, live view checked against the delivery log, in %.1f s"
      % (BACKEND, len(msgs), time.time() - T0))
subprocess.run(["rm", "-rf", tmp])
