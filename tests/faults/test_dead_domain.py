"""Many messages to a dead domain (its exchanger refuses every connection)
while other domains keep flowing: the live mail is all delivered, once,
within a bounded time; the dead domain's mail stays queued (deferred,
never bounced early); the jobs out at once never pass [control] max_jobs;
and dmtad's memory stays bounded (its peak resident size, measured, under
a limit far below what a job per queued message would take).

    test_dead_domain.py [DEAD [LIVE]]
"""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from faultlib import Peer, Spool, check, fail, msg_seq, smtp_sink, wait_for  # noqa: E402

DEAD = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
LIVE = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
MAX_JOBS = 300
BODY = "Subject: %s %d\r\nX-Seq: %d\r\n\r\n" + "line of text\r\n" * 60  # ~1 KB


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: connections are refused
    return port


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    sink = Peer(smtp_sink)
    sp = Spool({"sink.test": sink.port, "dead.test": closed_port()},
               "[queue]\nmin_backoff = 1h\nsuspend_after = 5\n[control]\nmax_jobs = %d\n" % MAX_JOBS)
    try:
        run(sp, sink)
    finally:
        sp.close()
        sink.stop()


def run(sp, sink):
    t0 = time.time()
    msgs = []
    for i in range(DEAD + LIVE):
        live = i % ((DEAD + LIVE) // LIVE) == 0 and sum(1 for m in msgs if "sink" in m["to"][0]) < LIVE
        dom = "sink.test" if live else "dead.test"
        msgs.append({"from": "s@dmta.test", "to": ["u%d@%s" % (i, dom)],
                     "data": BODY % (dom, i, i)})
    live_seqs = {i for i, m in enumerate(msgs) if "sink.test" in m["to"][0]}
    for k in range(0, len(msgs), 5000):
        sp.inject(msgs[k:k + 5000])
    print("%d messages injected in %.1f s (%d live)" % (len(msgs), time.time() - t0,
                                                          len(live_seqs)), flush=True)
    d = sp.start()
    peak_jobs = [0]
    stop = threading.Event()

    def watch():
        path = os.path.join(sp.spool, "dmtad.stats")
        while not stop.is_set():
            try:
                with open(path) as f:
                    st = json.load(f)
                j = st.get("jobs", {})
                peak_jobs[0] = max(peak_jobs[0], j.get("in_flight", 0) + j.get("waiting_dns", 0))
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
    w = threading.Thread(target=watch, daemon=True)
    w.start()
    t1 = time.time()
    ok = wait_for(lambda: len(sink.got) >= len(live_seqs), 240, 0.5)
    flowed = time.time() - t1
    # The dead domain's first attempts are over once it is suspended.
    time.sleep(1)
    hwm = status_kb(d.pid, "VmHWM")
    stop.set()
    w.join(5)
    out = sp.stop(d)
    check(ok, "%d of %d live messages delivered in 240 s\n%s"
          % (len(sink.got), len(live_seqs), out[-2000:]))
    seen = {}
    for raw in sink.got:
        seen[msg_seq(raw)] = seen.get(msg_seq(raw), 0) + 1
    check(set(seen) == live_seqs and all(c == 1 for c in seen.values()),
          "live mail: %d distinct, %d duplicates, %d missing"
          % (len(seen), sum(c - 1 for c in seen.values()), len(live_seqs - set(seen))))
    st = sp.stats()
    check(st["messages"] == DEAD, "got %d queued, want the %d dead-domain messages"
          % (st["messages"], DEAD))
    check(st["bounced"] == 0 and st["delivered"] == 0, "queued states: %s" % st)
    check("suspended" in out, "the dead domain was never suspended:\n" + out[-2000:])
    check(peak_jobs[0] <= MAX_JOBS, "got %d jobs out at once, want at most %d"
          % (peak_jobs[0], MAX_JOBS))
    # Each queued message costs the scheduler a copy of its envelope (a few
    # hundred bytes); a job per message (with its 1 KB copy) would be more
    # than this on top of ASan's own.
    limit_mb = 350 + DEAD * 2 // 1000
    check(hwm // 1024 < limit_mb, "dmtad's peak resident size %d MB, want under %d MB"
          % (hwm // 1024, limit_mb))
    print("%d live delivered once in %.1f s beside %d to a dead domain; peak %d jobs out, "
          "peak RSS %d MB" % (len(live_seqs), flowed, DEAD, peak_jobs[0], hwm // 1024))


if __name__ == "__main__":
    main()
