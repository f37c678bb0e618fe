"""SMTP acceptance: smtp-source into dmtad's listener and into Postfix's smtpd,
the same machine, the same run, both queues durable.

    bench_submit.py BUILD N

dmtad (kernel backend, the lab's configuration) listens on 127.0.0.1 and
delivers what it accepts to the lab's smtp-sink as it goes; its spool is
on /var/tmp. Postfix 3.7 is a private instance 
(bench/queue/postfix_instance.sh with a port) with smtpd on 127.0.0.1 and
its queue on /var/tmp too, every transport discard. smtp-source -s 8 (BENCH_SESSIONS) -m N -l 4096 runs against each; accepted
messages per second is N over smtp-source's wall time. fsyncs are counted
with strace: on dmtad for the whole run (started under strace, the calls
filtered by seccomp so nothing else stops), on Postfix's master and all
its children for a separate run of PF_TRACED messages (an attached strace
stops every call, which would distort the timed run). While the
listener is loaded (a second, untimed run of LAT_N messages), commit_latency
does what the control thread does every 10 ms (a write transaction with
fsync on the same spool) and reports how long its commits take, against
the same measure with no load.
Afterwards: every message dmtad accepted reached smtp-sink.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
sys.path.insert(0, os.path.join(TOP, "tests/lab/core"))
os.environ.setdefault("DMTA_TOP", TOP)
BUILD = os.path.abspath(sys.argv[1])
os.environ["DMTA_BUILD"] = BUILD
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
S = int(os.environ.get("BENCH_SESSIONS", "8"))  # smtp-source -s
PF_TRACED = 1000  # messages of the traced Postfix run
LAT_N = 1000  # messages of the load commit_latency runs under
import labutil  # noqa: E402
from labutil import free_port, sink_count  # noqa: E402

labutil.BUILD = BUILD


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("nothing listens on 127.0.0.1:%d" % port)


def source(port, n=None):
    t0 = time.time()
    r = subprocess.run(["smtp-source", "-s", str(S), "-m", str(n or N), "-l", "4096", "-f", "a@x.test",
                        "-t", "u@sink.test", "127.0.0.1:%d" % port],
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit("smtp-source: exit %d: %s" % (r.returncode, r.stderr))
    return time.time() - t0


def strace_fsyncs(path):
    """fsync + fdatasync calls in an strace -c summary."""
    n = 0
    for l in open(path):
        f = l.split()
        if len(f) >= 5 and f[-1] in ("fsync", "fdatasync"):
            n += int(f[3])
    return n


def commit_latency(spool, seconds):
    r = subprocess.run([os.path.join(BUILD, "bench/queue/commit_latency"), spool, str(seconds)],
                       capture_output=True, text=True, timeout=seconds + 60)
    return r.stdout.strip()


labutil.lab("up")
base = tempfile.mkdtemp(prefix="dmta-bench-submit-", dir="/var/tmp")
os.chmod(base, 0o755)  # Postfix runs as postfix in there
results = {}
try:
    # dmtad.
    port = free_port()
    conf = os.path.join(base, "dmta.conf")
    spool = os.path.join(base, "spool")
    labutil.dmtad_conf(conf, spool, "kernel", """[smtp]
helo_name = dmta.test
[queue]
myhostname = dmta.test
dest_max_connections = 8
[listen]
smtp = 127.0.0.1:%d
max_connections_per_client = 100
""" % port)
    before = sink_count()
    st_out = os.path.join(base, "dmtad.strace")
    # dmtad runs under strace from its start, so that the seccomp filter
    # stops only the counted calls; it is stopped through its own PID.
    ds = subprocess.Popen(["strace", "-f", "--seccomp-bpf", "-c", "-e", "trace=fsync,fdatasync",
                           "-o", st_out, os.path.join(BUILD, "core/dmtad"), "-c", conf],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(ds.stdout), daemon=True)
    reader.start()
    wait_port(port)
    dpid = int(open("/proc/%d/task/%d/children" % (ds.pid, ds.pid)).read().split()[0])
    took = source(port)
    print("dmtad: %d accepted in %.1f s" % (N, took), flush=True)
    delivered_during = sink_count() - before
    end = time.time() + 600
    while time.time() < end and sink_count() - before < N:
        time.sleep(0.5)
    delivered = sink_count() - before
    # The control thread's view, apart from the timed run (a third writer
    # on the spool would slow the listener down): commit_latency alone,
    # then during a load of LAT_N more messages, which smtp-sink also
    # gets.
    idle = commit_latency(spool, 4)
    loaded = {}
    lt = threading.Thread(target=lambda: loaded.update(v=commit_latency(spool, 6)))
    lt.start()
    time.sleep(0.5)
    source(port, LAT_N)
    lt.join()
    end = time.time() + 300
    while time.time() < end and sink_count() - before < N + LAT_N:
        time.sleep(0.5)
    os.kill(dpid, signal.SIGTERM)
    ds.wait(timeout=120)
    reader.join(10)
    out = "".join(lines)
    m = re.search(r"listen: (\d+) messages over SMTP, \d+ from the maildrop, (\d+) commits", out)
    results["dmtad"] = {
        "secs": took, "rate": N / took, "listener_commits": int(m.group(2)) if m else -1,
        "fsyncs": strace_fsyncs(st_out), "delivered": delivered,
        "delivered_during": delivered_during, "idle": idle, "loaded": loaded.get("v", ""),
    }

    # Postfix smtpd.
    pport = free_port()
    pdir = os.path.join(base, "postfix")
    subprocess.run([os.path.join(TOP, "bench/queue/postfix_instance.sh"), "start", pdir, str(pport)],
                   check=True, capture_output=True)
    try:
        wait_port(pport)
        ptook = source(pport)
        print("postfix: %d accepted in %.1f s" % (N, ptook), flush=True)
        # strace cannot filter in the kernel once attached (-p), which
        # would slow Postfix down: its fsyncs are counted on a short run
        # of its own.
        # A fresh master, so that every smtpd and cleanup is its child
        # after strace attached (-f follows only what forks later).
        subprocess.run([os.path.join(TOP, "bench/queue/postfix_instance.sh"), "stop", pdir],
                       capture_output=True)
        time.sleep(2)
        subprocess.run([os.path.join(TOP, "bench/queue/postfix_instance.sh"), "start", pdir,
                        str(pport)], check=True, capture_output=True)
        wait_port(pport)
        master = int(open(os.path.join(pdir, "queue/pid/master.pid")).read().split()[0])
        pst_out = os.path.join(base, "postfix.strace")
        ps = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", pst_out,
                               "-p", str(master)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        source(pport, PF_TRACED)
        time.sleep(1)
        ps.terminate()
        ps.wait(timeout=60)
        results["postfix"] = {"secs": ptook, "rate": N / ptook,
                              "fsyncs_per_100": 100.0 * strace_fsyncs(pst_out) / PF_TRACED}
    finally:
        subprocess.run([os.path.join(TOP, "bench/queue/postfix_instance.sh"), "stop", pdir],
                       capture_output=True)
finally:
    shutil.rmtree(base, ignore_errors=True)

dm, pf = results["dmtad"], results["postfix"]
print("smtp-source -s %d -m %d -l 4096, 127.0.0.1, queues on /var/tmp" % (S, N))
print("| | dmtad listener | Postfix 3.7 smtpd | ratio |")
print("|---|---:|---:|---:|")
print("| wall time, s | %.1f | %.1f | |" % (dm["secs"], pf["secs"]))
print("| accepted msgs/s | %.0f | %.0f | %.1fx |" % (dm["rate"], pf["rate"], dm["rate"] / pf["rate"]))
print("| fsync+fdatasync calls, whole run (strace) | %d | | |" % dm["fsyncs"])
print("| fsync+fdatasync calls per 100 msgs | %.1f | %.1f (traced run of %d) | |" % (
    100.0 * dm["fsyncs"] / N, pf["fsyncs_per_100"], PF_TRACED))
print("| listener commits (msgs per commit) | %d (%.1f) | | |" % (
    dm["listener_commits"], N / max(dm["listener_commits"], 1)))
print("| delivered to smtp-sink during / after | %d / %d of %d | | |" % (
    dm["delivered_during"], dm["delivered"], N))
print("control-thread-like commit (commit_latency) idle:   %s" % dm["idle"])
print("control-thread-like commit (commit_latency) loaded (%d more msgs): %s" % (LAT_N, dm["loaded"]))
if dm["delivered"] != N:
    raise SystemExit("FAIL: %d of %d delivered" % (dm["delivered"], N))
